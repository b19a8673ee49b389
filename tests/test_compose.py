"""The production set-up, checked without a container engine: docker-compose.yml's
structure (services, queues, environment, volumes, GPU reservation, secrets), the
image it builds, and that no code path shows the lineage DB password."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-worker-gpu")
SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "DATAWARD_DB_PASSWORD",
           "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def test_services(compose):
    services = compose["services"]
    for name in ("postgres", "redis", "airflow-init", *AIRFLOW_SERVICES):
        assert name in services, name
    commands = {n: " ".join(services[n]["command"]) if isinstance(services[n]["command"], list)
                else services[n]["command"] for n in AIRFLOW_SERVICES}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"].startswith("celery worker")
    for name in AIRFLOW_SERVICES:
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        if name != "airflow-init":
            assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "redis", *AIRFLOW_SERVICES):
        assert "healthcheck" in services[name], name


def test_celery_executor_and_execution_api(compose):
    for name in ("airflow-init", *AIRFLOW_SERVICES):
        env = _env(compose["services"][name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
        assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_queues_gpu_worker_takes_the_screens(compose):
    services = compose["services"]
    gpu = services["airflow-worker-gpu"]
    assert re.search(r"--queues\s+gpu(\s|$)", gpu["command"])
    assert re.search(r"--queues\s+default(\s|$)", services["airflow-worker"]["command"])
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX"]  # a CUDA torch on the GPU worker
    for name in AIRFLOW_SERVICES:
        assert _env(services[name])["DATAWARD_SCREEN_QUEUE"] == "gpu"
    # The DAGs put exactly the screen task on that queue.
    src = (REPO / "dataward" / "airflow" / "tasks.py").read_text()
    assert 'os.environ.get("DATAWARD_SCREEN_QUEUE"' in src
    # The shared stage tasks put exactly the screen task on that queue ...
    tree = ast.parse((REPO / "dags" / "dataward_common.py").read_text())
    queued = {task_id.value for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
              for d in f.decorator_list if isinstance(d, ast.Call)
              for kw in d.keywords if kw.arg == "queue"
              and isinstance(kw.value, ast.Name) and kw.value.id == "SCREEN_QUEUE"
              for task_id in [k.value for k in d.keywords if k.arg == "task_id"]}
    assert queued == {"screen"}, queued
    # ... and both pipeline DAGs are built from them.
    for dag in ("dataward_import.py", "dataward_nightly.py"):
        assert "stage_chain(" in (REPO / "dags" / dag).read_text(), dag


def test_dataward_environment_and_shared_data_root(compose):
    services = compose["services"]
    for name in ("airflow-init", *AIRFLOW_SERVICES):
        svc = services[name]
        env = _env(svc)
        assert env["DATAWARD_DB_URL"].startswith("postgresql+psycopg://dataward:")
        assert env["DATAWARD_DB_URL"].endswith("@postgres:5432/lineage")
        assert env["DATAWARD_HOME"].startswith("/data/")
        assert env["DATAWARD_DATA_ROOT"] == "/data"
        assert "dataward-data:/data" in svc["volumes"], name
    assert "dataward-data" in compose["volumes"]
    init = (REPO / "docker" / "postgres-init.sh").read_text()
    assert "CREATE DATABASE airflow" in init and "CREATE DATABASE lineage" in init


def test_secrets_are_required_never_defaulted_or_inlined():
    text = (REPO / "docker-compose.yml").read_text()
    for var in SECRETS:
        uses = re.findall(r"\$\{" + re.escape(var) + r"([^}]*)\}", text)
        assert uses, f"{var} is not used"
        assert all(u.startswith(":?") for u in uses), f"{var} must be ${{{var}:?...}}: {uses}"
    # No literal password in a URL or a *PASSWORD*/SECRET/KEY value.
    assert not re.search(r"://[^:/\s]+:(?!\$\{)[^@\s]+@", text)
    for m in re.finditer(r"^\s*([A-Z0-9_]*(PASSWORD|SECRET|FERNET_KEY)[A-Z0-9_]*):\s*(\S+)", text, re.M):
        assert m.group(3).startswith("${"), m.group(0)
    example = (REPO / "docker" / "dataward.env.example").read_text()
    for var in SECRETS:
        assert re.search(rf"^{var}=$", example, re.M), f"{var} missing (or filled in) in the example"
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:3\.", dockerfile, re.M)
    assert "dataward.env" not in dockerfile and "PASSWORD" not in dockerfile


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://dw:s3cr3t-pw@127.0.0.1:1/lineage",   # nothing listens there
    "postgresql+psycopg://dw:s3cr3t-pw@127.0.0.1:notaport/lineage",  # malformed
    "nosuchdialect://dw:s3cr3t-pw@host/db",
])
def test_db_url_password_never_shown(cli, tmp_path, url):
    from lineage.db import redact_url

    assert "s3cr3t-pw" not in redact_url(url)
    r = cli("datasets", env={"DATAWARD_DB_URL": url, "DATAWARD_HOME": str(tmp_path)})
    assert r.returncode == 2
    assert "s3cr3t-pw" not in r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "***" in lines[0], r.stderr


def test_redact_url_keeps_the_rest():
    from lineage.db import redact_url

    assert redact_url("postgresql+psycopg://dw:pw@db:5432/lineage") == "postgresql+psycopg://dw:***@db:5432/lineage"
    assert redact_url("sqlite:////data/lineage.db") == "sqlite:////data/lineage.db"
