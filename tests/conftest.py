"""Shared fixtures: a fresh DATAWARD_HOME, the lineage DB on SQLite and PostgreSQL.

PostgreSQL: ``DATAWARD_TEST_PG_URL`` (set by .ci/run) names a running server;
without it a throwaway cluster is started from the server binaries on this
machine and removed afterwards. Only where the binaries are absent do the
PostgreSQL tests skip, with the reason shown.

Markers (registered in pyproject.toml): ``postgres`` (set here on every test that
reaches the PostgreSQL server), ``airflow`` (runs a real Airflow: ``dags test``, a
scheduler or an API server), ``slow``. ``make test-fast`` deselects all three.

Backends: a test taking ``home``/``db_url`` runs once per backend. The database
contracts (lineage records, audit chain, locking and concurrency, sign-off, runs) keep
the pair; a test that only drives the pipeline through them runs on SQLite alone
(``@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)``).

Parallel runs (pytest-xdist, ``make test``): each worker gets its own DATAWARD_HOME;
Airflow homes, ports, PostgreSQL databases and temporary folders are already per test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import pgcluster  # noqa: E402
from cli_runner import CliResult, invoke_cli  # noqa: E402,F401


def pytest_collection_modifyitems(config, items):
    # Whatever reaches the server is a PostgreSQL test, however it asked for it.
    for item in items:
        if "pg_server" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session", autouse=True)
def _worker_dataward_home(tmp_path_factory):
    """Under pytest-xdist, the default DATAWARD_HOME (the Makefile's ./.dataward) is one per
    worker, so that tests that do not make their own never share a SQLite file."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    saved = os.environ.get("DATAWARD_HOME")
    os.environ["DATAWARD_HOME"] = str(tmp_path_factory.mktemp("default-home"))
    yield
    if saved is None:
        os.environ.pop("DATAWARD_HOME", None)
    else:
        os.environ["DATAWARD_HOME"] = saved


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    url = os.environ.get("DATAWARD_TEST_PG_URL")
    if url:
        yield url
        return
    if not pgcluster.available():
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: no DATAWARD_TEST_PG_URL and no pg_ctl")
        pytest.skip("PostgreSQL server binaries (pg_ctl, initdb) are not installed")
    # Not under pytest's tmp dir: that is private to root, and the server runs as
    # an unprivileged user who must reach its data folder.
    base = Path(tempfile.mkdtemp(prefix="dataward-pg-"))
    try:
        url = pgcluster.start(base)
        yield url
    finally:
        pgcluster.stop(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty lineage database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lineage.db'}"
        from lineage.db import dispose_all

        dispose_all()
        return
    url, drop = pgcluster.fresh_database(request.getfixturevalue("pg_server"))
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def home(tmp_path, monkeypatch, db_url):
    """A fresh installation: DATAWARD_HOME in tmp, the lineage DB from ``db_url``."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("DATAWARD_HOME", str(h))
    monkeypatch.setenv("DATAWARD_DB_URL", db_url)
    monkeypatch.setenv("DATAWARD_ACTOR", "tester")
    for var in ("DATAWARD_DATA_ROOT", "DATAWARD_LANDING", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return h


@pytest.fixture(scope="session")
def digits_example(tmp_path_factory):
    """The bundled example, built once: train/, reference, evaluation, manifest, planted."""
    out = tmp_path_factory.mktemp("example") / "digits"
    subprocess.run([sys.executable, str(REPO / "examples/digits/build.py"), "--out", str(out)],
                   check=True, capture_output=True)
    return out


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 300,
            cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess:
    """Run the real ``dataward`` console script; returns the completed process."""
    exe = Path(sys.executable).with_name("dataward")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


@pytest.fixture
def cli():
    """The ``dataward`` CLI, run in-process."""
    return invoke_cli


@pytest.fixture
def cli_process():
    """The real ``dataward`` console script in a subprocess (slower; for end-to-end checks)."""
    return run_cli
