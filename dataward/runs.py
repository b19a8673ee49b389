"""Pipeline runs: who triggered them, which process holds them, and which died.

A process working on a run *claims* it (host, pid, time); it *releases* it when it stops
working on it without finishing it (an Airflow task between two tasks, a run waiting for
a reviewer). A run still ``running`` is **abandoned** when

- its claim is on this host and that process is gone (or the pid was reused since), or
- it is claimed on another host and was last seen more than ``STALE_CLAIMED`` ago, or
- nobody holds it and it was last seen more than ``STALE_RELEASED`` ago.

:func:`sweep_abandoned` marks such runs ``abandoned``, with where and when they were last
seen; every new run, every rerun and ``dataward runs`` sweep first, so a dead run never
blocks anything.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from dataward.context import Context
from lineage import audit
from lineage.models import DatasetVersion, PipelineRun

ABANDONED = "abandoned"
STALE_CLAIMED = timedelta(hours=24)
STALE_RELEASED = timedelta(days=7)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t


def host() -> str:
    return socket.gethostname()


def claim(ctx: Context, run_id: str) -> None:
    """This process works on ``run_id`` now (a heartbeat; revives a run marked abandoned
    by mistake, e.g. an Airflow task retried after its worker died)."""
    with ctx.session() as s:
        run = s.get(PipelineRun, run_id)
        if run is None:
            return
        run.host, run.pid, run.last_seen_at = host(), os.getpid(), _now()
        if run.status == ABANDONED:
            run.status, run.finished_at = "running", None
            run.note = f"resumed after being marked abandoned ({run.note})"


def release(ctx: Context, run_id: str) -> None:
    """This process stops working on ``run_id`` without finishing it."""
    with ctx.session() as s:
        run = s.get(PipelineRun, run_id)
        if run is not None and run.pid == os.getpid() and run.host == host():
            run.pid, run.last_seen_at = None, _now()


def _process_alive(pid: int, since: datetime | None) -> bool:
    """Whether ``pid`` runs here and is older than its claim (a reused pid is younger)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with Airflow
        from lineage.store import pid_alive

        return pid_alive(pid)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = datetime.fromtimestamp(proc.create_time(), timezone.utc)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return since is None or started <= since + timedelta(seconds=2)


def why_abandoned(run, *, now: datetime | None = None) -> str | None:
    """Why a ``running`` run is abandoned (None: it may still be alive)."""
    if run.status != "running":
        return None
    now = now or _now()
    seen = _aware(run.last_seen_at) or _aware(run.started_at)
    where = f"{run.host or '?'} pid {run.pid}" if run.pid else (run.host or "no process")
    when = seen.isoformat(timespec="seconds") if seen else "never"
    if run.pid and run.host == host():
        if not _process_alive(run.pid, seen):
            return f"process {run.pid} on {run.host} is gone; last seen {when}"
        return None
    if run.pid and seen and now - seen > STALE_CLAIMED:
        return f"no sign of life from {where} since {when}"
    if not run.pid and seen and now - seen > STALE_RELEASED:
        return f"held by no process since {when} (last on {where})"
    return None


def sweep_abandoned(ctx: Context, *, actor: str = "pipeline") -> list[dict[str, Any]]:
    """Mark every dead ``running`` run ``abandoned`` (audited); returns those marked."""
    marked = []
    with ctx.session() as s:
        for run in s.execute(select(PipelineRun).where(PipelineRun.status == "running")).scalars():
            why = why_abandoned(run)
            if why is None:
                continue
            run.status, run.finished_at, run.note = ABANDONED, _now(), why
            ref = None
            if run.version_id is not None:
                from lineage.models import DatasetVersion

                ref = s.get(DatasetVersion, run.version_id).ref
            audit.append(s, actor=actor, action="run-abandoned", subject=ref or run.id,
                         payload={"run_id": run.id, "trigger": run.trigger, "host": run.host,
                                  "pid": run.pid, "last_seen_at": run.last_seen_at, "why": why})
            marked.append({"run_id": run.id, "ref": ref, "why": why})
    return marked


def list_runs(ctx: Context, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest runs, newest first."""
    with ctx.session(read_only=True) as s:
        rows = s.execute(select(PipelineRun).order_by(PipelineRun.started_at.desc()).limit(limit)).scalars().all()
        out = []
        for r in rows:
            ref = s.get(DatasetVersion, r.version_id).ref if r.version_id is not None else None

            def iso(t):
                t = _aware(t)
                return t.isoformat(timespec="seconds") if t else None

            out.append({"run_id": r.id, "ref": ref, "trigger": r.trigger, "triggered_by": r.triggered_by,
                        "status": r.status, "started_at": iso(r.started_at), "finished_at": iso(r.finished_at),
                        "host": r.host, "pid": r.pid, "last_seen_at": iso(r.last_seen_at), "note": r.note})
    return out


def live_runs_on(ctx: Context, version_id: int, *, exclude: str | None = None) -> list[str]:
    """Ids of ``running`` runs on the version that are not abandoned (after a sweep)."""
    with ctx.session(read_only=True) as s:
        return [r for r in s.execute(select(PipelineRun.id).where(
            PipelineRun.version_id == version_id, PipelineRun.status == "running")).scalars() if r != exclude]
