"""``dataward review``: the sign-off is recorded (who, when, why, which report) in one
transaction with the status change; an approval publishes through the publish stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from test_report import isolated_home, make_version


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def versions(request, tmp_path_factory):
    """Built once per database engine (the sign-off's row lock differs): two quarantined
    versions (each test signs off its own) and a trimmed one."""
    from pgcluster import fresh_database

    root = tmp_path_factory.mktemp(f"review-{request.param}")
    url, drop = (None, None) if request.param == "sqlite" else fresh_database(
        request.getfixturevalue("pg_server"))
    try:
        with isolated_home(root, url) as h:
            yield {"home": h,
                   "q": make_version(root, name="tiles-q", quarantine=True),
                   "r": make_version(root, name="tiles-r", quarantine=True),
                   "t": make_version(root, name="tiles-t")}
    finally:
        if drop:
            drop()


def _audit(action: str):
    from dataward.context import Context
    from lineage.audit import verify_chain
    from lineage.models import AuditEntry

    with Context().session() as s:
        entries = s.execute(select(AuditEntry).where(AuditEntry.action == action)
                            .order_by(AuditEntry.id)).scalars().all()
        count, problems = verify_chain(s)
        return [(e.actor, e.subject, e.payload) for e in entries], problems


def test_approve_quarantined_version_publishes_and_is_audited(versions, cli):
    from dataward.context import Context
    from dataward.stages.common import finished

    ref = versions["q"]
    queue = json.loads(cli("review-queue", "--json").stdout)
    assert ref in [q["ref"] for q in queue]
    sha = next(q for q in queue if q["ref"] == ref)["report_sha256"]
    assert cli("review", ref, "--approve", "--reviewer", "alice").returncode == 2  # no reason
    assert cli("review", ref, "--reviewer", "alice", "--reason", "x").returncode == 2  # no verdict
    stale = cli("review", ref, "--approve", "--reviewer", "alice", "--reason", "ok",
                "--report-sha256", "0" * 64)
    assert stale.returncode == 2 and "not the current report" in stale.stderr
    r = cli("review", ref, "--approve", "--reviewer", "alice", "--reason", "flags are hard clean rows",
            "--report-sha256", sha, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["created"] and out["published"]["published"] and "airflow_event" not in out
    entries, problems = _audit("review")
    assert not problems
    assert entries == [("alice", ref, entries[0][2])]
    payload = entries[0][2]
    assert payload["outcome"] == "approve" and payload["reason"] == "flags are hard clean rows"
    assert payload["report_sha256"] == sha and payload["previous_status"] == "quarantined"
    snap = finished(Context(), ref, "publish")[2]
    assert snap["published"] and Path(snap["path"]).is_file() and snap["rows"] == 120
    # idempotent: the same sign-off again changes nothing; a contrary one is refused
    again = cli("review", ref, "--approve", "--reviewer", "alice", "--reason", "again", "--json")
    assert again.returncode == 0 and not json.loads(again.stdout)["created"]
    assert len(_audit("review")[0]) == 1
    contrary = cli("review", ref, "--reject", "--reviewer", "bob", "--reason", "no")
    assert contrary.returncode == 2 and "already signed off" in contrary.stderr
    assert ref not in [q["ref"] for q in json.loads(cli("review-queue", "--json").stdout)]
    # --notify-airflow needs a token, and is refused before anything is signed
    no_token = cli("review", versions["r"], "--approve", "--reviewer", "alice", "--reason", "ok",
                   "--notify-airflow", "http://127.0.0.1:9", env={"DATAWARD_AIRFLOW_TOKEN": ""})
    assert no_token.returncode == 2 and "DATAWARD_AIRFLOW_TOKEN" in no_token.stderr


def test_reject_and_refusals(versions, cli):
    from dataward.context import Context
    from dataward.stages.common import finished

    r = cli("review", versions["t"], "--approve", "--reviewer", "alice", "--reason", "ok")
    assert r.returncode == 2 and "not awaiting review" in r.stderr
    ref = versions["r"]
    report = finished(Context(), ref, "report")[2]
    html = Path(report["html"])
    original = html.read_bytes()
    html.write_bytes(original + b"<!-- edited -->")
    tampered = cli("review", ref, "--reject", "--reviewer", "alice", "--reason", "bad")
    assert tampered.returncode == 2 and "altered" in tampered.stderr
    html.write_bytes(original)
    r = cli("review", ref, "--reject", "--reviewer", "alice", "--reason", "poisoned")
    assert r.returncode == 0, r.stderr
    from lineage.ingest import resolve

    with Context().session() as s:
        assert resolve(s, ref).status == "rejected"
    assert finished(Context(), ref, "publish")[2] is None
