"""Ingest stage: files + manifest -> a recorded, licence-judged dataset version."""

from __future__ import annotations

import logging
import os

from sqlalchemy.exc import IntegrityError

from dataward.context import Context
from dataward.export import lineage_events as le
from dataward.stage_results import iter_batches, version_schema
from lineage import croissant_manifest, tags
from lineage import ingest as lineage_ingest
from lineage import manifest as manifests
from lineage.openlineage import facets
from lineage.openlineage.emitter import new_run_id


def ingest(ctx: Context, path: str | os.PathLike[str], manifest_path: str | os.PathLike[str] | None = None,
           *, manifest: dict | None = None, pipeline_run: str | None = None):
    """Ingest ``path`` described by a manifest file (or an already-parsed manifest dict).

    Emits OpenLineage START and COMPLETE (or FAIL) events (a child of the pipeline run
    ``pipeline_run`` when given): inputs are the source URI, the landed files and the
    parents; outputs the stored files with their content hashes, schema, owner,
    description and personal-data tags; the licence verdict is a custom run facet.
    Returns :class:`lineage.ingest.IngestResult`.
    """
    if manifest is None:
        if manifest_path is None:
            from dataward.errors import BadInput

            raise BadInput("a manifest is required (--manifest MANIFEST.yaml)")
        parsed = load_manifest(manifest_path)
    else:
        parsed = manifests.from_dict(manifest)
    run_id = new_run_id()
    em = ctx.emitter
    parent = em.pipeline_parent(pipeline_run) if pipeline_run else None
    source = le._safe(lambda: [le.source_dataset(parsed.source_uri, parsed.base_dir)], [])
    em.emit(job="ingest", state="START", run_id=run_id, inputs=source, parent=parent)
    try:
        result = lineage_ingest.ingest(
            ctx.engine, path, parsed, store=ctx.store, policy=ctx.licence_policy,
            actor=ctx.settings.actor, data_root=ctx.settings.data_root,
        )
    except Exception as exc:
        em.emit(job="ingest", state="FAIL", run_id=run_id, inputs=source, parent=parent,
                run_facets={"errorMessage": facets.error_message(exc),
                            "dataward_outcome": facets.stage_outcome("ingest", "failed",
                                                                     {"error": str(exc)})})
        raise
    pii = scan_personal_data(ctx, result.version_id, result.row_count)
    inputs = le._safe(lambda: le.ingest_inputs(ctx, parsed, [i.path for i in result.files]), source)
    outputs = le._safe(lambda: le.version_datasets(ctx, result.ref, ("data", "reference", "evaluation"),
                                                   describe=True, pii=pii), [])
    em.emit(
        job="ingest", state="COMPLETE", run_id=run_id, inputs=inputs, outputs=outputs, parent=parent,
        run_facets={
            "dataward_licence": facets.licence_verdict(result.licence.to_dict()),
            "dataward_outcome": facets.stage_outcome("ingest", result.status, {
                "ref": result.ref, "created": result.created, "content_hash": result.content_hash,
                "rows": result.row_count, "pii_columns": len({t["column"] for t in pii})}),
        },
    )
    return result


def load_manifest(path: str | os.PathLike[str]):
    """A manifest file: Dataward's YAML, or a Croissant JSON-LD description (``.json``)."""
    if croissant_manifest.is_croissant(path):
        return croissant_manifest.load(path)
    return manifests.load(path)


def scan_personal_data(ctx: Context, version_id: int, row_count: int | None = None) -> list[dict]:
    """Scan the version's data files for personal data and record the column tags; idempotent.

    Runs after the lineage ingest, in its own transaction: a scan that fails is recorded
    as ``scan_failed`` (the decision policy quarantines on it) and never undoes the ingest.
    Returns the column tags (dicts, see :func:`lineage.tags.column_tags`).
    """
    from checks import pii
    with ctx.session() as s:
        if tags.has_scan(s, version_id):
            return tags.column_tags(s, version_id, source="pii-scan")

    def batches():
        # Only the columns the scan reads (never a column of image bytes), cast to one
        # schema: files may differ (int64 in one, double in another).
        columns = [f.name for f in version_schema(ctx, version_id) or [] if pii.scannable(f.type)]
        if columns:
            yield from iter_batches(ctx, version_id, columns=columns)

    failed = None
    found: list[dict] = []
    try:
        found = [t.to_dict() for t in pii.scan_batches(batches(), n_rows=row_count)]
    except Exception as exc:  # a scan bug must not lose the ingest; the policy sees "scan_failed"
        logging.getLogger(__name__).warning("personal-data scan of version %s failed: %s", version_id, exc)
        failed = f"{type(exc).__name__}: {exc}"
    try:
        with ctx.session() as s:
            tags.record_column_tags(s, version_id, found, failed=failed)
    except IntegrityError:  # a concurrent ingest of the same content recorded them first
        pass
    with ctx.session() as s:
        return tags.column_tags(s, version_id, source="pii-scan")
