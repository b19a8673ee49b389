"""OpenLineage run events for Dataward's runs (openlineage-python).

A ``dataward run`` (or one Airflow DAG run) is one pipeline-level OpenLineage run of
the job ``dataward.pipeline``; each stage (ingest, validate, screen, decide, report,
publish) is a run of ``dataward.STAGE`` whose ``parent`` run facet names the pipeline
run, so a consumer sees one tree. Datasets are named after the OpenLineage naming spec
(:mod:`lineage.naming`); what Dataward knows about them travels as standard facets
(:mod:`lineage.openlineage.facets`), and Dataward's own verdicts as custom facets whose JSON
Schemas ship in ``lineage/openlineage/schemas/``.

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
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lineage.openlineage import facets as f
from lineage.openlineage.refs import PRODUCER, DatasetRef, ParentRef

__all__ = ["Emitter", "new_run_id"]

log = logging.getLogger(__name__)
NAMESPACE_ENV = "DATAWARD_OPENLINEAGE_NAMESPACE"
DEFAULT_JOB_NAMESPACE = "dataward"
PIPELINE_JOB = "pipeline"


class Emitter:
    """Sends START/COMPLETE/FAIL events for one Dataward installation."""

    def __init__(self, home: str | os.PathLike[str]):
        self.home = Path(home)
        self.namespace = os.environ.get(NAMESPACE_ENV, DEFAULT_JOB_NAMESPACE)
        self._client = None

    @property
    def events_file(self) -> Path:
        return self.home / "openlineage" / "events.jsonl"

    def pipeline_parent(self, run_id: str, root: ParentRef | None = None) -> ParentRef:
        """The parent reference stage runs give for the pipeline run ``run_id``."""
        return ParentRef(self.namespace, f"dataward.{PIPELINE_JOB}", run_id, root)

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

    def emit(self, *, job: str, state: str, run_id: str, inputs: Sequence[DatasetRef] = (),
             outputs: Sequence[DatasetRef] = (), parent: ParentRef | None = None,
             run_facets: dict[str, Any] | None = None,
             job_facets: dict[str, Any] | None = None) -> None:
        """Emit one event of job ``dataward.JOB``; never raises (a broken sink is logged)."""
        try:
            self._get_client().emit(self.event(
                job=job, state=state, run_id=run_id, inputs=inputs, outputs=outputs,
                parent=parent, run_facets=run_facets, job_facets=job_facets))
        except Exception as exc:  # lineage sinks must never break the pipeline
            log.warning("OpenLineage event for %s not sent: %s", job, exc)

    def event(self, *, job: str, state: str, run_id: str, inputs: Sequence[DatasetRef] = (),
              outputs: Sequence[DatasetRef] = (), parent: ParentRef | None = None,
              run_facets: dict[str, Any] | None = None, job_facets: dict[str, Any] | None = None):
        """The :class:`RunEvent` :meth:`emit` sends (built, not sent)."""
        from openlineage.client.event_v2 import (
            InputDataset,
            Job,
            OutputDataset,
            Run,
            RunEvent,
            RunState,
        )

        rf = dict(run_facets or {})
        if parent is not None:
            rf["parent"] = f.parent_run(parent)
        jf = {"jobType": f.job_type("PIPELINE" if job == PIPELINE_JOB else "STAGE"), **(job_facets or {})}
        return RunEvent(
            eventType=getattr(RunState, state),
            eventTime=datetime.now(timezone.utc).isoformat(),
            run=Run(runId=run_id, facets=rf),
            job=Job(namespace=self.namespace, name=f"dataward.{job}", facets=jf),
            producer=PRODUCER,
            inputs=[InputDataset(namespace=d.namespace, name=d.name, facets=dict(d.facets),
                                 inputFacets=dict(d.input_facets)) for d in _unique(inputs)],
            outputs=[OutputDataset(namespace=d.namespace, name=d.name, facets=dict(d.facets))
                     for d in _unique(outputs)],
        )


def _unique(datasets: Sequence[DatasetRef]) -> list[DatasetRef]:
    """One entry per (namespace, name): content-addressed files may repeat."""
    seen: dict[tuple[str, str], DatasetRef] = {}
    for d in datasets:
        seen.setdefault((d.namespace, d.name), d)
    return list(seen.values())


def new_run_id() -> str:
    """OpenLineage wants UUIDs (v7 preferred); uuid7 when available."""
    maker = getattr(uuid, "uuid7", None)
    if maker is None:
        from openlineage.client.uuid import generate_new_uuid

        return str(generate_new_uuid())
    return str(maker())
