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
import logging
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select

from dataward.context import Context
from dataward.errors import BadInput
from dataward.export.metadata_export import write_beside_snapshot
from dataward.faults import checkpoint
from dataward.stage_results import finished, iter_batches, record, version_schema
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
    relabel = {int(i): str(label) for i, label in decision.get("relabels") or []}
    label_col = None
    if relabel:  # checked before anything is written: a bad decision leaves nothing behind
        with ctx.session() as s:
            v = s.get(DatasetVersion, version_id)
            label_col, n_rows = v.label_column, v.row_count
        if not label_col:
            raise BadInput(f"{ref}: the decision relabels rows but the version names no label column")
        outside = [i for i in relabel if not 0 <= i < (n_rows or 0)]
        if outside:
            raise BadInput(f"{ref}: the decision relabels {len(outside)} row(s) the version does not have "
                           f"(e.g. row {outside[0]})")
        label_type = version_schema(ctx, version_id).field(label_col).type
        if not relabelable(label_type):
            raise BadInput(f"{ref}: labels of type {label_type} cannot be relabelled")
    path, digest, rows, schema, changes = _write_snapshot(ctx, version_id, excluded, relabel, label_col)
    checkpoint("publish:blob")
    out = PublishOutput(published=True, source=ref, path=str(path), sha256=digest,
                        rows=rows, excluded_rows=len(excluded), relabelled_rows=len(changes),
                        outcome=decision["outcome"])

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
                      "excluded_rows": len(excluded), "relabelled_rows": len(changes)})
        s.add(snap)
        s.flush()
        record_derived_file(s, snap, source, relpath="snapshot.parquet", sha256=digest,
                            size_bytes=path.stat().st_size, rows=rows, publisher="dataward publish", actor=actor,
                            method=f"{decision['outcome']} of {source.ref}"
                            + (f", {len(changes)} row(s) relabelled" if changes else ""))
        s.add(VersionParent(child_id=snap.id, parent_id=source.id,
                            relation="trimmed" if excluded else "relabelled" if changes else "approved"))
        s.add(Snapshot(version_id=snap.id, source_version_id=source.id, path=str(path),
                       sha256=digest, row_count=rows, excluded_row_ids=excluded, relabels=changes or None))
        out["snapshot_ref"] = f"{name}@{number}"
        audit.append(s, actor=actor, action="snapshot", subject=out["snapshot_ref"],
                     payload={"source": source.ref, "sha256": digest, "rows": rows,
                              "excluded_rows": len(excluded), "relabelled_rows": len(changes),
                              **({"relabels": changes} if changes else {})})

    recorded = record(ctx, version_id, "publish", out, status="published", run_id=run_id,
                      actor=actor, extra=add_snapshot)
    return _with_metadata(ctx, recorded, actor)


def publish_approved(ctx: Context, ref: str, *, reviewer: str, policy: dict[str, Any] | None = None
                     ) -> PublishOutput:
    """Publish a version a reviewer approved (idempotent: a re-run returns the recorded
    snapshot): the policy's excluded rows and relabels if its decision was a trim, else
    every row. ``policy``: the recorded decision (None: read it). The publisher every
    sign-off door passes to :func:`dataward.governance.review.sign_off`."""
    if policy is None:
        policy = finished(ctx, ref, "decide")[2] or {}
    trimmed = policy.get("outcome") == "trim"
    excluded = policy.get("excluded_row_ids", []) if trimmed else []
    relabels = policy.get("relabels", []) if trimmed else []
    return publish(ctx, ref, decision={"outcome": "approve", "excluded_row_ids": excluded, "relabels": relabels,
                                       "approved_by": reviewer}, actor=reviewer)


def _with_metadata(ctx: Context, output: PublishOutput, actor: str) -> PublishOutput:
    """Write the snapshot's Croissant file and dataset card beside it (idempotent; recorded
    in the audit log) and name them in the returned output. Metadata that cannot be
    written is logged, never a reason to undo a published snapshot."""
    if not output.get("published") or not output.get("snapshot_ref"):
        return output
    try:
        return {**output, **write_beside_snapshot(ctx, output["snapshot_ref"], actor=actor)}
    except Exception as exc:
        logging.getLogger(__name__).warning("metadata of %s not written: %s", output["snapshot_ref"], exc)
        return output


def _write_snapshot(ctx: Context, version_id: int, excluded: list[int], relabel: dict[int, str] | None = None,
                    label_col: str | None = None):
    """Stream the version's rows minus ``excluded`` into the store, the rows in ``relabel``
    (row id -> new label as text) with their label replaced; (path, sha256, rows, schema,
    changes), ``changes`` the ``[row_id, old label, new label]`` of every relabelled row."""
    ctx.store.sweep()  # what an earlier, killed publish left in staging
    schema = version_schema(ctx, version_id)
    drop = np.asarray(excluded, dtype=np.int64)  # sorted
    relabel = relabel or {}
    moved = np.asarray(sorted(relabel), dtype=np.int64)
    changes: list[list] = []
    tmp = ctx.store.staging_file("snapshot", ".parquet")
    rows = offset = 0
    try:
        with pq.ParquetWriter(str(tmp), schema) as writer:
            for i, batch in enumerate(iter_batches(ctx, version_id)):
                n = batch.num_rows
                a, b = np.searchsorted(moved, [offset, offset + n])
                if b > a:
                    batch = _relabelled(batch, label_col, moved[a:b], offset, relabel, changes)
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
    return path, digest, rows, schema, changes


def relabelable(label_type) -> bool:
    """Whether a label column of this Arrow type can take a suggested label: the screens
    name classes by their text, which casts back exactly to integers, booleans, floats
    and strings (plain or dictionary-encoded); not to binary or decimal labels."""
    t = label_type.value_type if pa.types.is_dictionary(label_type) else label_type
    return (pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_floating(t)
            or pa.types.is_string(t) or pa.types.is_large_string(t))


def _relabelled(batch, label_col: str, row_ids, offset: int, relabel: dict[int, str], changes: list):
    """``batch`` with the label of ``row_ids`` (global ids, all in this batch) set to their
    new label, cast from its text to the label column's type (the class names the screens
    report are the labels as text); appends ``[row_id, old, new]`` to ``changes``."""
    j = batch.schema.get_field_index(label_col)
    column = batch.column(j)
    values = column.to_pylist()
    new_text = [relabel[int(r)] for r in row_ids]
    try:
        typed = pa.array(new_text, type=pa.string()).cast(column.type).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise BadInput(f"a suggested label ({new_text[0]!r}) cannot be written to label column {label_col!r} "
                       f"of type {column.type}") from None
    for r, new in zip(row_ids, typed):
        k = int(r) - offset
        changes.append([int(r), values[k], new])
        values[k] = new
    columns = list(batch.columns)
    columns[j] = pa.array(values, type=column.type)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)
