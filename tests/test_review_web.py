"""The review page served by the Airflow plugin, driven in a real headless Chromium:
from the digest to an approval, signed by the session's user; unauthenticated writes
are refused."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from browser import Browser, chromium_path, non_blank
from test_report import make_version

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.airflow, pytest.mark.slow]


@pytest.fixture
def db_url(tmp_path):
    yield f"sqlite:///{tmp_path / 'lineage.db'}"
    from lineage.db import dispose_all

    dispose_all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _migrated_airflow_db(airflow_env: dict[str, str], dest: Path) -> None:
    """``airflow db migrate`` once per Airflow version, copied per test (12 s saved)."""
    import airflow

    cache = Path(os.environ.get("DATAWARD_TEST_CACHE", "/tmp/dataward-test-cache")) / f"airflow-{airflow.__version__}.db"
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        env = {**airflow_env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp}"}
        subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env,
                       check=True, capture_output=True, timeout=300)
        os.replace(tmp, cache)
    shutil.copy(cache, dest)


@pytest.fixture
def api_server(home, tmp_path):
    """``airflow api-server`` on loopback with this checkout's plugins and the simple auth manager."""
    if shutil.which("airflow", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("airflow is not installed in this environment")
    af_home = tmp_path / "airflow"
    af_home.mkdir()
    port = _free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(af_home),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "no-dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{af_home / 'airflow.db'}",
           "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
           "AIRFLOW__API__WORKERS": "1",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "reviewer:admin",
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    (tmp_path / "no-dags").mkdir()
    (af_home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"reviewer": "s3cret-pw"}))
    _migrated_airflow_db(env, af_home / "airflow.db")
    log = open(tmp_path / "api-server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "api-server",
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v2/version", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("api-server did not start:\n" + (tmp_path / "api-server.log").read_text()[-3000:])
                time.sleep(0.5)
        req = urllib.request.Request(f"{base}/auth/token", method="POST",
                                     data=json.dumps({"username": "reviewer", "password": "s3cret-pw"}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            token = json.load(r)["access_token"]
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _post(url: str, form: dict[str, str], token: str | None = None) -> int:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, method="POST", data=urllib.parse.urlencode(form).encode(), headers=headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_review_page_approves_in_the_browser(api_server, home, tmp_path, monkeypatch):
    if chromium_path() is None:
        pytest.skip("chromium is needed (scripts/test-deps.sh installs it)")
    from dataward.context import Context
    from dataward.stages.common import finished
    from lineage.models import AuditEntry

    base, token = api_server
    ref = make_version(tmp_path, name="tiles-web", quarantine=True, monkeypatch=monkeypatch)
    other = make_version(tmp_path, name="tiles-api", quarantine=True, monkeypatch=monkeypatch)
    quoted = urllib.parse.quote(ref)
    # unauthenticated: reads and writes refused, nothing recorded
    assert _post(f"{base}/dataward/review/{quoted}", {"decision": "approve", "reason": "x"}) == 401
    try:
        urllib.request.urlopen(f"{base}/dataward/", timeout=30)
        raise AssertionError("the queue was served without a user")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    # the reviewer is the session's user, whatever a form says
    assert _post(f"{base}/dataward/review/{urllib.parse.quote(other)}",
                 {"decision": "reject", "reason": "poisoned", "reviewer": "mallory"}, token) == 303

    shot = tmp_path / "review.png"
    with Browser(width=1280, height=1000) as b:
        b.set_cookie("_token", token, base)
        b.goto(f"{base}/dataward/digest?since=1h")
        assert ref in b.text()
        b.click_and_wait(f'tr[data-ref="{ref}"] a.review-link')
        assert b.evaluate("document.querySelector('#reviewer').textContent") == "reviewer"
        assert b.evaluate("document.querySelector('iframe.report') !== null")
        b.evaluate("document.querySelector('textarea[name=reason]').value = 'flags reviewed: clean hard rows'")
        b.screenshot(shot, full_page=False)
        b.click_and_wait("button.approve")
        assert "Signed off" in b.text() and ref in b.text()
        assert b.evaluate("document.querySelector('#empty') !== null")  # queue is empty now
    assert non_blank(shot)[0]

    with Context().session() as s:
        reviews = {e.subject: e for e in s.execute(select(AuditEntry).where(AuditEntry.action == "review")).scalars()}
    assert reviews[other].actor == "reviewer" and reviews[other].payload["outcome"] == "reject"
    entry = reviews[ref]
    report = finished(Context(), ref, "report")[2]
    assert entry.actor == "reviewer" and entry.payload["via"] == "airflow-ui"
    assert entry.payload["reason"] == "flags reviewed: clean hard rows"
    assert entry.payload["report_sha256"] == report["sha256"]
    snap = finished(Context(), ref, "publish")[2]
    assert snap["published"] and Path(snap["path"]).is_file()
    assert finished(Context(), other, "publish")[2] is None
