"""Which engine the screen stage uses, and the stage's Ray path.

Where the cluster's address comes from, first found wins (:func:`cluster_address`):

1. ``DATAWARD_RAY_ADDRESS`` (:data:`dataward.ray_engine.ADDRESS_ENV`), for every door;
2. an address the caller gives for this screen with :func:`ray_address_given`: the
   Airflow screen task gives the one its Airflow connection names (conn id
   ``DATAWARD_RAY_CONN_ID``, default ``dataward_ray``; resolved in
   :mod:`dataward.airflow.ray_connection`, so that nothing below the adapter imports
   Airflow);
3. none: the stage screens in-process with :func:`screening.screen_table`, exactly as
   before, and nothing here imports Ray.

With an address, :func:`screen_on_ray` submits the sharded screen
(:func:`dataward.ray_engine.screen_parquet`) over the version's stored Parquet files to
that cluster and waits for it; the Airflow screen task, which calls the same stage, is
then a thin client of the cluster. The stage output's ``engine`` records the address and
where it came from (``address_source``).

What the Ray path does not do, and what the stage records instead (``engine.not_run``
of the stage output and of ``summary.json``; the canary's ``reason`` in the report):

* the sharded screen refuses the data (images, wide tables that need a projection) or
  the stored files are not all Parquet: the stage falls back to the in-process screen
  and records why (``engine.fallback_reason``); that screen needs the whole table in
  this process's memory, as any in-process screen does;
* the canary self-test is not run (canaries are planted into the in-memory table the
  in-process screen reads): recorded as ``canary.status = not_run`` with the reason, so
  the report says so and the decision policy treats it as any run without a canary
  self-test;
* the activation-clustering screen and the verdict's trigger expansion are not run
  (they fit on every row's representation; the backdoor screen runs on the sample and
  its rule flags every row), no ``suggested_label`` is given
  (so the policy removes label noise rather than relabelling it) and no
  ``projection.npy`` (no scatter plot in the report).

Atomic: the workers write into a staging folder under the run's screen folder; only a
finished screen writes ``scores.parquet`` and ``summary.json`` (each atomically, through
:mod:`dataward.artifacts`). When the cluster cannot be reached or cannot finish, the
stage records one readable error (the version is quarantined, not approved), the
staging folder is removed, and ``dataward rerun NAME@VERSION --from screen`` screens it
again.

A stage killed outright (SIGKILL, a lost node) runs no ``finally`` and leaves its
staging folder behind. The folder's name says who owns it
(``.ray-staging-HOST-PID-RANDOM``, the convention of :mod:`lineage.store`'s temporary
files), and every screen of the folder first removes the staging folders whose owner is
gone (:func:`remove_stale_staging`): on this host, a dead process id; from another host,
whose processes cannot be checked from here, only one older than
:data:`lineage.store.STALE_AFTER_S`. The folder of a screen still running on this host
is never touched, so two screens of one version at once (a rerun beside a scheduled
run) cannot break each other; removing every staging folder at start could.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataward import artifacts
from dataward.context import Context
from dataward.reports.verdict_text import with_rule_text
from lineage.store import is_stale_temp, temp_tag

#: The prefix of the staging folders :func:`screen_on_ray` makes under the screen folder.
STAGING_PREFIX = ".ray-staging-"

# The address a caller gave for the screens it runs (the Airflow screen task: its
# connection's), with where it came from; DATAWARD_RAY_ADDRESS still wins over it.
_GIVEN: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("dataward_ray_address",
                                                                                  default=None)

#: What the Ray path leaves out, each with why (recorded in the output and summary.json).
NOT_RUN_ON_RAY = [
    {"what": "canary self-test",
     "why": "not run on the Ray path: canaries are planted into the in-memory table that only the "
            "in-process screen reads"},
    {"what": "activation-clustering screen, the verdict's trigger expansion",
     "why": "they fit per-class models on every row's representation; the sharded screen holds a sample "
            "(the backdoor screen runs on the sample and its rule is applied to every row)"},
    {"what": "suggested_label",
     "why": "the sharded verdict gives no suggested labels, so flagged label noise is removed, never relabelled"},
    {"what": "projection.npy",
     "why": "the sharded screen keeps no per-row representations, so the report has no scatter plot"},
]


@dataclass
class EngineRun:
    """What :func:`screen_on_ray` did. ``output``: the stage output (done or error) when
    the Ray path ran; None when the stage must screen in-process (``engine`` then says why).
    ``result``: the :class:`screening.sharded.ShardedResult` of a finished run."""

    engine: dict[str, Any]
    output: dict[str, Any] | None = None
    result: Any = None


@contextlib.contextmanager
def ray_address_given(address: str | None, *, source: str) -> Iterator[None]:
    """Within the block, screens use the cluster at ``address`` (``source`` says where it
    came from, for the record) unless ``DATAWARD_RAY_ADDRESS`` names one; ``address`` None
    changes nothing. The Airflow screen task passes its connection's address this way."""
    token = _GIVEN.set((address, source) if address else _GIVEN.get())
    try:
        yield
    finally:
        _GIVEN.reset(token)


def cluster_address() -> tuple[str, str] | None:
    """(address, where it came from) of the cluster the screen uses, or None: in-process."""
    from dataward.ray_engine import ADDRESS_ENV, ray_address

    address = ray_address()
    if address:
        return address, ADDRESS_ENV
    return _GIVEN.get()


def remove_stale_staging(out_dir: str | Path) -> list[Path]:
    """Remove the staging folders under ``out_dir`` that killed screens left (their owner
    process is gone, or, from another host, they are very old); returns what was removed."""
    removed = []
    for folder in sorted(Path(out_dir).glob(STAGING_PREFIX + "*")):
        if folder.is_dir() and not folder.is_symlink() and is_stale_temp(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def screen_on_ray(ctx: Context, version_id: int, *, label_col: str, reference, config, out_dir,
                  ref: str | None = None) -> EngineRun | None:
    """Screen version ``version_id`` on the cluster :func:`cluster_address` names; None
    when there is none (the stage screens in-process as before). Either way, first
    removes the staging folders killed screens left under ``out_dir``."""
    if Path(out_dir).is_dir():
        remove_stale_staging(out_dir)
    found = cluster_address()
    if not found:
        return None
    address, source = found
    paths, formats = _stored_files(ctx, version_id)
    if not paths or formats - {"parquet"}:
        return _fallback(address, source, "the Ray path reads the stored Parquet files; this version's data "
                                          "files are " + ", ".join(sorted(formats or {"absent"})))
    unreachable = _unreachable(address)
    if unreachable:
        return _error(address, source, unreachable, ref)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # the workers write here; the name says which process owns it (remove_stale_staging)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{temp_tag()}-", dir=out_dir))
    try:
        return _screen(address, source, paths, label_col, reference, config, out_dir, staging, ref)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _screen(address, source, paths, label_col, reference, config, out_dir: Path, staging: Path, ref
            ) -> EngineRun:
    from dataward.ray_engine import RayScreenError, screen_parquet
    from screening import ScreeningInputError

    try:
        result = screen_parquet(paths, label_col=label_col, out_dir=staging, reference=reference,
                                config=config, address=address)
    except ImportError as exc:
        return _error(address, source, f"a Ray cluster is configured ({source}) but Ray cannot be imported "
                                       f"({exc}): pip install \"dataward[ray]\"", ref)
    except ScreeningInputError as exc:  # images, projected wide tables: screen_table can
        return _fallback(address, source, f"the sharded screen refused the data: {exc}")
    except RayScreenError as exc:
        return _error(address, source, str(exc), ref)
    except Exception as exc:  # ray.init and the cluster raise their own types
        line = str(exc).splitlines()[0] if str(exc) else ""
        return _error(address, source, f"{type(exc).__name__}: {line}", ref)
    engine = {"name": "ray", "address": address, "address_source": source,
              "workers": (result.summary.get("workers") or {}).get("count"),
              "n_shards": result.summary.get("n_shards"), "not_run": NOT_RUN_ON_RAY}
    result.summary["not_run"] = NOT_RUN_ON_RAY
    with_rule_text(result.summary)  # the verdict's rule in words, as the in-process path writes it
    # scores.parquet, written part by part into the staging folder: renamed into place
    # (the same file system); summary.json atomically
    os.replace(result.scores_path, out_dir / artifacts.SCORES)
    result.scores_path = out_dir / artifacts.SCORES
    artifacts.write_summary(result.summary, out_dir)
    n, n_flagged = int(result.summary["n_rows"]), int(result.summary["flagged"])
    output = {"status": "done", "n_rows": n, "n_flagged": n_flagged, "flagged_fraction": n_flagged / n if n else 0.0,
              "scores_path": str(out_dir / artifacts.SCORES), "projection_path": None,
              "summary": result.summary, "engine": engine,
              "canary": {"status": "not_run", "reason": NOT_RUN_ON_RAY[0]["why"], "n_canaries": 0}}
    return EngineRun(engine, output, result)


def _stored_files(ctx: Context, version_id: int) -> tuple[list[str], set[str]]:
    from lineage.ingest import data_paths
    from lineage.models import DatasetVersion

    with ctx.session(read_only=True) as s:
        files = data_paths(ctx.store, s.get(DatasetVersion, version_id), "data")
    return [str(p) for p, _ in files], {str(fmt) for _, fmt in files}


def _unreachable(address: str) -> str | None:
    """Why the cluster's head cannot be reached (a TCP connect, 5 s), or None; ``ray.init``
    on a dead address would otherwise wait for a minute and say less."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return None  # "auto" and the like: let Ray resolve it
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return None
    except OSError as exc:
        return f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})"


def _fallback(address: str, source: str, why: str) -> EngineRun:
    return EngineRun({"name": "in-process", "address": address, "address_source": source, "fallback_reason": why})


def _error(address: str, source: str, why: str, ref: str | None) -> EngineRun:
    reason = (f"the screen could not run on the Ray cluster ({address}): {why}; nothing was written; "
              f"screen it again when the cluster is back: dataward rerun {ref or 'NAME@VERSION'} --from screen")
    engine = {"name": "ray", "address": address, "address_source": source, "error": why}
    return EngineRun(engine, {"status": "error", "reason": reason, "engine": engine})
