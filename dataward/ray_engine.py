"""The Ray executor of the sharded screen (:mod:`screening.sharded`), and the entry point
that picks an executor.

Without an address (``DATAWARD_RAY_ADDRESS``, or the one the screen stage is given from
the Airflow task's connection: ``dataward/stages/screen_engine.py``) nothing here imports
Ray and the sharded steps run in this process
(:class:`screening.sharded.InProcessExecutor`). With it, every map step runs on that
cluster as a Ray Data ``map_batches`` over runs of consecutive shards (one decoding pass
per row group, :func:`screening.sharded.shard_runs`): an actor pool of ``workers`` actors
(``num_gpus`` each where the cluster has GPUs), each constructed once with the fitted
probe and called on run after run. A worker reads its own shards' rows from the Parquet
files (the files must be readable at the same path on every node:
the run's folder on shared storage), so only shard descriptors and small per-shard
results cross the cluster; the fit and the verdict run as one Ray task each
(:func:`screening.sharded.fit_step`, :func:`screening.sharded.verdict_step`), the fitted
probe staying in the object store, so the driver (the Airflow task) holds no probe and
no per-row array; the per-row scores are written by the workers as Parquet into
the run's folder (``OUT/rows/part-NNNNNN.parquet``, one per shard, written atomically so
a retried task overwrites its own part). The verdict task reads the per-row statistics part
by part (:func:`screening.sharded.gather_rows`), then writes ``OUT/scores.parquet`` from
the parts and the flags, part by part (:func:`screening.sharded.write_scores`).

Faults: Ray Data restarts a killed actor and retries its lost tasks, so the job ends
with the same flags; when it cannot (the cluster is gone, retries are exhausted), the
screen raises :class:`RayScreenError` with one readable line, removes the part files,
and writes no ``scores.parquet``.

Ray is an optional extra: ``pip install "dataward[ray]"``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, Callable

#: The environment variable that names the Ray cluster (``HOST:PORT`` or ``ray://...``).
ADDRESS_ENV = "DATAWARD_RAY_ADDRESS"
#: Actors per map step (``DATAWARD_RAY_WORKERS``; default: the cluster's CPUs, at most 8).
WORKERS_ENV = "DATAWARD_RAY_WORKERS"


class RayScreenError(RuntimeError):
    """The screen could not finish on the Ray cluster; nothing was published."""


def ray_address() -> str | None:
    """The configured cluster, or None: the sharded steps then run in-process."""
    return os.environ.get(ADDRESS_ENV) or None


class _ShardActor:
    """One Ray Data actor: builds the step once (``make()``: the probe is loaded once per
    worker), then runs ``call(step, rows, shard)`` on every shard of each run it is given
    (a run: consecutive parts of one row group, read in one decoding pass)."""

    def __init__(self, shards, runs, make: Callable[[], Any], call: Callable, columns, rows_dir: str | None,
                 merge: Callable | None = None):
        self.shards, self.runs, self.call, self.columns, self.rows_dir = shards, runs, call, columns, rows_dir
        self.merge = merge
        self.step = make() if make is not None else None

    def __call__(self, batch: dict) -> dict:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from screening.sharded import ShardReader, peak_rss_mb

        out, index = [], []
        for r in np.asarray(batch["i"]).tolist():
            reader = ShardReader(self.columns)
            if self.merge is not None:  # one result for the run: its shards' results merged here
                merged = self.merge(self.call(self.step, reader.read(self.shards[i]), self.shards[i])
                                    for i in self.runs[r])
                out.append(pickle.dumps(merged))
                index.append(r)
                continue
            for i in self.runs[r]:
                shard = self.shards[i]
                result = self.call(self.step, reader.read(shard), shard)
                if isinstance(result, pa.Table) and self.rows_dir is not None:
                    path = Path(self.rows_dir) / f"part-{i:06d}.parquet"
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    pq.write_table(result, tmp)
                    os.replace(tmp, path)  # a retried task overwrites its own part, whole
                    result = str(path)
                out.append(pickle.dumps(result))
                index.append(i)
        n = len(out)
        return {"i": np.asarray(index, dtype=np.int64), "payload": np.array(out, dtype=object),
                "pid": np.full(n, os.getpid()), "peak_rss_mb": np.full(n, peak_rss_mb())}


class RayExecutor:
    """Maps the sharded steps over a Ray cluster with Ray Data (see the module docstring).

    ``worker_peak_rss_mb``: the peak resident memory of every worker process seen, by pid."""

    name = "ray"

    def __init__(self, address: str, *, workers: int | None = None, rows_dir: str | Path | None = None,
                 num_gpus: float | None = None):
        import ray

        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, logging_level="ERROR",
                     configure_logging=False)
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        resources = ray.cluster_resources()
        self.cpus = int(resources.get("CPU", 1))
        self.workers = int(workers or os.environ.get(WORKERS_ENV) or max(1, min(self.cpus, 8)))
        self.num_gpus = num_gpus if num_gpus is not None else (1.0 if resources.get("GPU", 0) >= self.workers else 0)
        self.rows_dir = None if rows_dir is None else str(rows_dir)
        self.worker_peak_rss_mb: dict[int, float] = {}

    def _run(self, shards, make, call, columns, rows_dir=None, merge=None) -> list:
        """Per shard, the step's result; with ``merge``, per run of shards, the merge of
        its shards' results (done on the worker)."""
        import ray

        from screening.sharded import shard_runs

        runs = shard_runs(shards, 4 * self.workers)
        ds = ray.data.from_items([{"i": r} for r in range(len(runs))],
                                 override_num_blocks=min(len(runs), 4 * self.workers))
        ds = ds.map_batches(_ShardActor, fn_constructor_args=(shards, runs, make, call, columns, rows_dir, merge),
                            batch_size=1, compute=ray.data.ActorPoolStrategy(size=self.workers), num_cpus=1,
                            num_gpus=self.num_gpus or None, batch_format="numpy")
        try:
            rows = ds.take_all()
        except Exception as exc:  # Ray wraps worker errors in its own types
            raise RayScreenError(f"the screen failed on the Ray cluster: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        results: dict[int, Any] = {}
        for row in rows:
            results[int(row["i"])] = pickle.loads(row["payload"])
            pid = int(row["pid"])
            self.worker_peak_rss_mb[pid] = max(self.worker_peak_rss_mb.get(pid, 0.0), float(row["peak_rss_mb"]))
        expected = len(runs) if merge is not None else len(shards)
        missing = [i for i in range(expected) if i not in results]
        if missing:
            what = "runs of shards" if merge is not None else "shards"
            raise RayScreenError(f"the Ray cluster returned no result for {len(missing)} of {expected} {what}")
        return [results[i] for i in range(expected)]

    def map_shards(self, shards, step, columns=None) -> list:
        return self._run(shards, None, lambda _, table, shard: step(table, shard), columns)

    def map_actor(self, shards, make, call, columns=None) -> list:
        """Per shard, the step's result; a table the workers wrote is returned as its
        path (``OUT/rows/part-NNNNNN.parquet``), read by the one step that reads them
        all (the verdict) one at a time."""
        return self._run(shards, make, call, columns, self.rows_dir)

    def reduce_actor(self, shards, make, call, merge, columns=None) -> Any:
        """``merge`` of every shard's result: each worker merges the shards of each run
        it is given, and the driver merges the runs' results (a few, in run order)."""
        return merge(self._run(shards, make, call, columns, merge=merge))

    def call_kept(self, fn: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
        """``fn(*args)`` once, as a Ray task returning a pair: (an ``ObjectRef`` of the
        first, which stays in the cluster's object store, for the steps that
        :func:`screening.sharded.resolve` it, the second here). The second's ``pid`` and
        ``peak_rss_mb``, where given, count among the workers' peaks."""
        import ray

        first, second = self._task(fn, 2).remote(*args)
        out = self._get(ray.get, second)
        if isinstance(out, dict) and "pid" in out and "peak_rss_mb" in out:
            pid = int(out["pid"])
            self.worker_peak_rss_mb[pid] = max(self.worker_peak_rss_mb.get(pid, 0.0), float(out["peak_rss_mb"]))
        return first, out

    def _task(self, fn, num_returns: int):
        import ray

        # CPU work (the fit on a 20,000-row sample, the verdict's numpy): no GPU asked for
        return ray.remote(fn).options(num_cpus=1, num_returns=num_returns, max_retries=3)

    @staticmethod
    def _get(get, ref):
        from screening import ScreeningInputError

        try:
            return get(ref)
        except Exception as exc:  # Ray wraps a task's error in its own types
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ScreeningInputError):
                raise ScreeningInputError(str(cause)) from None  # the data, not the cluster
            raise RayScreenError(f"the screen failed on the Ray cluster: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc


def screen_parquet(paths: list[str | Path], *, label_col: str, out_dir: str | Path, reference=None,
                   config=None, sample_rows: int = 20_000, address: str | None = None, workers: int | None = None,
                   shard_rows: int | None = None, progress=None):
    """Screen the table stored in ``paths`` shard by shard and write ``OUT/scores.parquet``
    and ``OUT/summary.json``; on the Ray cluster at ``address`` (default
    ``DATAWARD_RAY_ADDRESS``), else in this process. Returns the
    :class:`screening.sharded.ShardedResult`.

    Raises :class:`RayScreenError` when the cluster cannot finish; nothing is written then."""
    from screening.sharded import SHARD_ROWS, InProcessExecutor, screen_shards

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    address = address if address is not None else ray_address()
    rows_dir = out_dir / "rows"
    executor = InProcessExecutor()
    if address:
        shutil.rmtree(rows_dir, ignore_errors=True)
        rows_dir.mkdir()
        executor = RayExecutor(address, workers=workers, rows_dir=rows_dir)
    try:
        result = screen_shards([str(p) for p in paths], label_col=label_col, reference=reference, config=config,
                               sample_rows=sample_rows, executor=executor, shard_rows=shard_rows or SHARD_ROWS,
                               progress=progress, scores_path=out_dir / "scores.parquet")
    except Exception:
        shutil.rmtree(rows_dir, ignore_errors=True)
        _remove_partial_scores(out_dir)
        raise
    _remove_partial_scores(out_dir)  # a verdict task killed while writing, then retried
    if address:
        result.summary["workers"] = {"count": executor.workers,
                                     "peak_rss_mb": {str(k): round(v, 1)
                                                     for k, v in executor.worker_peak_rss_mb.items()}}
    (out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str))
    shutil.rmtree(rows_dir, ignore_errors=True)
    return result


def _remove_partial_scores(out_dir: Path) -> None:
    """The temporary files of a ``scores.parquet`` whose writer died mid-write
    (:func:`screening.sharded.write_scores` names them ``scores.parquet.PID.tmp``)."""
    for stray in out_dir.glob("scores.parquet.*.tmp"):
        stray.unlink(missing_ok=True)
