"""Where the screen's Ray cluster comes from (issue 26): ``DATAWARD_RAY_ADDRESS``, else the
Airflow connection ``DATAWARD_RAY_CONN_ID`` (default ``dataward_ray``) that the Airflow
screen task resolves and gives the stage, else none (in-process); and the staging
folders killed screens leave. No cluster here: tests/test_ray_stage.py runs the stage on
one, through `airflow dags test` too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CLUSTER_ENV = ("DATAWARD_RAY_ADDRESS", "DATAWARD_RAY_CONN_ID", "AIRFLOW_CONN_DATAWARD_RAY", "AIRFLOW_CONN_RAY_PROD")


@pytest.fixture
def no_cluster_env(monkeypatch):
    for var in CLUSTER_ENV:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.airflow
@pytest.mark.parametrize(("value", "address"), [
    # JSON, a generic connection: the head's GCS address, as ray start --head --port opens it
    (json.dumps({"conn_type": "generic", "host": "10.0.0.5", "port": 6380}), "10.0.0.5:6380"),
    (json.dumps({"conn_type": "generic", "host": "head.internal"}), "head.internal:6379"),
    # URI form: scheme ray is Ray Client
    ("ray://head.internal:10002", "ray://head.internal:10002"),
    ("ray://head.internal", "ray://head.internal:10001"),
    # schema ray asks for Ray Client on any connection type
    ("generic://head.internal:10001/ray", "ray://head.internal:10001"),
    # an address given as it stands
    (json.dumps({"conn_type": "generic", "extra": {"address": "auto"}}), "auto"),
])
def test_a_real_airflow_connection_from_the_env_names_the_cluster(no_cluster_env, value, address):
    from dataward.airflow.ray_connection import connection_address

    no_cluster_env.setenv("AIRFLOW_CONN_DATAWARD_RAY", value)
    assert connection_address() == (address, "airflow connection dataward_ray")


@pytest.mark.airflow
def test_the_conn_id_comes_from_the_env_and_a_missing_or_empty_connection_is_none(no_cluster_env, caplog):
    from dataward.airflow.ray_connection import connection_address

    assert connection_address() is None  # no connection at all: silent
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    no_cluster_env.setenv("AIRFLOW_CONN_RAY_PROD", "generic://gcs.prod:6379")
    assert connection_address() is None  # it is not the default id
    no_cluster_env.setenv("DATAWARD_RAY_CONN_ID", "ray_prod")
    assert connection_address() == ("gcs.prod:6379", "airflow connection ray_prod")
    no_cluster_env.setenv("AIRFLOW_CONN_RAY_PROD", json.dumps({"conn_type": "generic"}))
    assert connection_address() is None  # names no cluster: in-process, with a warning
    assert "names no Ray cluster" in caplog.text


@pytest.mark.airflow
def test_the_screen_task_gives_the_stage_the_connection_and_the_env_var_wins(no_cluster_env):
    """What the stage sees inside the Airflow screen task's wrapper (stage_task's)."""
    from dataward.airflow.tasks import _ray_cluster_of_connection
    from dataward.stages.screen_engine import cluster_address

    with _ray_cluster_of_connection("screen"):
        assert cluster_address() is None  # no connection, no env: in-process, as before
    no_cluster_env.setenv("AIRFLOW_CONN_DATAWARD_RAY", "generic://127.0.0.1:6390")
    with _ray_cluster_of_connection("screen"):
        assert cluster_address() == ("127.0.0.1:6390", "airflow connection dataward_ray")
    assert cluster_address() is None  # only within the task's stage call
    with _ray_cluster_of_connection("validate"):
        assert cluster_address() is None  # only the screen is given a cluster
    no_cluster_env.setenv("DATAWARD_RAY_ADDRESS", "127.0.0.1:7000")
    with _ray_cluster_of_connection("screen"):
        assert cluster_address() == ("127.0.0.1:7000", "DATAWARD_RAY_ADDRESS")


def test_the_adapter_and_the_stage_import_neither_airflow_nor_ray_at_import():
    code = ("import sys; import dataward.airflow.tasks, dataward.airflow.ray_connection, dataward.stages.screen; "
            "bad = [m for m in ('airflow', 'ray') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_stale_staging_folders_are_removed_live_and_foreign_ones_kept(tmp_path):
    """The folders a SIGKILLed screen leaves (its pid is gone) are removed; this process's
    and another host's young one are kept; another host's very old one is removed."""
    from dataward.stages.screen_engine import STAGING_PREFIX, remove_stale_staging
    from lineage.store import STALE_AFTER_S, temp_tag

    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
    host = temp_tag().rsplit("-", 1)[0]
    dead = tmp_path / f"{STAGING_PREFIX}{host}-{dead_pid}-abc123"
    (dead / "rows").mkdir(parents=True)
    (dead / "rows" / "part-000000.parquet").write_bytes(b"partial")
    live = tmp_path / f"{STAGING_PREFIX}{temp_tag()}-def456"
    live.mkdir()
    foreign = tmp_path / f"{STAGING_PREFIX}otherhost-1-ghi789"
    foreign.mkdir()
    old_foreign = tmp_path / f"{STAGING_PREFIX}otherhost-2-jkl012"
    old_foreign.mkdir()
    old = os.path.getmtime(old_foreign) - STALE_AFTER_S - 60
    os.utime(old_foreign, (old, old))
    (tmp_path / "scores.parquet").write_bytes(b"results")  # never touched
    assert sorted(remove_stale_staging(tmp_path)) == sorted([dead, old_foreign])
    assert live.is_dir() and foreign.is_dir() and (tmp_path / "scores.parquet").exists()
    assert not dead.exists() and not old_foreign.exists()
