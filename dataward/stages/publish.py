"""Publish stage: an approved or trimmed version becomes a content-addressed snapshot.

The snapshot (the version's rows minus the excluded row ids, as one Parquet file)
is written to a temporary file, fsynced, hashed and renamed into the content
store, so it exists whole or not at all; then the derived version
``NAME.approved@N`` (parent: the source version), its licence, the ``Snapshot``
row and the audit entry are recorded in one transaction. A crash in between
leaves only a complete, unreferenced blob, which the re-run adopts.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from dataward.context import Context
from dataward.stages.common import finished, read_table, record
from lineage import audit
from lineage.files import schema_fingerprint, schema_json
from lineage.models import (
    STATUS_PUBLISHED,
    DataFile,
    Dataset,
    DatasetVersion,
    LicenceRecord,
    Provenance,
    Snapshot,
    VersionParent,
)

PUBLISHABLE = ("approve", "trim")


def snapshot_name(name: str) -> str:
    return f"{name}.approved"


def publish(ctx: Context, ref: str, *, run_id: str | None = None, decision: dict | None = None,
            actor: str = "pipeline") -> dict[str, Any]:
    """Publish ``ref`` if its decision allows it; idempotent.

    ``decision`` overrides the recorded policy decision (a reviewer's approval).
    Returns ``{"published": bool, ...}`` with the snapshot's ref, path and hash.
    """
    version_id, ref, done = finished(ctx, ref, "publish")
    if done is not None:
        return done
    if decision is None:
        _, _, decision = finished(ctx, ref, "decide")
    if not decision or decision.get("outcome") not in PUBLISHABLE:
        return {"published": False, "ref": ref,
                "reason": f"decision is {(decision or {}).get('outcome', 'missing')}: nothing to publish"}
    excluded = sorted(int(i) for i in decision.get("excluded_row_ids", []))
    path, digest, rows, schema = _write_snapshot(ctx, version_id, excluded)
    out: dict[str, Any] = {"published": True, "source": ref, "path": str(path), "sha256": digest,
                           "rows": rows, "excluded_rows": len(excluded),
                           "outcome": decision["outcome"]}

    def add_snapshot(s, source: DatasetVersion):
        name = snapshot_name(source.dataset.name)
        ds = s.execute(select(Dataset).where(Dataset.name == name)).scalars().first()
        if ds is None:
            ds = Dataset(name=name, owner=source.dataset.owner, kind=source.kind,
                         label_column=source.label_column,
                         description=f"Approved snapshots of {source.dataset.name}")
            s.add(ds)
            s.flush()
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
        s.add(DataFile(version_id=snap.id, relpath="snapshot.parquet", sha256=digest,
                       size_bytes=path.stat().st_size, format="parquet", row_count=rows))
        s.add(Provenance(version_id=snap.id, source_uri=f"dataward:{source.ref}",
                         publisher="dataward publish", acquired_by=actor,
                         collection_method=f"{decision['outcome']} of {source.ref}"))
        lic = source.licence
        if lic is not None:
            s.add(LicenceRecord(
                version_id=snap.id, declared=lic.declared, spdx_expression=lic.spdx_expression,
                use_class=lic.use_class, attribution_required=lic.attribution_required,
                share_alike=lic.share_alike, allowed_for_training=lic.allowed_for_training,
                verdict_reason=lic.verdict_reason, policy_version=lic.policy_version))
        s.add(VersionParent(child_id=snap.id, parent_id=source.id,
                            relation="trimmed" if excluded else "approved"))
        s.add(Snapshot(version_id=snap.id, source_version_id=source.id, path=str(path),
                       sha256=digest, row_count=rows, excluded_row_ids=excluded))
        out["snapshot_ref"] = f"{name}@{number}"
        audit.append(s, actor=actor, action="snapshot", subject=out["snapshot_ref"],
                     payload={"source": source.ref, "sha256": digest, "rows": rows,
                              "excluded_rows": len(excluded)})

    return record(ctx, version_id, "publish", out, status="published", run_id=run_id,
                  actor=actor, extra=add_snapshot)


def _write_snapshot(ctx: Context, version_id: int, excluded: list[int]):
    import numpy as np
    import pyarrow.parquet as pq

    table = read_table(ctx, version_id)
    if excluded:
        keep = np.ones(table.num_rows, dtype=bool)
        keep[np.asarray(excluded, dtype=np.int64)] = False
        table = table.filter(keep)
    staging = ctx.store.root / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=staging, prefix="snapshot-", suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        h = hashlib.sha256()
        with open(tmp, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        digest = h.hexdigest()
        path, _ = ctx.store.put(tmp, digest, "parquet")
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path, digest, table.num_rows, table.schema
