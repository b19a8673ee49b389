"""``dataward review``: the sign-off is recorded (who, when, why, which report) in one
transaction with the status change; an approval publishes through the publish stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from test_report import isolated_home, make_version

REVIEW_POLICY = """version: review-test
review:
  reviewers: [alice, bob, tester]
  override_min_reason: 10
"""


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def versions(request, tmp_path_factory):
    """Built once per database engine (the sign-off's row lock differs): quarantined
    versions (each test signs off its own) and a trimmed one. Versions are imported by
    ``tester``; the sign-off policy names alice, bob and tester as reviewers."""
    from pgcluster import fresh_database

    root = tmp_path_factory.mktemp(f"review-{request.param}")
    url, drop = (None, None) if request.param == "sqlite" else fresh_database(
        request.getfixturevalue("pg_server"))
    try:
        with isolated_home(root, url) as h:
            refs = {"q": make_version(root, name="tiles-q", quarantine=True),
                    "r": make_version(root, name="tiles-r", quarantine=True),
                    "s": make_version(root, name="tiles-s", quarantine=True),
                    "o": make_version(root, name="tiles-o", quarantine=True),
                    "t": make_version(root, name="tiles-t")}
            (root / "review-policy.yaml").write_text(REVIEW_POLICY)
            (root / "two-policy.yaml").write_text(REVIEW_POLICY.replace("review:", "review:\n  override_reviewers: 2"))
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("DATAWARD_POLICY", str(root / "review-policy.yaml"))
                yield {"home": h, "root": root, **refs}
    finally:
        if drop:
            drop()


def as_(who: str, **env: str) -> dict[str, str]:
    return {"DATAWARD_ACTOR": who, **env}


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
    from dataward.stage_results import finished

    ref = versions["q"]
    queue = json.loads(cli("review-queue", "--json").stdout)
    assert ref in [q["ref"] for q in queue]
    sha = next(q for q in queue if q["ref"] == ref)["report_sha256"]
    alice = as_("alice")
    assert cli("review", ref, "--approve", "--reviewer", "alice", env=alice).returncode == 2  # no reason
    assert cli("review", ref, "--reviewer", "alice", "--reason", "x", env=alice).returncode == 2  # no verdict
    stale = cli("review", ref, "--approve", "--reason", "flags are clean rows",
                "--report-sha256", "0" * 64, env=alice)
    assert stale.returncode == 2 and "not the current report" in stale.stderr
    r = cli("review", ref, "--approve", "--reviewer", "alice", "--reason", "flags are hard clean rows",
            "--report-sha256", sha, "--json", env=alice)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["created"] and out["published"]["published"] and "airflow_event" not in out
    entries, problems = _audit("review")
    assert not problems
    entries = [e for e in entries if e[1] == ref]
    assert entries == [("alice", ref, entries[0][2])]
    payload = entries[0][2]
    assert payload["outcome"] == "approve" and payload["reason"] == "flags are hard clean rows"
    assert payload["report_sha256"] == sha and payload["previous_status"] == "quarantined"
    snap = finished(Context(), ref, "publish")[2]
    assert snap["published"] and Path(snap["path"]).is_file() and snap["rows"] == 120
    # idempotent: the same sign-off again changes nothing; a contrary one is refused
    again = cli("review", ref, "--approve", "--reason", "again, the same sign-off", "--json", env=alice)
    assert again.returncode == 0 and not json.loads(again.stdout)["created"]
    assert len([e for e in _audit("review")[0] if e[1] == ref]) == 1
    contrary = cli("review", ref, "--reject", "--reason", "no", env=as_("bob"))
    assert contrary.returncode == 2 and "already signed off" in contrary.stderr
    assert ref not in [q["ref"] for q in json.loads(cli("review-queue", "--json").stdout)]
    # --notify-airflow needs a token, and is refused before anything is signed
    no_token = cli("review", versions["r"], "--approve", "--reason", "flags are clean rows",
                   "--notify-airflow", "http://127.0.0.1:9", env=as_("alice", DATAWARD_AIRFLOW_TOKEN=""))
    assert no_token.returncode == 2 and "DATAWARD_AIRFLOW_TOKEN" in no_token.stderr


def test_reject_and_refusals(versions, cli):
    from dataward.context import Context
    from dataward.stage_results import finished

    alice = as_("alice")
    r = cli("review", versions["t"], "--approve", "--reason", "flags are clean rows", env=alice)
    assert r.returncode == 2 and "not awaiting review" in r.stderr
    ref = versions["r"]
    report = finished(Context(), ref, "report")[2]
    html = Path(report["html"])
    original = html.read_bytes()
    html.write_bytes(original + b"<!-- edited -->")
    tampered = cli("review", ref, "--reject", "--reason", "bad", env=alice)
    assert tampered.returncode == 2 and "altered" in tampered.stderr
    html.write_bytes(original)
    r = cli("review", ref, "--reject", "--reason", "poisoned", env=alice)
    assert r.returncode == 0, r.stderr
    from lineage.ingest import resolve

    with Context().session() as s:
        assert resolve(s, ref).status == "rejected"
    assert finished(Context(), ref, "publish")[2] is None


def _refusals(ref: str) -> list[tuple[str, str]]:
    return [(actor, payload["why"]) for actor, subject, payload in _audit("review-refused")[0] if subject == ref]


def test_cli_signs_only_as_a_named_reviewer_never_the_importer(versions, cli):
    from dataward.context import Context
    from lineage.ingest import resolve

    ref = versions["s"]
    reason = "the flagged rows are clean"
    # not named by the policy: refused, audited, nothing signed
    r = cli("review", ref, "--approve", "--reason", reason, env=as_("mallory"))
    assert r.returncode == 2 and "not a reviewer named by the decision policy" in r.stderr, r.stderr
    # --reviewer cannot borrow another identity
    r = cli("review", ref, "--approve", "--reviewer", "alice", "--reason", reason, env=as_("mallory"))
    assert r.returncode == 2 and "would sign as someone else" in r.stderr
    # the importer (DATAWARD_ACTOR=tester at ingest) is a named reviewer, yet may not sign it
    r = cli("review", ref, "--reject", "--reason", reason, env=as_("tester"))
    assert r.returncode == 2 and "separation of duties" in r.stderr, r.stderr
    refusals = _refusals(ref)
    assert [a for a, _ in refusals] == ["mallory", "mallory", "tester"]
    assert "separation of duties" in refusals[-1][1]
    with Context().session() as s:
        assert resolve(s, ref).status == "quarantined"
    # the default policy names no reviewers: the CLI refuses everyone
    r = cli("review", ref, "--approve", "--reason", reason, env=as_("alice", DATAWARD_POLICY=""))
    assert r.returncode == 2 and "none named" in r.stderr
    # an override needs a written reason
    r = cli("review", ref, "--approve", "--reason", "ok", env=as_("alice"))
    assert r.returncode == 2 and "at least 10 characters" in r.stderr
    assert len(_refusals(ref)) == 5
    assert _audit("review")[1] == []  # the chain verifies with the refusals in it


def test_override_with_two_reviewers(versions, cli):
    from dataward.context import Context
    from dataward.stage_results import finished
    from lineage.ingest import resolve

    ref, two = versions["o"], str(versions["root"] / "two-policy.yaml")
    r = cli("review", ref, "--approve", "--reason", "checked every flagged row", "--json",
            env=as_("alice", DATAWARD_POLICY=two))
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["outcome"] == "first-approval" and first["published"] is None
    with Context().session() as s:
        assert resolve(s, ref).status == "quarantined"
    queue = {q["ref"]: q for q in json.loads(cli("review-queue", "--json").stdout)}
    assert queue[ref]["approvals"] == ["alice"]  # still waits, with one approval
    r = cli("review", ref, "--approve", "--reason", "checked every flagged row", env=as_("alice", DATAWARD_POLICY=two))
    assert r.returncode == 2 and "distinct reviewers" in r.stderr
    r = cli("review", ref, "--approve", "--reason", "agree: the flags are clean rows", "--json",
            env=as_("bob", DATAWARD_POLICY=two))
    assert r.returncode == 0, r.stderr
    second = json.loads(r.stdout)
    assert second["outcome"] == "approve" and second["approvals"] == ["alice", "bob"]
    assert second["published"]["published"]
    with Context().session() as s:
        assert resolve(s, ref).status == "approved"
    assert finished(Context(), ref, "publish")[2]["published"]
    assert [a for a, _ in _refusals(ref)] == ["alice"]


def test_airflow_door_feeds_the_same_sign_off(versions):
    """The review task's request links the report; its answer goes through ``sign_off``: the
    importer's approval is refused (audited), a timeout keeps the version quarantined."""
    from dataward.airflow.tasks import review_request, review_response
    from dataward.context import Context
    from dataward.governance.review import ReviewRefused
    from lineage.ingest import resolve

    ref = versions["s"]
    info = {"ref": ref, "run_id": None, "policy": None}
    ask = review_request(info, base_url="http://airflow.example")
    assert ask["subject"] == f"Dataward sign-off: {ref}"
    assert f"http://airflow.example/dataward/files/reports/{ref.replace('@', '-v')}/report.html" in ask["body"]
    assert ask["assigned_users"] == [{"id": n, "name": n} for n in ("alice", "bob", "tester")]
    assert ask["timeout_hours"] == 72
    with pytest.raises(ReviewRefused, match="separation of duties"):
        review_response(info, chosen=["Approve"], reason="the flagged rows are clean", timed_out=False,
                        user={"id": "tester", "name": "tester"}, report_sha256=ask["report_sha256"])
    assert _refusals(ref)[-1][0] == "tester"
    out = review_response(info, chosen=["Keep quarantined"], reason=None, timed_out=True, user=None,
                          report_sha256=None)
    assert out["review"] == {"outcome": "timeout", "timed_out": True}
    with Context().session() as s:
        assert resolve(s, ref).status == "quarantined"
    assert [a for a, s_, _ in _audit("review-timeout")[0] if s_ == ref] == ["airflow"]
    assert review_request({"ref": versions["t"], "policy": None}) is None  # a trimmed version: no wait
