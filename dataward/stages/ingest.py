"""Ingest stage: files + manifest -> a recorded, licence-judged dataset version."""

from __future__ import annotations

import os

from dataward.context import Context


def ingest(ctx: Context, path: str | os.PathLike[str], manifest_path: str | os.PathLike[str] | None = None,
           *, manifest: dict | None = None):
    """Ingest ``path`` described by a manifest file (or an already-parsed manifest dict).

    Emits OpenLineage START and COMPLETE (or FAIL) events; the COMPLETE event carries
    the licence verdict as a custom run facet and the schema as a dataset facet.
    Returns :class:`lineage.ingest.IngestResult`.
    """
    from lineage import files
    from lineage import ingest as lineage_ingest
    from lineage import manifest as manifests
    from lineage.events import new_run_id

    if manifest is None:
        if manifest_path is None:
            from dataward.errors import BadInput

            raise BadInput("a manifest is required (--manifest MANIFEST.yaml)")
        parsed = manifests.load(manifest_path)
    else:
        parsed = manifests.from_dict(manifest)
    run_id = new_run_id()
    ctx.emitter.emit(job="ingest", state="START", run_id=run_id, dataset=parsed.name)
    try:
        result = lineage_ingest.ingest(
            ctx.engine, path, parsed, store=ctx.store, policy=ctx.licence_policy,
            actor=ctx.settings.actor, data_root=ctx.settings.data_root,
        )
    except Exception as exc:
        ctx.emitter.emit(job="ingest", state="FAIL", run_id=run_id, dataset=parsed.name,
                         outcome={"stage": "ingest", "status": "failed",
                                  "summary": {"error": str(exc)}})
        raise
    schema = files.schema_json(files.unify(result.files)) if result.files else None
    ctx.emitter.emit(
        job="ingest", state="COMPLETE", run_id=run_id, dataset=parsed.name,
        version=result.ref.split("@")[1], schema=schema, licence=result.licence.to_dict(),
        outcome={"stage": "ingest", "status": result.status,
                 "summary": {"ref": result.ref, "created": result.created,
                             "content_hash": result.content_hash, "rows": result.row_count}},
    )
    return result
