"""The sharded screen, in-process and on a local Ray cluster (issue 26).

The cluster tests start a head and one worker node on loopback (``ray start``), each
with one CPU, and stop them by their process group in the finaliser. They skip, with
the reason, when Ray is not installed (``pip install "dataward[ray]"``; ``make setup``
installs it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from screening.sharded import (
    InProcessExecutor,
    ShardMoments,
    ShardReader,
    fit_sharded,
    merge_moments,
    plan_sample,
    plan_shards,
    read_shard,
    row_hash,
    sample_shard,
    screen_shards,
    shard_runs,
)

N_ROWS = 200_000
#: every per-row score of the Ray run equals the in-process run's within this relative
#: tolerance: the same float operations on the same rows, except that Ray sums the
#: spectral moments per run of shards and then the runs, so the spectral score may differ
#: in its last bits
SCORE_RTOL = 1e-6


def _table(n: int, *, seed: int, flip: float, d: int = 16, k: int = 4):
    centres = np.random.default_rng(1234).normal(0, 1.0, (k, d))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = (centres[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
    labels = y.copy()
    flipped = rng.random(n) < flip
    labels[flipped] = (y[flipped] + 1) % k
    return pa.table({**{f"f{i}": X[:, i] for i in range(d)}, "label": labels}), flipped


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 200,000 x 16 table of 4 classes with 2 % flipped labels (row groups of 20,000),
    and a clean 1,000-row reference."""
    root = tmp_path_factory.mktemp("sharded")
    table, flipped = _table(N_ROWS, seed=0, flip=0.02)
    path = root / "data.parquet"
    pq.write_table(table, path, row_group_size=20_000)
    reference, _ = _table(1_000, seed=99, flip=0.0)
    return {"path": path, "flipped": flipped, "reference": reference, "root": root}


@pytest.fixture(scope="module")
def in_process(data):
    return screen_shards([str(data["path"])], label_col="label", reference=data["reference"], sample_rows=20_000)


# --- the steps, without Ray -------------------------------------------------------------

def test_shard_reader_reads_each_shard_whole_in_any_order(tmp_path):
    """One decoding pass per row group in order; out of order (a retried task) restarts
    the row group; either way each shard's rows are exactly its row range."""
    table, _ = _table(5_000, seed=4, flip=0.0)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=1_700)
    shards = plan_shards([str(path)], shard_rows=300)
    assert len({(s.group, s.part) for s in shards}) == len(shards) == 18
    reader = ShardReader(["f0", "label"])
    order = list(range(len(shards))) + [5, 2, 17, 0, 9]
    for i in order:
        s = shards[i]
        got = reader.read(s)
        want = table.slice(s.row_offset, s.n_rows).select(["f0", "label"])
        assert got.equals(want), (i, s)
    assert read_shard(shards[7]).equals(table.slice(shards[7].row_offset, shards[7].n_rows))


def test_shard_runs_cover_every_shard_once_within_one_row_group():
    from screening.sharded import Shard

    shards = [Shard("a", g, p, 10, 0, 10) for g in range(3) for p in range(4)]
    for pieces in (1, 2, 3, 5, 8, 100):
        runs = shard_runs(shards, pieces)
        assert [i for r in runs for i in r] == list(range(len(shards)))
        assert all(len({shards[i].group for i in r}) == 1 for r in runs)
        assert all(r == list(range(r[0], r[0] + len(r))) for r in runs)
        assert len(runs) >= min(pieces, len(shards))
        assert len(runs) == 3 * min(4, -(-pieces // 3))  # a group is cut only as far as needed
    assert len(shard_runs(shards, 3)) == 3  # one run per row group when there are enough groups
    assert len(shard_runs(shards, 6)) == 6  # each group cut in two


def test_sample_does_not_depend_on_sharding(tmp_path):
    table, _ = _table(5_000, seed=3, flip=0.0)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=1_700)
    plan = plan_sample({0: 1250, 1: 1250, 2: 1250, 3: 1250}, sample_rows=1_000, min_class_rows=50, seed=0)
    picked = []
    for shard_rows in (300, 1_700, 65_536):
        shards = plan_shards([str(path)], shard_rows=shard_rows)
        assert sum(s.n_rows for s in shards) == 5_000
        parts = [sample_shard(read_shard(s), s.row_offset, "label", plan) for s in shards]
        picked.append(np.concatenate([p.column("__row_id").to_numpy() for p in parts]))
    assert all(np.array_equal(picked[0], p) for p in picked[1:])
    assert 800 <= len(picked[0]) <= 1_200  # bounded: Binomial around 1,000
    assert np.array_equal(row_hash(np.arange(10), 0), row_hash(np.arange(10), 0))


def test_class_stratified_sample_keeps_small_classes():
    plan = plan_sample({"a": 1_000_000, "b": 100}, sample_rows=10_000, min_class_rows=200, seed=0)
    assert plan.classes == ("a", "b") and plan.keep[1] == 1.0
    assert plan.keep[0] == pytest.approx(10_000 * 1_000_000 / 1_000_100 / 1_000_000)


def test_moments_merge_exactly(tmp_path):
    table, _ = _table(6_000, seed=4, flip=0.0)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    plan = plan_sample({c: int(n) for c, n in zip(*np.unique(table.column("label").to_numpy(),
                                                                   return_counts=True))},
                       sample_rows=2_000, seed=0)
    whole = plan_shards([str(path)], shard_rows=100_000)
    fitted = fit_sharded(sample_shard(read_shard(whole[0]), 0, "label", plan), label_col="label",
                         config=_quick_config())
    step = ShardMoments(fitted)
    merged = merge_moments(step(read_shard(s)) for s in plan_shards([str(path)], shard_rows=700))
    once = step(read_shard(whole[0]))
    for key in ("count", "sum", "outer"):
        np.testing.assert_allclose(merged[key], once[key], rtol=1e-9, atol=1e-6)


def _quick_config():
    from screening import ScreenConfig

    return ScreenConfig(target_steps=100)


@pytest.mark.slow
def test_sharded_agrees_with_screen_table(data, in_process):
    """The sharded screen (probes trained on a 20,000-row sample) against ``screen_table``
    (probes trained on every row), on the same 200,000 rows: measured Jaccard 0.98 of the
    flagged sets; both find the flipped labels."""
    from screening import screen_table

    legacy = screen_table(pq.read_table(data["path"]), label_col="label", reference=data["reference"])
    a = legacy.scores["flagged"].to_numpy()
    b = in_process.scores["flagged"].to_numpy()
    flipped = data["flipped"]
    assert (a & b).sum() / (a | b).sum() >= 0.95
    assert (b & flipped).sum() / flipped.sum() >= 0.95
    assert (b & ~flipped).sum() <= 0.002 * (~flipped).sum()
    assert in_process.summary["sample"]["anchored_refit_max_abs_diff"] < 1e-4


# --- a local Ray cluster ----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A head and one worker node on 127.0.0.1, one CPU each; stopped by process group."""
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'dataward[ray]' (make setup does)")
    ray_bin = Path(sys.executable).parent / "ray"
    port = _free_port()
    temp = Path("/tmp") / f"dw-ray-{os.getpid()}"  # short: Ray's socket paths must fit 107 bytes
    # no token authentication: a throwaway loopback cluster, and no token file left in ~/.ray
    # (one there turns authentication on for every later cluster of this user)
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env = dict(os.environ)
    logs = tmp_path_factory.mktemp("ray-logs")
    procs = []

    def start(args, log):
        procs.append(subprocess.Popen([str(ray_bin), "start", "--block", "--node-ip-address", "127.0.0.1",
                                       "--num-cpus", "1", *args], env=env, start_new_session=True,
                                      stdout=open(logs / log, "w"), stderr=subprocess.STDOUT))

    start(["--head", "--port", str(port), "--include-dashboard", "false", "--disable-usage-stats",
           "--temp-dir", str(temp)], "head.log")
    address = f"127.0.0.1:{port}"
    try:
        _wait_for(lambda: _ray_status(ray_bin, address, env) >= 1, 60, logs / "head.log")
        start(["--address", address], "worker.log")
        import ray

        ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=False)
        _wait_for(lambda: sum(n["Alive"] for n in ray.nodes()) >= 2 and ray.cluster_resources().get("CPU", 0) >= 2,
                  90, logs / "worker.log")
        yield {"address": address, "sessions": {p.pid for p in procs}}
    finally:
        import ray

        ray.shutdown()
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            try:  # whatever of this cluster is still running
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)
        import shutil

        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _ray_status(ray_bin, address, env) -> int:
    """Nodes alive as ``ray status`` lists them (0 when the head does not answer yet)."""
    out = subprocess.run([str(ray_bin), "status", "--address", address], env=env, capture_output=True,
                         text=True, timeout=30)
    return out.stdout.count("node_") if out.returncode == 0 else 0


def _wait_for(check, seconds, log):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise RuntimeError(f"the local Ray cluster did not start in {seconds} s: {Path(log).read_text()[-2000:]}")


def _cluster_processes(sessions, title: str) -> set[int]:
    """Pids of this cluster's processes (of its sessions) whose command line holds
    ``title``: Ray titles a shard actor ``...ShardActor...`` and a worker running the
    task NAME ``ray::NAME``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            sid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3])
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if sid in sessions and title in cmdline:
            found.add(int(entry.name))
    return found


def _kill_one(sessions, title: str, *, seconds: float, every: float, skip=frozenset()) -> list[int]:
    """SIGKILL the first process of the cluster whose command line holds ``title`` (and
    whose pid is not in ``skip``), looking every ``every`` s for ``seconds``; returns
    its pid in a list, or an empty list when none was seen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid in sorted(_cluster_processes(sessions, title) - set(skip)):
            os.kill(pid, signal.SIGKILL)
            return [pid]
        time.sleep(every)
    return []


def _assert_same(ray_scores, local_scores):
    assert ray_scores["row_id"].tolist() == list(range(N_ROWS))
    np.testing.assert_array_equal(ray_scores["flagged"].to_numpy(), local_scores["flagged"].to_numpy())
    for col in ("spectral", "label_noise", "influence", "backdoor", "label_p_value"):
        np.testing.assert_allclose(ray_scores[col].to_numpy(), local_scores[col].to_numpy(), rtol=SCORE_RTOL,
                                   atol=1e-12, err_msg=col)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ray_gives_the_in_process_flags(ray_cluster, data, in_process, tmp_path):
    from dataward.ray_engine import screen_parquet

    out = tmp_path / "screen"
    result = screen_parquet([data["path"]], label_col="label", reference=data["reference"], out_dir=out,
                            address=ray_cluster["address"], workers=2, shard_rows=20_000)
    written = pq.read_table(out / "scores.parquet").to_pandas()
    _assert_same(written, in_process.scores)
    assert result.summary["engine"] == "ray" and len(result.summary["workers"]["peak_rss_mb"]) >= 2
    assert not (out / "rows").exists()  # the per-shard parts are folded into scores.parquet


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ray_applies_the_backdoor_rule_as_in_process(ray_cluster, tmp_path):
    """A table whose backdoor the screen finds on the sample, without a reference: the
    rule (sklearn models and all) travels to the Ray actors and flags the same rows."""
    from dataward.ray_engine import screen_parquet

    sys.path.insert(0, str(Path(__file__).parent / "screening"))
    from test_sharded_backdoor import _table as poisoned_table

    table, poisoned = poisoned_table(40_000, poison=0.03)
    path = tmp_path / "poisoned.parquet"
    pq.write_table(table, path, row_group_size=10_000)
    local = screen_shards([str(path)], label_col="label", sample_rows=10_000, shard_rows=10_000)
    assert [c["class"] for c in local.summary["screens"]["backdoor"]["classes_found"]] == [0]
    out = tmp_path / "screen"
    on_ray = screen_parquet([path], label_col="label", out_dir=out, address=ray_cluster["address"], workers=2,
                            sample_rows=10_000, shard_rows=10_000)
    written = pq.read_table(out / "scores.parquet").to_pandas()
    np.testing.assert_array_equal(written["flagged"].to_numpy(), local.scores["flagged"].to_numpy())
    np.testing.assert_allclose(written["backdoor"].to_numpy(), local.scores["backdoor"].to_numpy(), rtol=SCORE_RTOL)
    assert on_ray.summary["screens"]["backdoor"]["flagged"] == local.summary["screens"]["backdoor"]["flagged"]
    assert written["flagged"].to_numpy()[poisoned].mean() >= 0.95


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_worker_is_retried_or_fails_cleanly(ray_cluster, data, in_process, tmp_path):
    """SIGKILL one scoring actor mid-screen: Ray restarts it and retries its shards, and
    the flags are the in-process flags; or the screen fails with RayScreenError and
    publishes nothing."""
    import ray

    from dataward.ray_engine import RayScreenError, screen_parquet

    scoring = threading.Event()
    killed = []

    earlier: set[int] = set()

    def progress(msg):
        if msg.startswith("scoring"):
            earlier.update(_cluster_processes(ray_cluster["sessions"], "ShardActor"))  # the previous steps' actors
            scoring.set()

    def killer():
        if not scoring.wait(180):
            return
        time.sleep(1.0)  # let the scoring actors take their first shards
        killed.extend(_kill_one(ray_cluster["sessions"], "ShardActor", seconds=60, every=0.2, skip=earlier))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    out = tmp_path / "screen"
    try:
        result = screen_parquet([data["path"]], label_col="label", reference=data["reference"], out_dir=out,
                                address=ray_cluster["address"], workers=2, shard_rows=5_000, progress=progress)
    except RayScreenError as exc:
        assert "Ray" in str(exc) and "\n" not in str(exc)
        assert not (out / "scores.parquet").exists() and not (out / "rows").exists()
        result = None
    thread.join(timeout=70)
    assert killed, "no scoring actor was alive to kill"
    print(f"killed actor {killed[0]}: the screen " + ("failed cleanly" if result is None else "finished"))
    if result is not None:
        _assert_same(result.scores, in_process.scores)
    assert ray.is_initialized()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_verdict_task_is_retried(ray_cluster, data, in_process, tmp_path):
    """SIGKILL the worker running the verdict task (it gathers every row's outputs and
    writes scores.parquet): Ray runs the task again and the flags are the in-process
    flags, with no temporary file left beside scores.parquet."""
    from dataward.ray_engine import screen_parquet

    started = threading.Event()
    killed = []

    def progress(msg):
        if msg.startswith("the verdict"):
            started.set()

    def killer():
        if started.wait(180):
            killed.extend(_kill_one(ray_cluster["sessions"], "ray::verdict_step", seconds=30, every=0.02))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    out = tmp_path / "screen"
    result = screen_parquet([data["path"]], label_col="label", reference=data["reference"], out_dir=out,
                            address=ray_cluster["address"], workers=2, shard_rows=5_000, progress=progress)
    thread.join(timeout=40)
    assert killed, "the verdict task was never seen running"
    _assert_same(pq.read_table(out / "scores.parquet").to_pandas(), in_process.scores)
    assert sorted(p.name for p in out.iterdir()) == ["scores.parquet", "summary.json"]
    assert result.summary["flagged"] == int(in_process.scores["flagged"].sum())


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_driver_holds_no_probe(ray_cluster, data, tmp_path):
    """On Ray the fit and the verdict run as tasks: the driver process (the Airflow task)
    never imports torch or cleanlab, so it holds no probe and no per-row array; the
    summary names the fit's and the verdict's peak memory among the workers'."""
    code = ("import json, sys; from dataward.ray_engine import screen_parquet; import pyarrow.parquet as pq; "
            f"r = screen_parquet([{str(data['path'])!r}], label_col='label', "
            f"reference=pq.read_table({str(data['root'] / 'reference.parquet')!r}), "
            f"out_dir={str(tmp_path / 'screen')!r}, address={ray_cluster['address']!r}, workers=2); "
            "print(json.dumps({'torch': 'torch' in sys.modules, 'cleanlab': 'cleanlab' in sys.modules, "
            "'summary': r.summary}))")
    pq.write_table(data["reference"], data["root"] / "reference.parquet")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["torch"] is False and out["cleanlab"] is False
    peaks = out["summary"]["peak_rss_mb"]
    assert peaks["fit"] > 0 and peaks["verdict"] > 0
    workers = {float(v) for v in out["summary"]["workers"]["peak_rss_mb"].values()}
    assert peaks["verdict"] in workers


def test_no_ray_import_without_an_address(tmp_path):
    """The default install stays light: the in-process sharded path never imports Ray."""
    code = ("import sys; from screening.sharded import screen_shards; import dataward.ray_engine; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert isinstance(InProcessExecutor().map_shards([], lambda t, s: None), list)
