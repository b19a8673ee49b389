"""The DAGs under a real Airflow: DagBag parse, `airflow dags test`, and a real scheduler."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pyarrow.parquet as pq
import pytest
from airflow_harness import REPO, Standalone, airflow, airflow_env
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def af(tmp_path_factory):
    """A migrated Airflow metadata DB and a fresh DATAWARD_HOME, shared by this module."""
    base = tmp_path_factory.mktemp("airflow")
    home = base / "dataward"
    home.mkdir()
    env = airflow_env(base / "airflow", home)
    done = airflow(["db", "migrate"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    return {"env": env, "home": home, "base": base}


def lineage_rows(home, sql: str) -> list[tuple]:
    engine = create_engine(f"sqlite:///{home / 'lineage.db'}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_dagbag_parses_fast_without_heavy_imports():
    code = textwrap.dedent(f"""
        import json, sys, time
        from airflow.dag_processing.dagbag import BundleDagBag
        heavy = ("torch", "great_expectations", "cleanlab", "sklearn", "pandas")
        before = [m for m in heavy if m in sys.modules]
        t = time.perf_counter()
        # As the dag processor parses it: the bundle's folder is importable (dataward_common).
        bag = BundleDagBag(dag_folder={str(REPO / "dags")!r}, bundle_path={str(REPO / "dags")!r},
                           bundle_name="dags-folder")
        elapsed = time.perf_counter() - t
        d = bag.dags
        imp = d["dataward_import"]
        print(json.dumps({{
            "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
            "dag_ids": sorted(bag.dag_ids),
            "heavy": [m for m in heavy if m in sys.modules and m not in before],
            "parse_s": elapsed,
            "import_params": sorted(imp.params.keys()),
            "screen_queue": imp.get_task("screen").queue,
            "publish_outlets": [o.uri for o in imp.get_task("publish").outlets],
            "nightly_schedule": d["dataward_nightly"].timetable.expression,
            "train_schedule": type(d["dataward_train_example"].timetable).__name__,
        }}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                          env={"AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin",
                               **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}})
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    assert info["dag_ids"] == ["dataward_import", "dataward_nightly", "dataward_train_example"]
    assert info["heavy"] == [], f"DAG parse imported {info['heavy']}"
    assert info["parse_s"] < 10  # generous: parse is ~0.2 s; minutes would mean heavy imports
    assert {"path", "manifest", "name", "license", "policy"} <= set(info["import_params"])
    assert info["screen_queue"] == "default"
    assert info["publish_outlets"] == ["dataward://snapshots/approved"]
    assert info["nightly_schedule"] == "0 2 * * *"
    assert "Asset" in info["train_schedule"]


def test_import_params_are_validated_by_json_schema(af):
    bad = airflow(["dags", "test", "dataward_import", "-c", json.dumps({"path": ""})], af["env"])
    assert bad.returncode != 0
    assert "path" in (bad.stdout + bad.stderr)


def test_dags_test_import_end_to_end(af, digits_example):
    conf = {"path": str(digits_example / "train"), "manifest": str(digits_example / "manifest.yaml")}
    done = airflow(["dags", "test", "dataward_import", "-c", json.dumps(conf)], af["env"])
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    home = af["home"]
    [(status,)] = lineage_rows(home, "select v.status from dataset_versions v join datasets d on "
                                     "d.id = v.dataset_id where d.name = 'digits-example'")
    assert status in ("trimmed", "approved")
    stages = {s for (s,) in lineage_rows(home, "select stage from stage_results")}
    assert stages == {"validate", "screen", "decide", "report", "publish"}
    [(path, rows, excluded)] = lineage_rows(home, "select path, row_count, excluded_row_ids from snapshots")
    snap = pq.read_table(path)
    assert snap.num_rows == rows == 1077 - len(json.loads(excluded))
    runs = lineage_rows(home, "select trigger, status from pipeline_runs")
    assert runs == [("airflow:import", "success")]


def test_dags_test_nightly_maps_over_arrivals(af, digits_example, tmp_path):
    landing = tmp_path / "landing"
    good = landing / "a-digits"
    shutil.copytree(digits_example, good)
    (good / "data").mkdir()
    shutil.move(str(good / "train" / "digits.parquet"), good / "data" / "digits.parquet")
    text_ = (good / "manifest.yaml").read_text().replace("name: digits-example", "name: nightly-digits")
    (good / "manifest.yaml").write_text(text_)
    nc = landing / "b-noncommercial"
    shutil.copytree(good, nc)
    m = (nc / "manifest.yaml").read_text().replace("CC-BY-4.0", "CC-BY-NC-4.0")
    (nc / "manifest.yaml").write_text(m.replace("name: nightly-digits", "name: nightly-nc"))
    (landing / "c-no-manifest").mkdir()
    # nobody can answer a review under `dags test`: the quarantined arrival does not wait
    done = airflow(["dags", "test", "dataward_nightly", "-c",
                    json.dumps({"landing": str(landing), "wait_for_review": False})], af["env"])
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    got = dict(lineage_rows(af["home"], "select d.name, v.status from dataset_versions v join datasets d "
                                        "on d.id = v.dataset_id where d.name like 'nightly-%'"))
    assert got["nightly-nc"] == "quarantined"
    assert got["nightly-digits"] in ("trimmed", "approved")
    assert (good / ".dataward-done").read_text().strip() == "nightly-digits@1"
    assert (nc / ".dataward-done").exists()
    # A second night finds nothing new.
    from dataward.airflow.tasks import find_arrivals

    assert find_arrivals(landing) == []


@pytest.mark.slow
def test_real_scheduler_review_through_required_actions(tmp_path, digits_example):
    """A real Airflow (scheduler, dag processor, API server, LocalExecutor), users with roles.

    ``importer`` triggers an import of the poisoned example under a strict policy: the run
    waits in the ``review`` task (Required actions, report linked). A Viewer's answer is
    refused by Airflow; the reviewer approves through the REST API; the decision goes
    through ``sign_off`` (audit entry via airflow-hitl, report hash), the snapshot is
    published, the asset event is recorded and the training DAG runs on it.
    """
    home = tmp_path / "dataward"
    home.mkdir()
    strict = tmp_path / "strict.yaml"
    strict.write_text("version: strict\nscreening: {max_trim_fraction: 0.0}\n")
    env = airflow_env(tmp_path / "airflow", home,
                      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin,importer:user,reviewer:op,viewer:viewer")
    with Standalone(env, tmp_path / "standalone.log") as af:
        af.wait_ready(timeout=400)
        passwords = json.loads((tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        tokens = {}
        for user in ("importer", "reviewer", "viewer"):
            status, body = af.request("POST", "/auth/token", {"username": user, "password": passwords[user]}, token="")
            assert status in (200, 201), body
            tokens[user] = body["access_token"]
        for dag_id in ("dataward_import", "dataward_train_example"):
            status, body = af.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
            assert status == 200 and body["is_paused"] is False
        status, _ = af.request("POST", "/api/v2/dags/dataward_import/dagRuns", {
            "logical_date": None, "conf": {"path": ""}}, token=tokens["importer"])
        assert status == 400  # the Params' JSON schema refuses an empty path
        status, run = af.request("POST", "/api/v2/dags/dataward_import/dagRuns", {
            "logical_date": None,
            "conf": {"path": str(digits_example / "train"), "manifest": str(digits_example / "manifest.yaml"),
                     "policy": str(strict)}}, token=tokens["importer"])
        assert status == 200, run
        run_path = f"/api/v2/dags/dataward_import/dagRuns/{run['dag_run_id']}"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status, ti = af.request("GET", f"{run_path}/taskInstances/review")
            if status == 200 and ti["state"] in ("awaiting_input", "failed", "upstream_failed", "success"):
                break
            time.sleep(3)
        assert ti["state"] == "awaiting_input", (ti, (tmp_path / "standalone.log").read_text()[-4000:])
        # answer once the parked try's process is known to have ended, or Airflow may fail the
        # resumed try and ask again (see wait_for_executor_report)
        af.wait_for_executor_report(ti)
        hitl = f"{run_path}/taskInstances/review/-1/hitlDetails"
        status, detail = af.request("GET", hitl, token=tokens["reviewer"])
        assert status == 200, detail
        assert detail["subject"] == "Dataward sign-off: digits-example@1"
        assert "/dataward/files/reports/digits-example-v1/report.html" in detail["body"]
        assert detail["options"] == ["Approve", "Reject", "Keep quarantined"]
        answer = {"chosen_options": ["Approve"],
                  "params_input": {"reason": "flags checked: planted rows, the rest are hard clean rows"}}
        status, _ = af.request("PATCH", hitl, answer, token=tokens["viewer"])
        assert status == 403  # a Viewer may read, not answer
        [(state,)] = lineage_rows(home, "select status from dataset_versions")
        assert state == "quarantined"
        status, body = af.request("PATCH", hitl, answer, token=tokens["reviewer"])
        assert status == 200, body
        runs = af.wait_run("dataward_import", timeout=540)
        assert runs[0]["state"] == "success", (tmp_path / "standalone.log").read_text()[-4000:]
        trains = af.wait_run("dataward_train_example", timeout=540)
        assert trains[0]["state"] == "success"
        status, events = af.request("GET", "/api/v2/assets/events")
        assert status == 200
        extra = events["asset_events"][0]["extra"]
        assert extra["ref"] == "digits-example.approved@1" and extra["source"] == "digits-example@1"
    [(n,)] = lineage_rows(home, "select count(*) from snapshots")
    assert n == 1
    assert pq.read_table(extra["path"]).num_rows == 1077  # a reviewer's approval publishes every row
    [(actor, payload)] = lineage_rows(home, "select actor, payload from audit_log where action = 'review'")
    payload = json.loads(payload)
    assert actor == "reviewer" and payload["via"] == "airflow-hitl" and payload["outcome"] == "approve"
    [(report,)] = lineage_rows(home, "select output from stage_results where stage = 'report'")
    assert payload["report_sha256"] == json.loads(report)["sha256"]
    [(status_, by)] = lineage_rows(home, "select status, triggered_by from pipeline_runs")
    assert (status_, by) == ("success", "importer")
    [(acquired,)] = lineage_rows(home, "select p.acquired_by from provenance p join dataset_versions v on "
                                       "v.id = p.version_id join datasets d on d.id = v.dataset_id "
                                       "where d.name = 'digits-example'")
    assert acquired == "importer"
