"""Run the real Airflow against this checkout's DAGs, isolated in a temporary home."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def airflow_env(airflow_home: Path, dataward_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "DATAWARD_HOME": str(dataward_home),
        "DATAWARD_DB_URL": f"sqlite:///{dataward_home / 'lineage.db'}",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
    })
    env.update(extra)
    return env


def airflow(args: list[str], env: dict[str, str], timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def wait_for_api_server(base: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    """Wait until the Airflow API server at ``base`` answers (any HTTP status will do);
    RuntimeError with the end of its log if the process dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/v2/version", timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("airflow api-server did not start:\n" + log_path.read_text()[-3000:]) from None
            time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Standalone:
    """``airflow standalone`` (scheduler, dag processor, triggerer, API server) on loopback."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**env,
                    "AIRFLOW__API__HOST": "127.0.0.1",
                    "AIRFLOW__API__PORT": str(self.port),
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    # the log servers too, or two Airflows on one machine (xdist workers,
                    # other checkouts) fight over 8793/8794
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                    # wait_for_executor_report reads the scheduler's INFO lines
                    "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow.jobs.scheduler_job_runner=INFO",
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2"}
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.token: str | None = None

    def __enter__(self) -> Standalone:
        self._fh = open(self.log, "w")
        # A session of its own, so that every child is stopped with the group.
        self.proc = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=self.env,
                                     stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        try:  # children that outlived the parent
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._fh.close()

    def request(self, method: str, path: str, body: dict | None = None, *, token: str | None = None,
                timeout: float = 60) -> tuple[int, dict | str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        tok = token if token is not None else self.token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read().decode()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read().decode(), err.code
        try:
            return status, json.loads(raw)
        except json.JSONDecodeError:
            return status, raw

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        pw_file = Path(self.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited: {self.log.read_text()[-3000:]}")
            try:
                if pw_file.exists():
                    status, body = self.request("POST", "/auth/token", {
                        "username": "admin", "password": json.loads(pw_file.read_text())["admin"]},
                        token="", timeout=10)
                    if status in (200, 201) and isinstance(body, dict):
                        self.token = body["access_token"]
                        status, dags = self.request("GET", "/api/v2/dags")
                        if status == 200 and dags.get("total_entries", 0) >= 3:
                            return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(3)
        raise TimeoutError(f"Airflow not ready in {timeout}s: {self.log.read_text()[-3000:]}")

    def wait_for_executor_report(self, ti: dict, timeout: float = 300) -> None:
        """Wait until the scheduler has taken in the executor's report that the worker process
        of task instance ``ti`` (as the REST API returns it) has ended.

        Answer a parked (``awaiting_input``) task only after this. Airflow 3.3's scheduler
        fails the resumed try when that report is read after the answer has already moved
        the task on to queued or running (it takes the report for a task killed externally:
        apache/airflow#72716); the retry then asks again and the run waits for a second
        answer. A person answers minutes later; a test answers within a second, and on a
        loaded machine the parking process can end seconds after the task is parked.
        """
        needle = (f"dag_id='{ti['dag_id']}', task_id='{ti['task_id']}', run_id='{ti['dag_run_id']}', "
                  f"try_number={ti['try_number']}, map_index={ti['map_index']})")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited: {self.log.read_text()[-3000:]}")
            for line in self.log.read_text(errors="replace").splitlines():
                if "Received executor event with state success" in line and needle in line:
                    return
            time.sleep(1)
        raise TimeoutError(f"the scheduler never read the executor's report for {needle} in {timeout}s: "
                           f"{self.log.read_text()[-3000:]}")

    def wait_run(self, dag_id: str, timeout: float = 600, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns")
            runs = body.get("dag_runs", []) if status == 200 and isinstance(body, dict) else []
            done = [r for r in runs if r["state"] in ("success", "failed")]
            if len(done) >= count:
                return runs
            time.sleep(5)
        raise TimeoutError(f"{dag_id} runs not finished in {timeout}s: {runs}")
