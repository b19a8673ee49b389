"""Bookkeeping every stage shares: find the version, skip finished work, record results.

A stage does its heavy work outside any transaction, then records its result,
the version's new status and an audit entry in one transaction. The unique key
(version, stage) makes a stage idempotent, also when two runs race: the loser
reads the winner's result.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dataward.context import Context
from dataward.faults import checkpoint
from lineage import audit
from lineage.files import BATCH_ROWS, file_schema, iter_file_batches
from lineage.ingest import data_paths, resolve
from lineage.models import STATUS_QUARANTINED, STATUS_REJECTED, DatasetVersion, StageResult
from lineage.store import is_stale_temp, temp_tag

TERMINAL = (STATUS_QUARANTINED, STATUS_REJECTED)


def json_safe(obj: Any) -> Any:
    """``obj`` as the JSON the lineage DB stores: what JSON cannot hold (numpy scalars,
    dates, paths) becomes its ``str``; dict keys become strings."""
    return json.loads(json.dumps(obj, default=str))


def finished(ctx: Context, ref: str, stage: str) -> tuple[int, str, dict[str, Any] | None]:
    """(version id, canonical ref, the stage's recorded output or None if not run yet)."""
    with ctx.session() as s:
        v = resolve(s, ref)
        row = s.execute(select(StageResult).where(StageResult.version_id == v.id,
                                                  StageResult.stage == stage)).scalars().first()
        return v.id, v.ref, (row.output if row else None)


def record(ctx: Context, version_id: int, stage: str, output: dict[str, Any], *,
           status: str, new_status: str | None = None, reason: str | None = None,
           run_id: str | None = None, actor: str = "pipeline", extra=None,
           attempts: int = 5) -> dict[str, Any]:
    """Record a stage's output (and optionally move the version's status) atomically.

    ``extra(session, version)`` may add more rows in the same transaction. Returns the
    output actually recorded (the earlier one if another run recorded it first). A
    conflict that is not on the stage's own row (``extra`` racing another writer for
    a version number, say) retries the whole transaction.
    """
    for attempt in range(attempts):
        recorded = json_safe(output)
        try:
            with ctx.session() as s:
                v = s.get(DatasetVersion, version_id)
                row = StageResult(version_id=v.id, stage=stage, run_id=run_id, status=status,
                                  output=recorded)
                s.add(row)
                s.flush()  # the unique (version, stage) key: a second recorder stops here
                if new_status and (v.status not in TERMINAL or new_status in TERMINAL):
                    v.status = new_status
                    if reason:
                        v.status_reason = reason if not v.status_reason or v.status_reason == reason \
                            else f"{v.status_reason}; {reason}"
                if extra:
                    extra(s, v)
                    # extra may add to the output (publish: the snapshot's ref): record that too
                    row.output = json_safe(output)
                audit.append(s, actor=actor, action=stage, subject=v.ref,
                             payload={"status": status, "run_id": run_id, "version_status": v.status})
                s.flush()
                checkpoint(f"record:{stage}")
            return output
        except IntegrityError:
            with ctx.session() as s:
                row = s.execute(select(StageResult).where(StageResult.version_id == version_id,
                                                          StageResult.stage == stage)).scalars().first()
                if row is not None:
                    return row.output
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def version_dir(ctx: Context, ref: str) -> Path:
    name, _, number = ref.partition("@")
    return ctx.settings.runs_root / name / number


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` so that it appears whole or not at all (temp file, fsync, rename).

    Temporary files left by a killed writer (``.NAME.HOST-PID-*``) are removed by the
    next write of the same path.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(f".{path.name}.*"):
        if is_stale_temp(old):
            old.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.-{temp_tag()}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _version_files(ctx: Context, version_id: int, role: str) -> list[tuple[Path, str]]:
    with ctx.session() as s:
        return data_paths(ctx.store, s.get(DatasetVersion, version_id), role)


def version_schema(ctx: Context, version_id: int, role: str = "data"):
    """The one Arrow schema of the version's files of ``role`` (None if it has none)."""
    schemas = [file_schema(p, fmt) for p, fmt in _version_files(ctx, version_id, role)]
    if not schemas:
        return None
    return schemas[0] if len(schemas) == 1 else pa.unify_schemas(schemas, promote_options="permissive")


def iter_batches(ctx: Context, version_id: int, role: str = "data", *,
                 columns: list[str] | None = None, batch_rows: int | None = None) -> Iterator:
    """The version's rows of ``role`` as Arrow record batches, in row-id order, cast to
    :func:`version_schema` (so every batch has the same schema). Memory: one batch."""
    paths = _version_files(ctx, version_id, role)
    target = version_schema(ctx, version_id, role)
    if target is None:
        return
    if columns is not None:
        target = pa.schema([target.field(c) for c in columns])
    for path, fmt in paths:
        for batch in iter_file_batches(path, fmt, batch_rows=batch_rows or BATCH_ROWS, columns=columns):
            if batch.schema == target:
                yield batch
            else:  # another file's types were wider: promote (int32 -> int64, null -> T)
                yield from pa.Table.from_batches([batch]).cast(target).to_batches()


def read_table(ctx: Context, version_id: int, role: str = "data", *, columns: list[str] | None = None):
    """The version's files of ``role`` as one Arrow table (None if it has none).

    Built from the streamed batches without a second copy (Arrow tables are lists of
    batches); ``columns`` reads only those columns.
    """
    target = version_schema(ctx, version_id, role)
    if target is None:
        return None
    if columns is not None:
        target = pa.schema([target.field(c) for c in columns])
    return pa.Table.from_batches(list(iter_batches(ctx, version_id, role, columns=columns)), schema=target)


class StoredRows:
    """A version's rows of ``role`` without holding them: the schema, the row count, and
    the rows as streamed batches (:func:`iter_batches`, one batch in memory). What the
    screen stage passes where it would pass the table, for a version too large to hold
    (``dataward/stages/screen.py``)."""

    def __init__(self, ctx: Context, version_id: int, role: str = "data"):
        self.ctx, self.version_id, self.role = ctx, version_id, role
        self.schema = version_schema(ctx, version_id, role)
        with ctx.session(read_only=True) as s:
            self.num_rows = int(s.get(DatasetVersion, version_id).row_count or 0)

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names) if self.schema is not None else []

    def batches(self, columns: list[str] | None = None) -> Iterator:
        return iter_batches(self.ctx, self.version_id, self.role, columns=columns)
