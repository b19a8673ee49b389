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
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dataward.context import Context
from lineage import audit
from lineage.ingest import resolve
from lineage.models import STATUS_QUARANTINED, STATUS_REJECTED, DatasetVersion, StageResult

TERMINAL = (STATUS_QUARANTINED, STATUS_REJECTED)


def finished(ctx: Context, ref: str, stage: str) -> tuple[int, str, dict[str, Any] | None]:
    """(version id, canonical ref, the stage's recorded output or None if not run yet)."""
    with ctx.session() as s:
        v = resolve(s, ref)
        row = s.execute(select(StageResult).where(StageResult.version_id == v.id,
                                                  StageResult.stage == stage)).scalars().first()
        return v.id, v.ref, (row.output if row else None)


def record(ctx: Context, version_id: int, stage: str, output: dict[str, Any], *,
           status: str, new_status: str | None = None, reason: str | None = None,
           run_id: str | None = None, actor: str = "pipeline", extra=None) -> dict[str, Any]:
    """Record a stage's output (and optionally move the version's status) atomically.

    ``extra(session, version)`` may add more rows in the same transaction. Returns the
    output actually recorded (the earlier one if another run recorded it first).
    """
    try:
        with ctx.session() as s:
            v = s.get(DatasetVersion, version_id)
            s.add(StageResult(version_id=v.id, stage=stage, run_id=run_id, status=status,
                              output=json.loads(json.dumps(output, default=str))))
            s.flush()
            if new_status and (v.status not in TERMINAL or new_status in TERMINAL):
                v.status = new_status
                if reason:
                    v.status_reason = reason if not v.status_reason or v.status_reason == reason \
                        else f"{v.status_reason}; {reason}"
            if extra:
                extra(s, v)
            audit.append(s, actor=actor, action=stage, subject=v.ref,
                         payload={"status": status, "run_id": run_id, "version_status": v.status})
        return output
    except IntegrityError:
        with ctx.session() as s:
            row = s.execute(select(StageResult).where(StageResult.version_id == version_id,
                                                      StageResult.stage == stage)).scalars().one()
            return row.output


def version_dir(ctx: Context, ref: str) -> Path:
    name, _, number = ref.partition("@")
    return ctx.settings.runs_root / name / number


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_table(ctx: Context, version_id: int, role: str = "data"):
    """The version's files of ``role`` as one Arrow table (None if it has none)."""
    import pyarrow as pa

    from lineage.files import iter_file_batches
    from lineage.ingest import data_paths

    with ctx.session() as s:
        paths = data_paths(ctx.store, s.get(DatasetVersion, version_id), role)
    if not paths:
        return None
    tables = []
    for path, fmt in paths:
        batches = list(iter_file_batches(path, fmt))
        tables.append(pa.Table.from_batches(batches) if batches else None)
    tables = [t for t in tables if t is not None]
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
