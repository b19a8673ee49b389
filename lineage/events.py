"""OpenLineage run events for Dataward's stages (openlineage-python).

By default events go to a JSON-lines file under ``DATAWARD_HOME/openlineage``
(the client's file transport). Setting ``OPENLINEAGE_URL`` (and optionally
``OPENLINEAGE_API_KEY``/``OPENLINEAGE_ENDPOINT``) or ``OPENLINEAGE_CONFIG`` hands
transport selection to the client's own environment configuration (HTTP etc.).
Emitting never fails a stage: a broken sink is logged and the work goes on.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attr

log = logging.getLogger(__name__)
PRODUCER = "https://github.com/dataward/dataward"
NAMESPACE_ENV = "DATAWARD_OPENLINEAGE_NAMESPACE"


def _facet_classes():
    from openlineage.client.generated.base import RunFacet

    @attr.define
    class LicenceVerdictRunFacet(RunFacet):
        """Dataward's licence verdict for the dataset version a run produced."""

        expression: str
        useClass: str  # noqa: N815 - OpenLineage facets use camelCase
        allowedForTraining: bool  # noqa: N815
        reason: str
        policyVersion: str  # noqa: N815

        @staticmethod
        def _get_schema() -> str:
            return "https://dataward.dev/spec/facets/1-0-0/LicenceVerdictRunFacet.json"

    @attr.define
    class StageOutcomeRunFacet(RunFacet):
        """What a Dataward stage decided (status and a JSON-able summary)."""

        stage: str
        status: str
        summary: dict = attr.field(factory=dict)

        @staticmethod
        def _get_schema() -> str:
            return "https://dataward.dev/spec/facets/1-0-0/StageOutcomeRunFacet.json"

    return LicenceVerdictRunFacet, StageOutcomeRunFacet


class Emitter:
    """Sends START/COMPLETE/FAIL events for one Dataward installation."""

    def __init__(self, home: str | os.PathLike[str]):
        self.home = Path(home)
        self.namespace = os.environ.get(NAMESPACE_ENV, "dataward")
        self._client = None

    @property
    def events_file(self) -> Path:
        return self.home / "openlineage" / "events.jsonl"

    def _get_client(self):
        if self._client is None:
            from openlineage.client import OpenLineageClient

            if os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG"):
                self._client = OpenLineageClient()
            else:
                from openlineage.client.transport.file import FileConfig, FileTransport

                self.events_file.parent.mkdir(parents=True, exist_ok=True)
                self._client = OpenLineageClient(transport=FileTransport(
                    FileConfig(log_file_path=str(self.events_file), append=True)))
        return self._client

    def emit(self, *, job: str, state: str, run_id: str, dataset: str | None = None,
             version: str | None = None, schema: list[dict[str, Any]] | None = None,
             licence: dict[str, Any] | None = None, outcome: dict[str, Any] | None = None,
             tags: list[dict[str, str]] | None = None, inputs: list[str] | None = None) -> None:
        try:
            self._emit(job=job, state=state, run_id=run_id, dataset=dataset, version=version,
                       schema=schema, licence=licence, outcome=outcome, tags=tags, inputs=inputs)
        except Exception as exc:  # lineage sinks must never break the pipeline
            log.warning("OpenLineage event for %s not sent: %s", job, exc)

    def _emit(self, *, job, state, run_id, dataset, version, schema, licence, outcome, tags,
              inputs) -> None:
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.generated import (
            dataset_version_dataset,
            schema_dataset,
            tags_dataset,
        )

        licence_facet, outcome_facet = _facet_classes()
        run_facets: dict[str, Any] = {}
        if licence:
            run_facets["dataward_licence"] = licence_facet(
                expression=licence["expression"], useClass=licence["use_class"],
                allowedForTraining=bool(licence["allowed_for_training"]),
                reason=licence["reason"], policyVersion=licence["policy_version"])
        if outcome:
            run_facets["dataward_outcome"] = outcome_facet(
                stage=outcome.get("stage", job), status=str(outcome.get("status", "")),
                summary=outcome.get("summary", {}))
        outputs = []
        if dataset:
            facets: dict[str, Any] = {}
            if version:
                facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                    datasetVersion=version)
            if schema:
                facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=[
                    schema_dataset.SchemaDatasetFacetFields(name=f["name"], type=f["type"])
                    for f in schema])
            if tags:
                facets["tags"] = tags_dataset.TagsDatasetFacet(tags=[
                    tags_dataset.TagsDatasetFacetFields(key=t["key"], value=t["value"],
                                                        source="dataward", field=t.get("field"))
                    for t in tags])
            outputs.append(OutputDataset(namespace=self.namespace, name=dataset, facets=facets))
        event = RunEvent(
            eventType=getattr(RunState, state),
            eventTime=datetime.now(timezone.utc).isoformat(),
            run=Run(runId=run_id, facets=run_facets),
            job=Job(namespace=self.namespace, name=f"dataward.{job}"),
            producer=PRODUCER,
            inputs=[InputDataset(namespace=self.namespace, name=n) for n in inputs or []],
            outputs=outputs,
        )
        self._get_client().emit(event)


def new_run_id() -> str:
    """OpenLineage wants UUIDs (v7 preferred); uuid7 when available."""
    maker = getattr(uuid, "uuid7", None)
    return str(maker() if maker else uuid.uuid4())
