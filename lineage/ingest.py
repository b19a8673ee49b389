"""Ingest: check the files and the manifest, store the bytes, record provenance.

Order matters for "bad input loses nothing": everything that can be refused
(the files, the manifest, the licence, the parents) is checked before a byte is
stored or a row written. Blobs are then published atomically into the content
store and all rows are written in one transaction; if that transaction fails,
the blobs this call created are removed again.

An image folder (one sub-folder per class, :mod:`lineage.images`) is ingested as its
images (each a file of role ``image``) plus an index table built from them when they
are stored (the version's ``data`` file), so every later stage reads a table. Its label
column defaults to the index's ``label`` when the manifest names none.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lineage import audit, bulk_store, files, images, licences
from lineage.db import session_scope
from lineage.errors import LineageInputError, NotFound
from lineage.manifest import Manifest, parse_ref
from lineage.messages import names, printable
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
    files: list[files.FileInfo] = field(default_factory=list)  # the data files (an image index)
    # The label column the version records: the manifest's, else ``label`` for an image
    # folder, else None. Stages read it from DatasetVersion.label_column.
    label_column: str | None = None
    image_count: int = 0  # images of an image folder (0 for a table)

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


@dataclass
class _Part:
    """One checked set of files (the data, or a side set) before anything is stored."""

    role: str  # "data", "reference" or "evaluation"
    prefix: str  # relpath prefix in lineage ("" for the data, "reference/" for a side set)
    tables: list[files.FileInfo]  # table files; an image folder's index once it is written
    images: list[images.ImageInfo] = field(default_factory=list)

    @property
    def image_role(self) -> str:  # at most 16 characters: DataFile.role is String(16)
        return images.ROLE if self.role == "data" else f"{self.role}-{images.ROLE}"


def _prepare(listing: files.Listing, role: str, prefix: str) -> _Part:
    if listing.kind == "images":
        return _Part(role, prefix, [], [images.inspect_image(p, rel) for p, rel in listing.entries])
    infos = [files.inspect(p, prefix + rel) for p, rel in listing.entries]
    files.check_partitions(infos)
    return _Part(role, prefix, infos)


def _part_schema(part: _Part):
    return images.INDEX_SCHEMA if part.images else files.unify(part.tables)


def _part_rows(part: _Part) -> int:
    return len(part.images) if part.images else sum(i.row_count for i in part.tables)


def ingest(engine, path: str | os.PathLike[str], manifest: Manifest, *, store: ContentStore,
           policy: licences.LicencePolicy, actor: str,
           data_root: str | os.PathLike[str] | None = None, attempts: int = 5) -> IngestResult:
    """Ingest the file or folder at ``path`` described by ``manifest``.

    Raises LineageInputError for bad input (nothing stored), NotFound for an unknown parent.
    A licence the policy disallows or does not know is recorded and the version quarantined.
    """
    data = _prepare(files.collect(path, data_root=data_root), "data", "")
    schema = _part_schema(data)
    rows = _part_rows(data)
    if rows == 0:
        raise LineageInputError(f"{printable(path, 200)} holds no rows: an empty dataset cannot be ingested")
    label_column = manifest.label_column or (images.LABEL_COLUMN if data.images else None)
    if label_column and label_column not in schema.names:
        raise LineageInputError(
            f"label column '{printable(label_column, 60)}' named in the manifest is not in the "
            f"data (columns: {names(schema.names, most=12)})"
        )
    digest = images.listing_hash(data.images) if data.images else files.content_hash(data.tables)
    side = _side_parts(manifest, data_root, schema)

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
    staged: list[Path] = []
    try:
        for part in (data, *side):
            if part.images:  # the index is written only now: nothing was refused
                tmp = store.staging_file("index", ".parquet")
                staged.append(tmp)
                images.write_index(part.images, tmp)
                sha, size = files.sha256_file(tmp)
                part.tables = [files.FileInfo(tmp, part.prefix + images.INDEX_RELPATH, "parquet",
                                              sha, size, len(part.images), images.INDEX_SCHEMA)]
            stored = []
            for info in part.tables:
                dest, created = store.put(info.path, info.sha256, info.format)
                if created:
                    created_blobs.append((info.sha256, info.format))
                # an image folder's index was a staging file: point at its stored copy;
                # a user's own file keeps its path (lineage names the landed original)
                stored.append(dataclasses.replace(info, path=dest) if info.path in staged else info)
            part.tables = stored
            bulk_store.put_many(store, [(i.path, i.sha256, i.format) for i in part.images],
                                created_blobs)
        _checkpoint("ingest:stored")
        for attempt in range(attempts):
            try:
                result = _record(engine, manifest, data, side, schema, rows, digest, verdict,
                                 declared, parents, policy, actor, label_column)
                break
            except IntegrityError:
                # A concurrent ingest took the same version number or name: retry.
                if attempt == attempts - 1:
                    raise
    except BaseException:
        _remove_unreferenced(engine, store, created_blobs)
        raise
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
    # Identical content already recorded: blobs this call added (an index another pyarrow
    # wrote differently) stay unreferenced, which is harmless; removing them here could
    # race a concurrent ingest that found them in place.
    return result


def _remove_unreferenced(engine, store: ContentStore, blobs: list[tuple[str, str]]) -> None:
    for blob, fmt in blobs:
        if not _referenced(engine, blob):
            store.remove(blob, fmt)


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


def _side_parts(manifest: Manifest, data_root, schema) -> list[_Part]:
    """The reference and evaluation sets the manifest names, checked like the data."""
    named = ([("reference", manifest.reference)] if manifest.reference else []) + [
        ("evaluation", e) for e in manifest.evaluation_sets]
    out = []
    for role, value in named:
        part = _prepare(files.collect(manifest.side_file(value), data_root=data_root), role, f"{role}/")
        shown = printable(value, 200)
        if _part_rows(part) == 0:
            raise LineageInputError(f"the {role} set {shown} holds no rows")
        side_schema = _part_schema(part)
        missing = [n for n in schema.names if n not in side_schema.names]
        if role == "reference" and missing:
            raise LineageInputError(
                f"the reference set {shown} lacks the data's column(s) {names(missing, most=5)}")
        out.append(part)
    return out


def _record(engine, manifest: Manifest, data: _Part, side: list[_Part], schema, rows, digest,
            verdict, declared, parents, policy, actor, label_column) -> IngestResult:
    infos = data.tables
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
                              label_column=label_column)
            session.add(dataset)
            session.flush()
        existing = session.execute(
            select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id,
                                         DatasetVersion.content_hash == digest)
        ).scalars().first()
        if existing is not None:
            return IngestResult(existing.ref, existing.id, False, existing.status,
                                existing.status_reason, digest, existing.row_count, verdict, infos,
                                existing.label_column, len(data.images))
        number = (session.execute(
            select(func.max(DatasetVersion.version)).where(DatasetVersion.dataset_id == dataset.id)
        ).scalar() or 0) + 1
        status = STATUS_INGESTED if verdict.allowed_for_training else STATUS_QUARANTINED
        reason = None if verdict.allowed_for_training else verdict.reason
        version = DatasetVersion(
            dataset=dataset, version=number, content_hash=digest, row_count=rows,
            schema_fingerprint=files.schema_fingerprint(schema),
            schema_json=files.schema_json(schema), status=status, status_reason=reason,
            kind=manifest.kind, label_column=label_column, manifest=manifest.raw,
        )
        session.add(version)
        session.flush()
        for part in (data, *side):
            for info in part.tables:
                session.add(DataFile(version_id=version.id, relpath=info.relpath, sha256=info.sha256,
                                     size_bytes=info.size_bytes, format=info.format,
                                     row_count=info.row_count, role=part.role))
            for img in part.images:
                session.add(DataFile(version_id=version.id, relpath=part.prefix + img.relpath,
                                     sha256=img.sha256, size_bytes=img.size_bytes, format=img.format,
                                     row_count=1, role=part.image_role))
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
        payload = {
            "content_hash": digest, "rows": rows, "files": {i.relpath: i.sha256 for i in infos},
            "licence": verdict.expression, "allowed_for_training": verdict.allowed_for_training,
            "status": status,
        }
        if data.images:  # each image is a DataFile; the content hash covers their listing
            payload["images"] = len(data.images)
        audit.append(session, actor=actor, action="ingest", subject=ref, payload=payload)
        if status == STATUS_QUARANTINED:
            audit.append(session, actor="policy", action="quarantine", subject=ref,
                         payload={"reason": reason, "stage": "ingest"})
        session.flush()
        _checkpoint("ingest:recorded")
        return IngestResult(ref, version.id, True, status, reason, digest, rows, verdict, infos,
                            label_column, len(data.images))


def data_paths(store: ContentStore, version: DatasetVersion, role: str = "data"
               ) -> list[tuple[Path, str]]:
    """(blob path, format) of each stored file of ``version`` with ``role``, in relpath order."""
    return [(store.path_for(f.sha256, f.format), f.format) for f in version.files if f.role == role]
