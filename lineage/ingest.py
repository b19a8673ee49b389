"""Ingest: check the files and the manifest, store the bytes, record provenance.

Order matters for "bad input loses nothing": everything that can be refused
(the files, the manifest, the licence, the parents) is checked before a byte is
stored or a row written. Blobs are then published atomically into the content
store and all rows are written in one transaction; if that transaction fails,
the blobs this call created are removed again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lineage import audit, files, licences
from lineage.db import session_scope
from lineage.errors import LineageInputError, NotFound
from lineage.manifest import Manifest, parse_ref
from lineage.models import (
    STATUS_INGESTED,
    STATUS_QUARANTINED,
    DataFile,
    Dataset,
    DatasetVersion,
    LicenceRecord,
    Provenance,
    VersionParent,
)
from lineage.store import ContentStore


def _checkpoint(name: str) -> None:
    """Crash-test hook, the same contract as ``dataward.faults.checkpoint`` (SIGKILL this
    process when ``DATAWARD_FAULT`` names ``name``); lineage may not import the app."""
    wanted = os.environ.get("DATAWARD_FAULT")
    if wanted and name in wanted.split(","):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class IngestResult:
    ref: str
    version_id: int
    created: bool  # False: identical content was already ingested
    status: str
    reason: str | None
    content_hash: str
    row_count: int
    licence: licences.LicenceVerdict
    files: list[files.FileInfo] = field(default_factory=list)

    @property
    def quarantined(self) -> bool:
        return self.status == STATUS_QUARANTINED


def resolve(session: Session, ref: str) -> DatasetVersion:
    """The version a ``NAME[@VERSION]`` reference names (the latest if no version)."""
    name, number = parse_ref(ref)
    q = select(DatasetVersion).join(Dataset).where(Dataset.name == name)
    q = q.where(DatasetVersion.version == number) if number else q.order_by(
        DatasetVersion.version.desc()).limit(1)
    version = session.execute(q).scalars().first()
    if version is None:
        raise NotFound(f"no dataset version {ref}" if number else f"no dataset named {name}")
    return version


def ingest(engine, path: str | os.PathLike[str], manifest: Manifest, *, store: ContentStore,
           policy: licences.LicencePolicy, actor: str,
           data_root: str | os.PathLike[str] | None = None, attempts: int = 5) -> IngestResult:
    """Ingest the file or folder at ``path`` described by ``manifest``.

    Raises LineageInputError for bad input (nothing stored), NotFound for an unknown parent.
    A licence the policy disallows or does not know is recorded and the version quarantined.
    """
    found = files.collect(path, data_root=data_root)
    infos = [files.inspect(p, rel) for p, rel in found]
    schema = files.unify(infos)
    rows = sum(i.row_count for i in infos)
    if rows == 0:
        raise LineageInputError(f"{path} holds no rows: an empty dataset cannot be ingested")
    if manifest.label_column and manifest.label_column not in schema.names:
        raise LineageInputError(
            f"label column {manifest.label_column!r} named in the manifest is not in the data "
            f"(columns: {', '.join(schema.names[:12])}{'...' if len(schema.names) > 12 else ''})"
        )
    digest = files.content_hash(infos)
    side = _side_files(manifest, data_root, schema)

    with session_scope(engine) as session:
        parents = [resolve(session, p) for p in manifest.parents]
        parent_exprs = [v.licence.spdx_expression for v in parents if v.licence]
    declared = manifest.license
    expression = licences.normalize(declared)
    if parent_exprs:  # a derived dataset carries its parents' terms as well as its own
        expression = licences.combine_and([expression, *parent_exprs])
    verdict = licences.judge(expression, policy)

    store.sweep()  # temporary files a killed ingest left behind
    created_blobs: list[tuple[str, str]] = []
    try:
        for info in [*infos, *(i for _, i in side)]:
            _, created = store.put(info.path, info.sha256, info.format)
            if created:
                created_blobs.append((info.sha256, info.format))
        _checkpoint("ingest:stored")
        for attempt in range(attempts):
            try:
                return _record(engine, manifest, infos, side, schema, rows, digest, verdict,
                               declared, parents, policy, actor)
            except IntegrityError:
                # A concurrent ingest took the same version number or name: retry.
                if attempt == attempts - 1:
                    raise
    except BaseException:
        for blob, fmt in created_blobs:
            if not _referenced(engine, blob):
                store.remove(blob, fmt)
        raise
    raise AssertionError("unreachable")


def _name_lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for one dataset name."""
    import hashlib

    return int.from_bytes(hashlib.sha256(b"dataward-ingest:" + name.encode()).digest()[:8],
                          "big", signed=True)


def _referenced(engine, sha256: str) -> bool:
    try:
        with session_scope(engine) as session:
            return session.execute(
                select(DataFile.id).where(DataFile.sha256 == sha256).limit(1)
            ).first() is not None
    except Exception:
        return True  # when unsure, keep the bytes


def _side_files(manifest: Manifest, data_root, schema) -> list[tuple[str, files.FileInfo]]:
    """The reference and evaluation sets the manifest names, checked like the data."""
    named = ([("reference", manifest.reference)] if manifest.reference else []) + [
        ("evaluation", e) for e in manifest.evaluation_sets]
    out = []
    for role, value in named:
        found = files.collect(manifest.side_file(value), data_root=data_root)
        for path, rel in found:
            info = files.inspect(path, f"{role}/{rel}")
            if info.row_count == 0:
                raise LineageInputError(f"the {role} set {value} holds no rows")
            missing = [n for n in schema.names if n not in info.schema.names]
            if role == "reference" and missing:
                raise LineageInputError(
                    f"the reference set {value} lacks the data's column(s) {', '.join(missing[:5])}")
            out.append((role, info))
    return out


def _record(engine, manifest: Manifest, infos, side, schema, rows, digest, verdict, declared,
            parents, policy, actor) -> IngestResult:
    with session_scope(engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            # Serialize ingests of one dataset name (SQLite's BEGIN IMMEDIATE already
            # serializes all writers): the "same content?" check and the next version
            # number are then read by one writer at a time, so concurrent imports neither
            # deadlock nor burn their retries on conflicts.
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                            {"k": _name_lock_key(manifest.name)})
        dataset = session.execute(
            select(Dataset).where(Dataset.name == manifest.name)
        ).scalars().first()
        if dataset is None:
            dataset = Dataset(name=manifest.name, owner=manifest.owner,
                              description=manifest.description, kind=manifest.kind,
                              label_column=manifest.label_column)
            session.add(dataset)
            session.flush()
        existing = session.execute(
            select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id,
                                         DatasetVersion.content_hash == digest)
        ).scalars().first()
        if existing is not None:
            return IngestResult(existing.ref, existing.id, False, existing.status,
                                existing.status_reason, digest, existing.row_count, verdict, infos)
        number = (session.execute(
            select(func.max(DatasetVersion.version)).where(DatasetVersion.dataset_id == dataset.id)
        ).scalar() or 0) + 1
        status = STATUS_INGESTED if verdict.allowed_for_training else STATUS_QUARANTINED
        reason = None if verdict.allowed_for_training else verdict.reason
        version = DatasetVersion(
            dataset=dataset, version=number, content_hash=digest, row_count=rows,
            schema_fingerprint=files.schema_fingerprint(schema),
            schema_json=files.schema_json(schema), status=status, status_reason=reason,
            kind=manifest.kind, label_column=manifest.label_column, manifest=manifest.raw,
        )
        session.add(version)
        session.flush()
        for role, info in [*(("data", i) for i in infos), *side]:
            session.add(DataFile(version_id=version.id, relpath=info.relpath, sha256=info.sha256,
                                 size_bytes=info.size_bytes, format=info.format,
                                 row_count=info.row_count, role=role))
        session.add(Provenance(
            version_id=version.id, source_uri=manifest.source_uri, publisher=manifest.publisher,
            collection_method=manifest.collection_method, collected_from=manifest.collected_from,
            collected_to=manifest.collected_to, acquired_by=actor,
        ))
        session.add(LicenceRecord(
            version_id=version.id, declared=declared, spdx_expression=verdict.expression,
            use_class=verdict.use_class, attribution_required=verdict.attribution_required,
            share_alike=verdict.share_alike, allowed_for_training=verdict.allowed_for_training,
            verdict_reason=verdict.reason, policy_version=policy.version,
        ))
        for parent in parents:
            session.add(VersionParent(child_id=version.id, parent_id=parent.id, relation="derived"))
        ref = f"{dataset.name}@{number}"
        audit.append(session, actor=actor, action="ingest", subject=ref, payload={
            "content_hash": digest, "rows": rows, "files": {i.relpath: i.sha256 for i in infos},
            "licence": verdict.expression, "allowed_for_training": verdict.allowed_for_training,
            "status": status,
        })
        if status == STATUS_QUARANTINED:
            audit.append(session, actor="policy", action="quarantine", subject=ref,
                         payload={"reason": reason, "stage": "ingest"})
        session.flush()
        _checkpoint("ingest:recorded")
        return IngestResult(ref, version.id, True, status, reason, digest, rows, verdict, infos)


def data_paths(store: ContentStore, version: DatasetVersion, role: str = "data"
               ) -> list[tuple[Path, str]]:
    """(blob path, format) of each stored file of ``version`` with ``role``, in relpath order."""
    return [(store.path_for(f.sha256, f.format), f.format) for f in version.files if f.role == role]
