"""Publish stage: an approved or trimmed version becomes a content-addressed snapshot.

The snapshot (the version's rows minus the excluded row ids, as one Parquet file)
is streamed batch by batch (a row mask per batch, so memory is one batch, not the
table) to a temporary file in the store's staging folder, fsynced, hashed and
renamed into the content store, so it exists whole or not at all; then the derived version
``NAME.approved@N`` (parent: the source version), its licence, the ``Snapshot``
row and the audit entry are recorded in one transaction. A crash in between
leaves only a complete, unreferenced blob, which the re-run adopts.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from dataward.context import Context
from dataward.faults import checkpoint
from dataward.stages.common import finished, iter_batches, record, version_schema
from dataward.stages.outputs import DecideOutput, PublishOutput
from lineage import audit
from lineage.files import schema_fingerprint, schema_json
from lineage.models import (
    STATUS_PUBLISHED,
    DatasetVersion,
    Snapshot,
    VersionParent,
)
from lineage.queries import derived_dataset, record_derived_file

PUBLISHABLE = ("approve", "trim")


def snapshot_name(name: str) -> str:
    return f"{name}.approved"


def publish(ctx: Context, ref: str, *, run_id: str | None = None, decision: DecideOutput | None = None,
            actor: str = "pipeline") -> PublishOutput:
    """Publish ``ref`` if its decision allows it; idempotent.

    ``decision`` overrides the recorded policy decision (a reviewer's approval).
    Returns ``{"published": bool, ...}`` with the snapshot's ref, path and hash.
    """
    version_id, ref, done = finished(ctx, ref, "publish")
    if done is not None:
        return _with_metadata(ctx, done, actor)
    if decision is None:
        _, _, decision = finished(ctx, ref, "decide")
    if not decision or decision.get("outcome") not in PUBLISHABLE:
        return PublishOutput(published=False, ref=ref,
                             reason=f"decision is {(decision or {}).get('outcome', 'missing')}: nothing to publish")
    excluded = sorted(int(i) for i in decision.get("excluded_row_ids", []))
    path, digest, rows, schema = _write_snapshot(ctx, version_id, excluded)
    checkpoint("publish:blob")
    out = PublishOutput(published=True, source=ref, path=str(path), sha256=digest,
                        rows=rows, excluded_rows=len(excluded), outcome=decision["outcome"])

    def add_snapshot(s, source: DatasetVersion):
        name = snapshot_name(source.dataset.name)
        ds = derived_dataset(s, name, source, f"Approved snapshots of {source.dataset.name}")
        number = (s.execute(select(func.max(DatasetVersion.version))
                            .where(DatasetVersion.dataset_id == ds.id)).scalar() or 0) + 1
        listing = f"snapshot.parquet\0{digest}\n".encode()
        snap = DatasetVersion(
            dataset=ds, version=number, content_hash=hashlib.sha256(listing).hexdigest(),
            row_count=rows, schema_fingerprint=schema_fingerprint(schema),
            schema_json=schema_json(schema), status=STATUS_PUBLISHED, kind=source.kind,
            label_column=source.label_column,
            manifest={"derived_from": source.ref, "outcome": decision["outcome"],
                      "excluded_rows": len(excluded)})
        s.add(snap)
        s.flush()
        record_derived_file(s, snap, source, relpath="snapshot.parquet", sha256=digest,
                            size_bytes=path.stat().st_size, rows=rows, publisher="dataward publish", actor=actor,
                            method=f"{decision['outcome']} of {source.ref}")
        s.add(VersionParent(child_id=snap.id, parent_id=source.id,
                            relation="trimmed" if excluded else "approved"))
        s.add(Snapshot(version_id=snap.id, source_version_id=source.id, path=str(path),
                       sha256=digest, row_count=rows, excluded_row_ids=excluded))
        out["snapshot_ref"] = f"{name}@{number}"
        audit.append(s, actor=actor, action="snapshot", subject=out["snapshot_ref"],
                     payload={"source": source.ref, "sha256": digest, "rows": rows,
                              "excluded_rows": len(excluded)})

    recorded = record(ctx, version_id, "publish", out, status="published", run_id=run_id,
                      actor=actor, extra=add_snapshot)
    return _with_metadata(ctx, recorded, actor)


def _with_metadata(ctx: Context, output: PublishOutput, actor: str) -> PublishOutput:
    """Write the snapshot's Croissant file and dataset card beside it (idempotent; recorded
    in the audit log) and name them in the returned output. Metadata that cannot be
    written is logged, never a reason to undo a published snapshot."""
    if not output.get("published") or not output.get("snapshot_ref"):
        return output
    from dataward.metadata_export import write_beside_snapshot

    try:
        return {**output, **write_beside_snapshot(ctx, output["snapshot_ref"], actor=actor)}
    except Exception as exc:
        import logging

        logging.getLogger(__name__).warning("metadata of %s not written: %s", output["snapshot_ref"], exc)
        return output


def _write_snapshot(ctx: Context, version_id: int, excluded: list[int]):
    """Stream the version's rows minus ``excluded`` into the store; (path, sha256, rows, schema)."""
    import numpy as np
    import pyarrow.parquet as pq

    ctx.store.sweep()  # what an earlier, killed publish left in staging
    schema = version_schema(ctx, version_id)
    drop = np.asarray(excluded, dtype=np.int64)  # sorted
    tmp = ctx.store.staging_file("snapshot", ".parquet")
    rows = offset = 0
    try:
        with pq.ParquetWriter(str(tmp), schema) as writer:
            for i, batch in enumerate(iter_batches(ctx, version_id)):
                n = batch.num_rows
                lo, hi = np.searchsorted(drop, [offset, offset + n])
                if hi > lo:
                    keep = np.ones(n, dtype=bool)
                    keep[drop[lo:hi] - offset] = False
                    batch = batch.filter(keep)
                offset += n
                if batch.num_rows:
                    writer.write_batch(batch)
                    rows += batch.num_rows
                if i == 0:
                    checkpoint("publish:staging")
        path, digest, _ = ctx.store.adopt_written(tmp, "parquet")
    finally:
        tmp.unlink(missing_ok=True)
    return path, digest, rows, schema
