"""Read-only views of the lineage database as plain dicts (for CLI, reports, APIs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lineage.models import Dataset, DatasetVersion, Snapshot, VersionParent


def list_versions(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(DatasetVersion).join(Dataset).order_by(Dataset.name, DatasetVersion.version)
    ).scalars()
    return [
        {
            "name": v.dataset.name,
            "version": v.version,
            "ref": v.ref,
            "content_hash": v.content_hash,
            "rows": v.row_count,
            "status": v.status,
            "licence": v.licence.spdx_expression if v.licence else None,
            "created_at": v.created_at.isoformat() if v.created_at else None,
        }
        for v in rows
    ]


def describe(session: Session, version: DatasetVersion, *, depth: int = 8) -> dict[str, Any]:
    """Provenance, licence, files and the parent tree of one version."""
    p, lic = version.provenance, version.licence
    return {
        "ref": version.ref,
        "name": version.dataset.name,
        "version": version.version,
        "owner": version.dataset.owner,
        "description": version.dataset.description,
        "kind": version.kind,
        "label_column": version.label_column,
        "status": version.status,
        "status_reason": version.status_reason,
        "content_hash": version.content_hash,
        "rows": version.row_count,
        "schema_fingerprint": version.schema_fingerprint,
        "schema": version.schema_json,
        "created_at": version.created_at.isoformat() if version.created_at else None,
        "files": [{"path": f.relpath, "sha256": f.sha256, "bytes": f.size_bytes,
                   "format": f.format, "rows": f.row_count, "role": f.role}
                  for f in version.files],
        "provenance": None if p is None else {
            "source_uri": p.source_uri, "publisher": p.publisher,
            "collection_method": p.collection_method, "collected_from": p.collected_from,
            "collected_to": p.collected_to,
            "acquired_at": p.acquired_at.isoformat() if p.acquired_at else None,
            "acquired_by": p.acquired_by,
        },
        "licence": None if lic is None else {
            "declared": lic.declared, "expression": lic.spdx_expression,
            "use_class": lic.use_class, "attribution_required": lic.attribution_required,
            "share_alike": lic.share_alike, "allowed_for_training": lic.allowed_for_training,
            "reason": lic.verdict_reason, "policy_version": lic.policy_version,
        },
        "parents": _parents(session, version, depth, set()),
        "snapshot": _snapshot(session, version),
    }


def _snapshot(session: Session, version: DatasetVersion) -> dict[str, Any] | None:
    """What a published snapshot changed against its source: rows left out, and rows kept
    with a corrected label (``[row_id, old, new]``); None for other versions."""
    snap = session.execute(select(Snapshot).where(Snapshot.version_id == version.id)).scalars().first()
    if snap is None:
        return None
    return {"source_version_id": snap.source_version_id, "sha256": snap.sha256,
            "excluded_rows": len(snap.excluded_row_ids or []), "relabels": snap.relabels or []}


def _parents(session: Session, version: DatasetVersion, depth: int, seen: set[int]
             ) -> list[dict[str, Any]]:
    if depth == 0 or version.id in seen:
        return []
    seen = seen | {version.id}
    edges = session.execute(
        select(VersionParent).where(VersionParent.child_id == version.id).order_by(VersionParent.id)
    ).scalars()
    out = []
    for edge in edges:
        parent = session.get(DatasetVersion, edge.parent_id)
        out.append({
            "ref": parent.ref, "relation": edge.relation, "status": parent.status,
            "licence": parent.licence.spdx_expression if parent.licence else None,
            "parents": _parents(session, parent, depth - 1, seen),
        })
    return out


def record_derived_file(s, version, source, *, relpath: str, sha256: str, size_bytes: int, rows: int,
                        publisher: str, actor: str, method: str) -> None:
    """The single Parquet file of a version Dataward derived from ``source`` (a snapshot, a
    confirmed reference): its file record, its provenance (``dataward:SOURCE``, who and
    how) and ``source``'s licence, copied."""
    from lineage.models import DataFile, LicenceRecord, Provenance

    s.add(DataFile(version_id=version.id, relpath=relpath, sha256=sha256, size_bytes=size_bytes,
                   format="parquet", row_count=rows))
    s.add(Provenance(version_id=version.id, source_uri=f"dataward:{source.ref}", publisher=publisher,
                     acquired_by=actor, collection_method=method))
    lic = source.licence
    if lic is not None:
        s.add(LicenceRecord(
            version_id=version.id, declared=lic.declared, spdx_expression=lic.spdx_expression,
            use_class=lic.use_class, attribution_required=lic.attribution_required,
            share_alike=lic.share_alike, allowed_for_training=lic.allowed_for_training,
            verdict_reason=lic.verdict_reason, policy_version=lic.policy_version))


def derived_dataset(s, name: str, source, description: str):
    """The dataset ``name`` that holds versions Dataward derives from ``source``'s dataset
    (approved snapshots, confirmed references), created on first use with the source's
    owner, kind and label column."""
    ds = s.execute(select(Dataset).where(Dataset.name == name)).scalars().first()
    if ds is None:
        ds = Dataset(name=name, owner=source.dataset.owner, kind=source.kind, label_column=source.label_column,
                     description=description)
        s.add(ds)
        s.flush()
    return ds
