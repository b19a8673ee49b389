"""The review page served by the Airflow plugin, driven in a real headless Chromium:
from the digest to an approval, signed by the session's user; unauthenticated writes,
a Viewer's sign-off, the importer's own sign-off and forged cross-site posts are refused."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from airflow_harness import wait_for_api_server
from browser import Browser, chromium_path, non_blank
from sqlalchemy import select
from test_report import isolated_home, make_version

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _airflow_db(airflow_env: dict[str, str], dest: Path) -> None:
    """A migrated Airflow DB that knows the approved-snapshots asset, built once and copied.

    ``airflow db migrate`` then ``airflow dags reserialize`` of the example training DAG
    alone (it schedules on ``dataward://snapshots/approved``, so the asset exists and the
    review page can record events on it); cached per Airflow version and DAG file content.
    """
    import hashlib

    import airflow

    dag = REPO / "dags" / "dataward_train_example.py"
    key = hashlib.sha256(dag.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("DATAWARD_TEST_CACHE", "/tmp/dataward-test-cache")) \
        / f"airflow-{airflow.__version__}-train-{key}.db"
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="dw-airflow-db-", dir=cache.parent))
        try:
            (work / "dags").mkdir()
            shutil.copy(dag, work / "dags" / dag.name)
            env = {**airflow_env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow.db'}",
                   "AIRFLOW__CORE__DAGS_FOLDER": str(work / "dags"),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
            exe = str(Path(sys.executable).with_name("airflow"))
            for args in (["db", "migrate"], ["dags", "reserialize"]):
                subprocess.run([exe, *args], env=env, check=True, capture_output=True, timeout=300)
            os.replace(work / "airflow.db", cache)  # atomic: a concurrent run sees all or nothing
        finally:
            shutil.rmtree(work, ignore_errors=True)
    shutil.copy(cache, dest)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """One ``airflow api-server`` for the module (loopback, this checkout's plugins, simple auth
    manager) and three quarantined versions, built while the server starts.

    Users (simple auth manager): ``reviewer`` (Op), ``viewer`` (Viewer), ``importer`` (Op, who
    imported ``refs["own"]``). Yields ``{"base", "token", "tokens": {user: token}, "refs":
    {"web", "api", "cli", "own", "forged"}}``.
    """
    if shutil.which("airflow", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("airflow is not installed in this environment")
    root = tmp_path_factory.mktemp("review-web")
    with isolated_home(root):
        af_home = root / "airflow"
        af_home.mkdir()
        port = _free_port()
        env = {**os.environ, "AIRFLOW_HOME": str(af_home),
               "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
               "AIRFLOW__CORE__DAGS_FOLDER": str(root / "no-dags"),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{af_home / 'airflow.db'}",
               "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
               "AIRFLOW__API__WORKERS": "1",
               "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "reviewer:op,viewer:viewer,importer:op",
               "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
        (root / "no-dags").mkdir()
        (af_home / "simple_auth_manager_passwords.json.generated").write_text(
            json.dumps({"reviewer": "s3cret-pw", "viewer": "v1ewer-pw", "importer": "1mporter-pw"}))
        _airflow_db(env, af_home / "airflow.db")
        log_path = root / "api-server.log"
        log = open(log_path, "w")
        proc = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "api-server",
                                 "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            # the server takes a while to start: build the versions meanwhile (it does not
            # touch the lineage DB until it serves a Dataward request)
            refs = {k: make_version(root, name=f"tiles-{k}", quarantine=True)
                    for k in ("web", "api", "cli", "forged")}
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("DATAWARD_ACTOR", "importer")
                refs["own"] = make_version(root, name="tiles-own", quarantine=True)
            wait_for_api_server(base, proc, log_path, timeout=120)
            tokens = {}
            for user, pw in (("reviewer", "s3cret-pw"), ("viewer", "v1ewer-pw"), ("importer", "1mporter-pw")):
                req = urllib.request.Request(f"{base}/auth/token", method="POST",
                                             data=json.dumps({"username": user, "password": pw}).encode(),
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=30) as r:
                    tokens[user] = json.load(r)["access_token"]
            yield {"base": base, "token": tokens["reviewer"], "tokens": tokens, "refs": refs, "log": log_path}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _asset_events(base: str, token: str) -> list[dict]:
    req = urllib.request.Request(f"{base}/api/v2/assets/events?limit=100",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        events = json.load(r)["asset_events"]
    return sorted((e for e in events if e["uri"] == "dataward://snapshots/approved"), key=lambda e: e["id"])


def _post(url: str, form: dict[str, str], token: str | None = None, *, headers: dict | None = None,
          location: bool = False):
    headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, method="POST", data=urllib.parse.urlencode(form).encode(), headers=headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=60) as r:
            status, where = r.status, r.headers.get("location")
    except urllib.error.HTTPError as exc:
        status, where = exc.code, exc.headers.get("location")
    return (status, urllib.parse.unquote(where or "")) if location else status


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_review_page_approves_in_the_browser(web, tmp_path):
    if chromium_path() is None:
        pytest.skip("chromium is needed (scripts/test-deps.sh installs it)")
    from dataward.context import Context
    from dataward.stage_results import finished
    from lineage.models import AuditEntry

    base, token = web["base"], web["token"]
    ref, other = web["refs"]["web"], web["refs"]["api"]
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
    assert _asset_events(base, token) == []  # a rejection publishes nothing

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
        notice = b.evaluate("document.querySelector('#signed').textContent")
        assert f"Signed off {ref}: approve" in notice and "Airflow asset event" in notice, notice
        assert "no Airflow asset event" not in notice, notice
        queue = b.evaluate("[...document.querySelectorAll('tr[data-ref]')].map(r => r.dataset.ref)")
        assert ref not in queue and other not in queue
    assert non_blank(shot)[0]
    if os.environ.get("DATAWARD_TEST_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["DATAWARD_TEST_SCREENSHOTS"]) / "review.png")

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
    # the approval reached Airflow: one event on the approved-snapshots asset, with the
    # extra asset-scheduled training reads (as the pipeline's publish task sets it)
    (event,) = _asset_events(base, token)
    expected = {"ref": snap["snapshot_ref"], "source": ref, "path": snap["path"]}
    assert {k: event["extra"].get(k) for k in expected} == expected  # Airflow adds from_rest_api


def _status_and_refusals(ref: str) -> tuple[str, list[dict]]:
    from dataward.context import Context
    from lineage.ingest import resolve
    from lineage.models import AuditEntry

    with Context().session() as s:
        refused = [e.payload | {"actor": e.actor} for e in s.execute(
            select(AuditEntry).where(AuditEntry.action == "review-refused", AuditEntry.subject == ref)
            .order_by(AuditEntry.id)).scalars()]
        return resolve(s, ref).status, refused


def test_signing_needs_the_right_the_auth_manager_grants(web):
    """A Viewer may read the queue but not sign (403); the importer, though allowed to sign
    in Airflow, may not sign their own version; both refusals are audited."""
    base, tokens = web["base"], web["tokens"]
    ref = web["refs"]["own"]
    url = f"{base}/dataward/review/{urllib.parse.quote(ref)}"
    reason = "the flagged rows are hard clean rows"
    req = urllib.request.Request(f"{base}/dataward/api/queue", headers={"Authorization": f"Bearer {tokens['viewer']}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert ref in [q["ref"] for q in json.load(r)]  # reading stays open to a Viewer
    assert _post(url, {"decision": "approve", "reason": reason}, tokens["viewer"]) == 403
    status, refused = _status_and_refusals(ref)
    assert status == "quarantined"
    assert [(r["actor"], r["via"]) for r in refused] == [("viewer", "airflow-ui")]
    assert "auth manager" in refused[0]["why"]
    code, where = _post(url, {"decision": "approve", "reason": reason}, tokens["importer"], location=True)
    assert code == 303 and "separation of duties" in where, where
    status, refused = _status_and_refusals(ref)
    assert status == "quarantined"
    assert [r["actor"] for r in refused] == ["viewer", "importer"]
    assert _asset_events(base, tokens["reviewer"]) == [] or all(
        e["extra"].get("source") != ref for e in _asset_events(base, tokens["reviewer"]))


def test_forged_cross_site_post_is_refused(web):
    """The UI's cookie rides along on a post a third-party page makes the browser send: such
    a post (foreign Origin, or no CSRF token) is refused and audited."""
    base, token = web["base"], web["token"]
    ref = web["refs"]["forged"]
    url = f"{base}/dataward/review/{urllib.parse.quote(ref)}"
    form = {"decision": "approve", "reason": "the flagged rows are hard clean rows"}
    cookie = {"Cookie": f"_token={token}"}
    assert _post(url, form, headers={**cookie, "Origin": "https://evil.example"}) == 403
    assert _post(url, form, headers={**cookie, "Origin": base, "Sec-Fetch-Site": "cross-site"}) == 403
    assert _post(url, form, headers={**cookie, "Origin": base}) == 403  # no CSRF token
    assert _post(url, {**form, "csrf": "0" * 64}, headers={**cookie, "Origin": base}) == 403
    status, refused = _status_and_refusals(ref)
    assert status == "quarantined" and len(refused) == 4
    assert all(r["actor"] == "reviewer" for r in refused)


def test_cli_approval_notifies_airflow(web, cli, tmp_path):
    """``dataward review --approve --notify-airflow URL`` records the same asset event."""
    base, token, ref = web["base"], web["token"], web["refs"]["cli"]
    before = len(_asset_events(base, token))
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: web-test\nreview: {reviewers: [alice]}\n")
    r = cli("review", ref, "--approve", "--reason", "checked by hand, every flagged row",
            "--notify-airflow", base, "--json",
            env={"DATAWARD_AIRFLOW_TOKEN": token, "DATAWARD_ACTOR": "alice", "DATAWARD_POLICY": str(policy)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["airflow_event"]["notified"], out["airflow_event"]
    events = _asset_events(base, token)
    assert len(events) == before + 1
    assert events[-1]["extra"]["source"] == ref and events[-1]["extra"]["ref"] == out["published"]["snapshot_ref"]
    # a bad token: the sign-off stands, the notification says why it failed
    from dataward.airflow.rest import notify_airflow

    failed = notify_airflow(base, "not-a-token", out["published"])
    assert not failed["notified"] and "Airflow answered 40" in failed["reason"]
