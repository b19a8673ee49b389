"""From quarantine to a fixed version: ``dataward rerun`` keeps the earlier outcomes as
superseded history, ``dataward validate`` says when an outcome predates its suite, and the
audit chain verifies throughout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from test_report import make_version


@pytest.fixture
def sqlite_home(tmp_path, monkeypatch):
    """The end-to-end loop runs the real screens twice: once, on SQLite (the decide rerun
    below covers PostgreSQL)."""
    from lineage.db import dispose_all

    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("DATAWARD_HOME", str(h))
    monkeypatch.setenv("DATAWARD_DB_URL", f"sqlite:///{tmp_path / 'lineage.db'}")
    monkeypatch.setenv("DATAWARD_ACTOR", "tester")
    for var in ("DATAWARD_DATA_ROOT", "DATAWARD_LANDING", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "DATAWARD_POLICY"):
        monkeypatch.delenv(var, raising=False)
    yield h
    dispose_all()


@pytest.mark.slow
def test_rerun_after_the_suite_is_committed(sqlite_home, cli, digits_example, tmp_path, monkeypatch):
    """Quarantined for want of a suite; the suite is scaffolded and committed; the rerun
    approves it (a trim), and the history shows both outcomes."""
    monkeypatch.setattr("dataward.stages.report.render_pdf", lambda html: b"%PDF-1.7 not rendered\n")
    expectations = tmp_path / "expectations"
    shutil.copytree(Path(__file__).resolve().parent.parent / "expectations", expectations)
    monkeypatch.setenv("DATAWARD_EXPECTATIONS", str(expectations))
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pq.read_table(digits_example / "train" / "digits.parquet").slice(0, 300),
                   data / "digits.parquet")
    manifest = yaml.safe_load((digits_example / "manifest.yaml").read_text())
    manifest.update(name="digits-fresh", kind="digits-fresh",
                    reference=str(digits_example / "reference.parquet"))
    manifest.pop("evaluation_sets", None)
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))

    first = cli("run", str(data), "-m", str(tmp_path / "manifest.yaml"), "--json")
    assert first.returncode == 1, first.stderr
    out = json.loads(first.stdout)
    ref = out["ref"]
    assert out["outcome"] == "quarantine" and out["validation"] == "missing_suite"
    # the suite is scaffolded (reviewed and committed by a person): the recorded outcome is now outdated
    assert cli("expectations", "init", ref, "--kind", "digits-fresh").returncode == 0
    stale = cli("validate", ref)
    assert stale.returncode == 1 and "OUTDATED" in stale.stdout and "dataward rerun" in stale.stdout
    assert cli("rerun", ref, "--from", "validate").returncode == 2  # a reason is required
    assert cli("rerun", ref, "--from", "ingest", "--reason", "x").returncode == 2
    r = cli("rerun", ref, "--from", "validate", "--reason", "suite digits-fresh committed", "--json")
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["outcome"] in ("trim", "approve") and again["validation"] == "passed"
    assert again["snapshot_ref"] and Path(again["snapshot"]).is_file()
    stages = {m["stage"] for m in again["superseded"] if m["kind"] == "stage"}
    assert stages == {"validate", "screen", "decide", "report"}
    fresh = cli("validate", ref, "--json")
    assert fresh.returncode == 0 and "stale" not in json.loads(fresh.stdout)

    hist = json.loads(cli("history", ref, "--json").stdout)
    validations = [(h["status"], h["superseded"]) for h in hist if h["stage"] == "validate"]
    assert validations == [("missing_suite", True), ("passed", False)]
    decisions = [(h["status"], h["superseded"]) for h in hist if h["kind"] == "decision"]
    assert decisions == [("quarantine", True), (again["outcome"], False)]
    old_report = next(h for h in hist if h["stage"] == "report" and h["superseded"])
    assert old_report["reason"] == "suite digits-fresh committed"
    archived = next(m for m in again["superseded"] if m["stage"] == "report")["archived"]["html"]
    import hashlib

    assert hashlib.sha256(Path(archived).read_bytes()).hexdigest() == old_report["output"]["sha256"]
    verify = cli("audit", "verify")
    assert verify.returncode == 0, verify.stderr
    runs = json.loads(cli("runs", "--json").stdout)["runs"]
    assert [(r["trigger"], r["status"]) for r in runs] == [("rerun", "success"), ("cli", "success")]
    assert "suite digits-fresh committed" in runs[0]["note"]
    # a published version is not re-run: the fix is a new version
    done = cli("rerun", ref, "--from", "decide", "--reason", "again")
    assert done.returncode == 2 and "already published" in done.stderr


def test_rerun_decide_after_a_policy_change_keeps_the_sign_off_history(home, cli, tmp_path, monkeypatch):
    """Quarantined by a strict policy and rejected by a reviewer; the policy is relaxed and
    the decision re-run: the policy's and the reviewer's decisions are superseded, not lost."""
    from dataward.context import Context
    from lineage.ingest import resolve

    ref = make_version(tmp_path, name="tiles-policy", quarantine=True)
    monkeypatch.setattr("dataward.stages.report.render_pdf", lambda html: b"%PDF-1.7 not rendered\n")
    policy = tmp_path / "review.yaml"
    policy.write_text("version: relaxed\nreview: {reviewers: [alice]}\n")
    r = cli("review", ref, "--reject", "--reason", "too many flags for the strict policy",
            env={"DATAWARD_ACTOR": "alice", "DATAWARD_POLICY": str(policy)})
    assert r.returncode == 0, r.stderr
    r = cli("rerun", ref, "--from", "decide", "--reason", "policy 'relaxed' trims up to 15 %", "--json",
            env={"DATAWARD_POLICY": str(policy)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["outcome"] == "trim" and out["snapshot_ref"]
    with Context().session() as s:
        assert resolve(s, ref).status == "trimmed"
    hist = json.loads(cli("history", ref, "--json").stdout)
    decisions = [(h["status"], h.get("decided_by"), h["superseded"]) for h in hist if h["kind"] == "decision"]
    assert decisions == [("quarantine", "policy", True), ("reject", "alice", True), ("trim", "policy", False)]
    assert [h["stage"] for h in hist if h["superseded"] and h["kind"] == "stage"] == ["decide", "report"]
    assert cli("audit", "verify").returncode == 0


def test_rerun_licence_after_the_licence_is_classified(home, cli, tmp_path, monkeypatch):
    """An unclassified licence quarantines; once the licence policy classifies it, a rerun
    from licence judges it again (the old verdict kept) and the version is decided anew."""
    ref = make_version(tmp_path, name="tiles-lab", licence="LicenseRef-example-lab")
    monkeypatch.setattr("dataward.stages.report.render_pdf", lambda html: b"%PDF-1.7 not rendered\n")
    first = [h for h in json.loads(cli("history", ref, "--json").stdout) if h["kind"] == "decision"]
    assert [h["status"] for h in first] == ["quarantine"]
    licences = tmp_path / "licences.yaml"
    default = Path(__file__).resolve().parent.parent / "lineage" / "licence_policy.yaml"
    licences.write_text(default.read_text().replace(
        'version: "2026.11-1"', 'version: "lab-classified"').replace(
        "licences:\n", "licences:\n  LicenseRef-example-lab: {use_class: commercial}\n", 1))
    env = {"DATAWARD_LICENCE_POLICY": str(licences)}
    r = cli("rerun", ref, "--from", "licence", "--reason", "legal classified the lab licence", "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["outcome"] == "trim" and out["snapshot_ref"]
    (lic,) = [m for m in out["superseded"] if m["kind"] == "licence"]
    assert lic["status"] is False and lic["now"] is True and lic["policy_version"] == "lab-classified"
    hist = json.loads(cli("history", ref, "--json").stdout)
    old = next(h for h in hist if h["kind"] == "licence")
    assert old["superseded"] and old["output"]["allowed_for_training"] is False
    assert [(h["status"], h["superseded"]) for h in hist if h["kind"] == "decision"] == [
        ("quarantine", True), ("trim", False)]
    assert cli("audit", "verify").returncode == 0


def test_rerun_through_the_import_dag_params(home, tmp_path, monkeypatch):
    """The DAG's ``rerun`` params take the same path as the CLI: the ingest task prepares the
    rerun (no import), the stage tasks re-run what was superseded."""
    from dataward.airflow.tasks import finish_task, ingest_task, stage_task
    from dataward.errors import BadInput

    ref = make_version(tmp_path, name="tiles-dag", quarantine=True)
    monkeypatch.setattr("dataward.stages.report.render_pdf", lambda html: b"%PDF-1.7 not rendered\n")
    with pytest.raises(BadInput, match="reason"):
        ingest_task({"rerun": ref, "rerun_from": "decide"}, trigger="airflow:import", external_id="r0")
    info = ingest_task({"rerun": ref, "rerun_from": "decide", "rerun_reason": "default policy now"},
                       trigger="airflow:import", external_id="manual__1", triggered_by="ops")
    assert info["status"] == "rerun" and info["ref"] == ref
    for stage in ("validate", "screen", "decide", "report", "publish"):
        info = stage_task(stage, info)
    assert info["decide"]["outcome"] == "trim" and info["publish"]["published"]
    assert finish_task(info)["snapshot"]
    from test_runs import _runs

    assert [s for _, s, _, _ in _runs()] == ["success"]
