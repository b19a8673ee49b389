"""OpenLineage facets for what Dataward knows: standard facets first, custom ones after.

Standard facets (openlineage-python's generated classes) carry everything the spec
has a place for: the content hash as ``version``, the columns as ``schema``, the
logical ``NAME@VERSION`` as ``symlinks``, owner and description as ``ownership`` and
``documentation``, personal-data columns as ``tags``, GX results as
``dataQualityAssertions`` and row counts as ``dataQualityMetrics``.

Only Dataward's own verdicts are custom facets (``dataward_licence``,
``dataward_outcome``, ``dataward_screening``); their JSON Schemas ship in this
package's ``schemas/`` folder, at the repository path their ``_schemaURL`` names.
Every facet's ``_producer`` is Dataward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attr

from lineage.openlineage.refs import PRODUCER, ParentRef

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
# The facets' schema files as published with the repository (``lineage/openlineage/schemas/NAME.json``).
SCHEMA_BASE = f"{PRODUCER}/blob/main/lineage/openlineage/schemas/"


def schema_url(facet: str) -> str:
    return f"{SCHEMA_BASE}{facet}.json#/$defs/{facet}"


def _p() -> dict[str, str]:
    return {"producer": PRODUCER}


# -- run and job facets ------------------------------------------------------------------

def parent_run(parent: ParentRef):
    from openlineage.client.generated import parent_run as pr

    root = parent.root or ParentRef(parent.namespace, parent.name, parent.run_id)
    while root.root is not None:
        root = root.root
    return pr.ParentRunFacet(
        run=pr.Run(runId=parent.run_id), job=pr.Job(namespace=parent.namespace, name=parent.name),
        root=pr.Root(run=pr.RootRun(runId=root.run_id),
                     job=pr.RootJob(namespace=root.namespace, name=root.name)), **_p())


def job_type(kind: str):
    from openlineage.client.generated.job_type_job import JobTypeJobFacet

    return JobTypeJobFacet(processingType="BATCH", integration="DATAWARD", jobType=kind, **_p())


def error_message(exc: BaseException):
    from openlineage.client.generated.error_message_run import ErrorMessageRunFacet

    return ErrorMessageRunFacet(message=str(exc) or type(exc).__name__, programmingLanguage="python",
                                **_p())


def _custom_classes():
    from openlineage.client.generated.base import RunFacet

    @attr.define
    class LicenceVerdictRunFacet(RunFacet):
        """Dataward's licence verdict for the dataset version a run ingested or published."""

        expression: str
        useClass: str  # noqa: N815 - OpenLineage facets use camelCase
        allowedForTraining: bool  # noqa: N815
        reason: str
        policyVersion: str  # noqa: N815

        @staticmethod
        def _get_schema() -> str:
            return schema_url("LicenceVerdictRunFacet")

    @attr.define
    class StageOutcomeRunFacet(RunFacet):
        """What a Dataward stage decided (status and a JSON-able summary)."""

        stage: str
        status: str
        summary: dict = attr.field(factory=dict)

        @staticmethod
        def _get_schema() -> str:
            return schema_url("StageOutcomeRunFacet")

    @attr.define
    class ScreeningVerdictRunFacet(RunFacet):
        """The decision after validation and the poisoning screens."""

        outcome: str
        reasons: list = attr.field(factory=list)
        rows: int | None = None
        flaggedRows: int | None = None  # noqa: N815
        excludedRows: int | None = None  # noqa: N815
        relabelledRows: int | None = None  # noqa: N815
        flaggedByScreen: dict = attr.field(factory=dict)  # noqa: N815
        policyVersion: str | None = None  # noqa: N815

        @staticmethod
        def _get_schema() -> str:
            return schema_url("ScreeningVerdictRunFacet")

    return LicenceVerdictRunFacet, StageOutcomeRunFacet, ScreeningVerdictRunFacet


def licence_verdict(licence: dict[str, Any]):
    cls = _custom_classes()[0]
    return cls(expression=licence["expression"], useClass=licence["use_class"],
               allowedForTraining=bool(licence["allowed_for_training"]), reason=licence["reason"],
               policyVersion=str(licence["policy_version"]), **_p())


def stage_outcome(stage: str, status: str, summary: dict[str, Any] | None = None):
    cls = _custom_classes()[1]
    scalars = {k: v for k, v in (summary or {}).items()
               if v is None or isinstance(v, (str, int, float, bool))}
    return cls(stage=stage, status=str(status), summary=scalars, **_p())


def screening_verdict(decision: dict[str, Any]):
    cls = _custom_classes()[2]
    reasons = [r.get("why", str(r)) if isinstance(r, dict) else str(r)
               for r in decision.get("reasons") or []]
    return cls(outcome=decision["outcome"], reasons=reasons, rows=decision.get("n_rows"),
               flaggedRows=decision.get("n_flagged"),
               excludedRows=len(decision.get("excluded_row_ids") or []),
               relabelledRows=len(decision.get("relabels") or []),
               flaggedByScreen={k: int(v) for k, v in (decision.get("flagged_by_screen") or {}).items()},
               policyVersion=decision.get("policy_version"), **_p())


# -- dataset facets ----------------------------------------------------------------------

def version(content_hash: str):
    from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet

    return DatasetVersionDatasetFacet(datasetVersion=content_hash, **_p())


def schema(fields: list[dict[str, Any]]):
    from openlineage.client.generated import schema_dataset as sd

    return sd.SchemaDatasetFacet(fields=[
        sd.SchemaDatasetFacetFields(name=f["name"], type=f["type"], ordinal_position=i + 1)
        for i, f in enumerate(fields)], **_p())


def symlinks(namespace: str, name: str, kind: str = "DATASET_VERSION"):
    from openlineage.client.generated import symlinks_dataset as sl

    return sl.SymlinksDatasetFacet(identifiers=[sl.Identifier(namespace=namespace, name=name, type=kind)],
                                   **_p())


def ownership(owner: str):
    from openlineage.client.generated import ownership_dataset as od

    return od.OwnershipDatasetFacet(owners=[od.Owner(name=owner, type="OWNER")], **_p())


def documentation(description: str):
    from openlineage.client.generated.documentation_dataset import DocumentationDatasetFacet

    return DocumentationDatasetFacet(description=description, contentType="text/plain", **_p())


def pii_tags(found: list[dict[str, Any]]):
    from openlineage.client.generated import tags_dataset as td

    return td.TagsDatasetFacet(tags=[td.TagsDatasetFacetFields(
        key="pii", value=t["tag"], source="dataward", field=t["column"]) for t in found], **_p())


def dataset_type(kind: str = "FILE", sub_type: str | None = None):
    from openlineage.client.generated.dataset_type_dataset import DatasetTypeDatasetFacet

    return DatasetTypeDatasetFacet(datasetType=kind, subType=sub_type, **_p())


def quality_assertions(outcomes: list[dict[str, Any]]):
    """GX expectation results as ``dataQualityAssertions`` (one per expectation)."""
    from openlineage.client.generated import data_quality_assertions_dataset as dq

    out = []
    for o in outcomes:
        observed = o.get("observed_value")
        out.append(dq.Assertion(
            assertion=str(o.get("expectation_type") or o.get("type")), success=bool(o.get("success")),
            column=o.get("column") or None, severity=o.get("severity") or None,
            actual=None if observed is None else str(observed)[:500], **{}))
    return dq.DataQualityAssertionsDatasetFacet(assertions=out, **_p())


def quality_metrics(*, rows: int, size_bytes: int | None = None, files: int | None = None,
                    columns: dict[str, dict[str, Any]] | None = None):
    """Row count (and bytes, files, per-column null counts) as ``dataQualityMetrics``."""
    from openlineage.client.generated import data_quality_metrics_input_dataset as dm

    return dm.DataQualityMetricsInputDatasetFacet(
        rowCount=int(rows), bytes=size_bytes, fileCount=files,
        columnMetrics={c: dm.ColumnMetrics(**m) for c, m in (columns or {}).items()}, **_p())
