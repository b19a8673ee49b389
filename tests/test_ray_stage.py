"""The pipeline's screen stage on Ray (issue 26, part 2): with ``DATAWARD_RAY_ADDRESS`` the
stage (which ``dataward run`` and the Airflow screen task both call) submits the sharded
screen to the cluster and waits for it; the Airflow screen task finds the cluster in its
Airflow connection too (`airflow dags test` with ``AIRFLOW_CONN_DATAWARD_RAY``),
data the sharded screen refuses is screened in-process with the reason, and a screen
killed mid-run leaves a staging folder the next screen removes.

The cluster is the local loopback one of tests/test_ray_engine.py (a head and one worker
node, one CPU each), started by its fixture; the tests skip, with the reason, when Ray is
not installed.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_ray_engine import _free_port, ray_cluster  # noqa: F401  (the fixture, reused)

N_ROWS = 4_000
REF = "ray-table@1"


def _table(n: int, *, seed: int, flip: float, d: int = 8, k: int = 3) -> pa.Table:
    centres = np.random.default_rng(7).normal(0, 1.5, (k, d))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = (centres[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
    flipped = rng.random(n) < flip
    y = np.where(flipped, (y + 1) % k, y)
    return pa.table({**{f"f{i}": x[:, i] for i in range(d)}, "label": y.astype(np.int64)})


@pytest.fixture
def dataset(tmp_path):
    """A 4,000-row numeric table with 3 % flipped labels in row groups of 1,000 (four
    shards), a clean 600-row reference, and its manifest."""
    data = tmp_path / "data.parquet"
    pq.write_table(_table(N_ROWS, seed=0, flip=0.03), data, row_group_size=1_000)
    pq.write_table(_table(600, seed=1, flip=0.0), tmp_path / "reference.parquet")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("name: ray-table\nowner: a@b.c\nlicense: CC-BY-4.0\nsource: {uri: 's3://x'}\n"
                        "kind: no-suite-kind\nlabel_column: label\nreference: reference.parquet\n")
    return {"data": data, "manifest": manifest, "reference": tmp_path / "reference.parquet"}


def _screen_output(ref: str = REF) -> dict:
    from dataward.context import Context
    from dataward.pipeline import run_stage

    return run_stage(Context(), "screen", ref)  # recorded already: returns the recorded output


def _in_process_sharded(stored: str, reference_path):
    """The same sharded screen, in this process, on the same stored file, reference and policy."""
    from dataward.governance.policy import load_policy
    from screening import ScreenConfig, VerdictConfig
    from screening.sharded import screen_shards

    config = ScreenConfig(verdict=VerdictConfig(**load_policy().verdict.config_fields()))
    return screen_shards([stored], label_col="label", reference=pq.read_table(reference_path), config=config)


def _stored_file(home) -> str:
    from dataward.context import Context
    from lineage.ingest import data_paths, resolve

    ctx = Context()
    with ctx.session() as s:
        return str(data_paths(ctx.store, resolve(s, REF))[0][0])


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_screen_stage_runs_on_ray(ray_cluster, home, cli, dataset, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DATAWARD_RAY_ADDRESS", ray_cluster["address"])
    r = cli("run", str(dataset["data"]), "--manifest", str(dataset["manifest"]), "--json")
    assert r.returncode in (0, 1), r.stderr  # 1: no GX suite for this kind quarantines it
    out = _screen_output()
    assert out["status"] == "done", out.get("reason")
    screen_dir = home / "runs" / "ray-table" / "1" / "screen"
    # the artefacts came from the Ray path: the summary names the engine and its workers
    summary = json.loads((screen_dir / "summary.json").read_text())
    assert summary["engine"] == "ray" and summary["workers"]["count"] >= 2
    assert summary["n_shards"] == 4 and len(summary["workers"]["peak_rss_mb"]) >= 1
    assert {w["what"] for w in summary["not_run"]} >= {"canary self-test", "suggested_label"}
    assert out["engine"]["name"] == "ray" and out["engine"]["address"] == ray_cluster["address"]
    assert out["canary"]["status"] == "not_run" and "not run on the Ray path" in out["canary"]["reason"]
    assert out["used_reference"] and out["leakage"]["status"] == "done"
    # the scores contract, and nothing of the staging folder left
    scores = pq.read_table(screen_dir / "scores.parquet").to_pandas()
    assert list(scores.columns[:5]) == ["row_id", "spectral", "label_noise", "influence", "flagged"]
    assert scores["row_id"].tolist() == list(range(N_ROWS))
    assert not list(screen_dir.glob(".ray-staging-*"))
    # the same flags as the in-process sharded path on the same data
    local = _in_process_sharded(_stored_file(home), dataset["reference"])
    np.testing.assert_array_equal(scores["flagged"].to_numpy(), local.scores["flagged"].to_numpy())
    assert 0 < out["n_flagged"] == int(local.scores["flagged"].sum())
    # the report says the canary self-test did not run, and why
    from dataward.reports.check_sections import canary_section

    assert "not run on the Ray path" in canary_section(out)["sentence"]
    html = (home / "reports" / "ray-table-v1" / "report.html").read_text()
    assert "Not run on this path: canary self-test" in html and ray_cluster["address"] in html
    assert json.loads(cli("datasets", "--json").stdout)[0]["status"] in ("quarantined", "trimmed")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unreachable_cluster_records_one_error_and_a_rerun_screens_it(
        ray_cluster, home, cli, dataset, monkeypatch):  # noqa: F811
    from lineage.models import Snapshot

    dead = f"127.0.0.1:{_free_port()}"
    monkeypatch.setenv("DATAWARD_RAY_ADDRESS", dead)
    r = cli("run", str(dataset["data"]), "--manifest", str(dataset["manifest"]), "--json")
    assert r.returncode == 1, r.stderr
    out = _screen_output()
    assert out["status"] == "error"
    reason = out["reason"]
    assert "\n" not in reason and dead in reason and "cannot reach the Ray cluster" in reason
    assert f"dataward rerun {REF} --from screen" in reason
    screen_dir = home / "runs" / "ray-table" / "1" / "screen"
    assert not (screen_dir / "scores.parquet").exists() and not (screen_dir / "summary.json").exists()
    assert not list(screen_dir.glob(".ray-staging-*"))
    from dataward.context import Context

    with Context().session() as s:
        assert s.query(Snapshot).count() == 0  # nothing published
    listing = json.loads(cli("datasets", "--json").stdout)
    assert listing[0]["status"] == "quarantined"

    monkeypatch.setenv("DATAWARD_RAY_ADDRESS", ray_cluster["address"])
    again = cli("rerun", REF, "--from", "screen", "--reason", "the Ray cluster is back")
    assert again.returncode in (0, 1), again.stderr
    out = _screen_output()
    assert out["status"] == "done" and out["engine"]["name"] == "ray"
    assert (screen_dir / "scores.parquet").is_file()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_version_the_ray_path_cannot_read_is_screened_in_process_with_the_reason(
        home, cli, dataset, tmp_path, monkeypatch):
    """Stored as CSV: the sharded screen reads Parquet only, so the stage screens in-process
    (canaries and all) and records why; the cluster is never contacted (its address is dead)."""
    import pyarrow.csv as pacsv

    csv = tmp_path / "data.csv"
    pacsv.write_csv(pq.read_table(dataset["data"]), csv)
    monkeypatch.setenv("DATAWARD_RAY_ADDRESS", f"127.0.0.1:{_free_port()}")
    r = cli("run", str(csv), "--manifest", str(dataset["manifest"]), "--json")
    assert r.returncode in (0, 1), r.stderr
    out = _screen_output()
    assert out["status"] == "done", out.get("reason")
    assert out["engine"]["name"] == "in-process" and "csv" in out["engine"]["fallback_reason"]
    assert out["canary"]["status"] == "done"
    assert "although a Ray cluster was configured" in (home / "reports" / "ray-table-v1" / "report.html").read_text()
    assert "engine" not in out["summary"] or out["summary"]["engine"] != "ray"


def test_the_stage_imports_no_ray_without_an_address():
    import subprocess
    import sys

    code = ("import os, sys; os.environ.pop('DATAWARD_RAY_ADDRESS', None); import dataward.stages.screen; "
            "from dataward.stages.screen_engine import screen_on_ray; "
            "assert screen_on_ray(None, 0, label_col='y', reference=None, config=None, out_dir='.') is None; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _image_table(n: int, *, seed: int) -> pa.Table:
    """``n`` 8x8 greyscale PNGs in three classes (a bright row, column or diagonal)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    images = []
    for label in y:
        px = rng.integers(0, 60, (8, 8)).astype(np.uint8)
        if label == 0:
            px[3, :] = 250
        elif label == 1:
            px[:, 3] = 250
        else:
            np.fill_diagonal(px, 250)
        buf = io.BytesIO()
        Image.fromarray(px).save(buf, format="PNG")
        images.append(buf.getvalue())
    return pa.table({"image": pa.array(images, pa.binary()), "label": y.astype(np.int64)})


def _wide_table(n: int, *, seed: int) -> pa.Table:
    """``n`` rows of 2,100 numeric features: wider than the probe reads raw
    (``ScreenConfig.max_features``, 2,048), so the screen projects them (PCA)."""
    return _table(n, seed=seed, flip=0.03, d=2_100)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("kind", "why"), [("image", "this table is image"),
                                           ("wide", "needs a projection")])
def test_data_the_sharded_screen_refuses_is_screened_in_process_with_the_reason(
        ray_cluster, home, cli, tmp_path, monkeypatch, kind, why):  # noqa: F811
    """An image column, or a table wide enough to need the PCA projection: the sharded
    screen fits on a sample and keeps no per-row representation, so it refuses them
    (screening/sharded.py, fit_sharded); the stage screens the version in-process, canaries
    and all, and records why. The Parquet files are read, the cluster reached."""
    n = 300 if kind == "image" else 400
    data = tmp_path / f"{kind}.parquet"
    pq.write_table(_image_table(n, seed=0) if kind == "image" else _wide_table(n, seed=0), data)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("name: ray-table\nowner: a@b.c\nlicense: CC-BY-4.0\nsource: {uri: 's3://x'}\n"
                        "kind: no-suite-kind\nlabel_column: label\n")
    monkeypatch.setenv("DATAWARD_RAY_ADDRESS", ray_cluster["address"])
    r = cli("run", str(data), "--manifest", str(manifest), "--json")
    assert r.returncode in (0, 1), r.stderr
    out = _screen_output()
    assert out["status"] == "done", out.get("reason")
    engine = out["engine"]
    assert engine["name"] == "in-process" and engine["address"] == ray_cluster["address"]
    assert engine["address_source"] == "DATAWARD_RAY_ADDRESS"
    assert engine["fallback_reason"].startswith("the sharded screen refused the data") and why in \
        engine["fallback_reason"], engine["fallback_reason"]
    assert out["canary"]["status"] == "done"  # the in-process screen's self-test ran
    screen_dir = home / "runs" / "ray-table" / "1" / "screen"
    scores = pq.read_table(screen_dir / "scores.parquet").to_pandas()
    assert scores["row_id"].tolist() == list(range(n)) and out["n_rows"] == n
    summary = json.loads((screen_dir / "summary.json").read_text())
    assert summary.get("engine") != "ray"
    if kind == "wide":
        assert summary["projection"]["from_features"] == 2_100  # the in-process screen projected it
    assert not list(screen_dir.glob(".ray-staging-*"))


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_screen_killed_on_ray_leaves_a_staging_folder_the_next_screen_removes(
        ray_cluster, home, cli, dataset, monkeypatch):  # noqa: F811
    """SIGKILL the real ``dataward run`` while its screen runs on the cluster: no
    ``finally`` runs, so its staging folder (named for its host and pid) stays. The next
    run resumes the pipeline, screens on Ray, removes that folder and writes the right
    scores."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from lineage.store import temp_tag

    monkeypatch.setenv("DATAWARD_RAY_ADDRESS", ray_cluster["address"])
    screen_dir = home / "runs" / "ray-table" / "1" / "screen"
    exe = Path(sys.executable).with_name("dataward")
    proc = subprocess.Popen([str(exe), "run", str(dataset["data"]), "--manifest", str(dataset["manifest"])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while not list(screen_dir.glob(".ray-staging-*")):
            assert proc.poll() is None, f"the run ended ({proc.returncode}) before its screen reached Ray"
            assert time.monotonic() < deadline, "no staging folder in 300 s"
            time.sleep(0.05)
        time.sleep(0.5)  # the workers have started writing into it
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    [left] = screen_dir.glob(".ray-staging-*")
    assert left.name.startswith(f".ray-staging-{temp_tag().rsplit('-', 1)[0]}-{proc.pid}-")
    assert not (screen_dir / "scores.parquet").exists()

    r = cli("run", str(dataset["data"]), "--manifest", str(dataset["manifest"]), "--json")
    assert r.returncode in (0, 1), r.stderr
    out = _screen_output()
    assert out["status"] == "done" and out["engine"]["name"] == "ray", out.get("reason")
    assert not list(screen_dir.glob(".ray-staging-*")), "the killed run's staging folder is still there"
    scores = pq.read_table(screen_dir / "scores.parquet").to_pandas()
    local = _in_process_sharded(_stored_file(home), dataset["reference"])
    np.testing.assert_array_equal(scores["flagged"].to_numpy(), local.scores["flagged"].to_numpy())
    assert scores["row_id"].tolist() == list(range(N_ROWS))


@pytest.mark.airflow
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_airflow_import_screens_on_the_cluster_its_connection_names(
        ray_cluster, home, db_url, dataset, tmp_path, monkeypatch):  # noqa: F811
    """`airflow dags test dataward_import` with the cluster named only by the Airflow
    connection ``AIRFLOW_CONN_DATAWARD_RAY`` (JSON form; DATAWARD_RAY_ADDRESS unset): the
    screen task resolves it and the stage screens on that cluster."""
    from airflow_harness import airflow, airflow_env

    monkeypatch.delenv("DATAWARD_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("DATAWARD_RAY_CONN_ID", raising=False)
    host, port = ray_cluster["address"].rsplit(":", 1)
    conn = json.dumps({"conn_type": "generic", "host": host, "port": int(port)})
    env = airflow_env(tmp_path / "airflow", home, DATAWARD_DB_URL=db_url, AIRFLOW_CONN_DATAWARD_RAY=conn)
    done = airflow(["db", "migrate"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    conf = {"path": str(dataset["data"]), "manifest": str(dataset["manifest"]), "wait_for_review": False}
    done = airflow(["dags", "test", "dataward_import", "-c", json.dumps(conf)], env, timeout=840)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    out = _screen_output()
    assert out["status"] == "done", out.get("reason")
    engine = out["engine"]
    assert engine["name"] == "ray" and engine["address"] == ray_cluster["address"]
    assert engine["address_source"] == "airflow connection dataward_ray"
    summary = json.loads((home / "runs" / "ray-table" / "1" / "screen" / "summary.json").read_text())
    assert summary["engine"] == "ray" and summary["n_shards"] == 4


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_version_too_large_to_hold_is_screened_on_ray_without_reading_the_table(
        ray_cluster, home, cli, dataset, monkeypatch):  # noqa: F811
    """Above DATAWARD_STREAMED_ROWS rows the stage streams the label check and the leakage
    check's exact part and never reads the table whole; the flags are the Ray path's; the
    near duplicates and the diff say why they did not run."""
    import dataward.stages.screen as screen_stage
    from dataward.context import Context

    assert cli("ingest", str(dataset["data"]), "--manifest", str(dataset["manifest"])).returncode == 0
    monkeypatch.setenv("DATAWARD_RAY_ADDRESS", ray_cluster["address"])
    monkeypatch.setenv("DATAWARD_STREAMED_ROWS", "1000")

    def whole_table(*a, **k):
        raise AssertionError("the stage read the whole table")

    monkeypatch.setattr(screen_stage, "read_table", whole_table)
    try:
        out = screen_stage.screen(Context(), REF)
    finally:
        import ray

        ray.shutdown()  # this process joined the cluster; leave no connection to later tests
    assert out["status"] == "done", out.get("reason")
    assert out["engine"]["name"] == "ray" and out["used_reference"]
    assert out["leakage"]["status"] == "done" and out["leakage"]["n_rows"] == N_ROWS
    assert "more than the 1,000" in out["leakage"]["near_not_run"]
    assert out["diff"]["status"] == "not_run" and "more than the 1,000" in out["diff"]["reason"]
    local = _in_process_sharded(_stored_file(home), dataset["reference"])
    scores = pq.read_table(out["scores_path"]).to_pandas()
    np.testing.assert_array_equal(scores["flagged"].to_numpy(), local.scores["flagged"].to_numpy())
    from dataward.reports.check_sections import diff_section, leakage_section

    leak = leakage_section(out)
    assert leak["status"] == "done" and "near duplicates were not searched" in leak["sentence"]
    assert diff_section(out)["status"] == "not_run"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_streamed_label_check_and_trust_chain_overlap_equal_the_whole_table_ones(home, cli, dataset):
    """What the stage streams for a version too large to hold gives what the table gives:
    the missing-label sentence, and which snapshot rows the version also holds."""
    from dataward.context import Context
    from dataward.governance.reference import _version_hashes_and_labels
    from dataward.labels import missing_labels, missing_labels_in_batches
    from dataward.stage_results import StoredRows, read_table
    from lineage.ingest import resolve

    table = pq.read_table(dataset["data"])
    labels = table.column("label").to_numpy().astype(float)
    labels[[5, 1500, 3999]] = np.nan
    labels[[7, 2500]] = np.inf
    holed = table.set_column(table.column_names.index("label"), "label",
                             pa.array(labels, mask=np.isin(np.arange(len(labels)), [11, 3001])))
    sentence = missing_labels(holed, "label")
    assert sentence and "7 missing values (2 empty, 3 NaN, 2 infinite)" in sentence
    assert missing_labels_in_batches(holed.to_batches(max_chunksize=700), "label") == sentence
    assert missing_labels_in_batches(table.select(["label"]).to_batches(max_chunksize=700), "label") is None

    assert cli("ingest", str(dataset["data"]), "--manifest", str(dataset["manifest"])).returncode == 0
    ctx = Context()
    with ctx.session() as s:
        vid = resolve(s, REF).id
    stored = StoredRows(ctx, vid)
    whole = read_table(ctx, vid)
    assert stored.num_rows == whole.num_rows == N_ROWS and stored.column_names == whole.column_names
    hashes_t, present_t = _version_hashes_and_labels(whole, "label")
    hashes_s, present_s = _version_hashes_and_labels(stored, "label")
    np.testing.assert_array_equal(hashes_s, hashes_t)
    assert len(hashes_t) == N_ROWS and present_s == present_t == {0, 1, 2}
