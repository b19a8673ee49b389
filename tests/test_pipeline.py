"""The pipeline end to end: stages, idempotency, decisions, snapshots, the screen contract."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from dataward.context import Context
from dataward.pipeline import STAGES, run_stage
from dataward.stages.outputs import check_output
from lineage.db import get_engine, session_scope
from lineage.models import AuditEntry, Decision, Snapshot, StageResult


def count(db_url, model) -> int:
    with session_scope(get_engine(db_url)) as s:
        return s.execute(select(func.count()).select_from(model)).scalar()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_run_trims_planted_poisons_and_is_idempotent(home, db_url, cli, digits_example):
    r = cli("run", str(digits_example / "train"), "--manifest", str(digits_example / "manifest.yaml"),
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ref"] == "digits-example@1" and out["outcome"] == "trim"
    assert out["validation"] == "passed"
    # the reference's power, in words: the least covered class of the example's reference
    assert out["screening_power"].startswith("the class-excess test cannot flag a backdoor concentrated on class")
    planted = json.loads((digits_example / "planted.json").read_text())
    scores = pq.read_table(home / "runs" / "digits-example" / "1" / "screen" / "scores.parquet").to_pandas()
    assert list(scores.columns[:5]) == ["row_id", "spectral", "label_noise", "influence", "flagged"]
    assert scores["row_id"].tolist() == list(range(1077))
    flagged = set(scores.loc[scores["flagged"], "row_id"])
    backdoor = set(planted["backdoor_rows"])
    assert len(flagged & backdoor) >= 0.9 * len(backdoor)  # the planted backdoor is found
    assert len(flagged - backdoor - set(planted["flipped_rows"])) < 0.05 * 1077

    # The snapshot holds exactly the rows not excluded, and is a derived version.
    snap = pq.read_table(out["snapshot"])
    assert snap.num_rows == 1077 - out["n_flagged"]
    show = json.loads(cli("lineage", "show", out["snapshot_ref"], "--json").stdout)
    assert show["parents"][0]["ref"] == "digits-example@1"
    assert show["parents"][0]["relation"] == "trimmed"
    assert show["licence"]["expression"] == "CC-BY-4.0"
    assert (home / "reports" / "digits-example-v1" / "report.html").is_file()

    # Re-running changes nothing: same outputs, no new rows.
    before = {m.__tablename__: count(db_url, m) for m in (StageResult, Decision, Snapshot, AuditEntry)}
    again = cli("run", str(digits_example / "train"), "--manifest", str(digits_example / "manifest.yaml"),
                "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["snapshot"] == out["snapshot"]
    after = {m.__tablename__: count(db_url, m) for m in (StageResult, Decision, Snapshot, AuditEntry)}
    assert after == before
    ctx = Context()
    for stage in STAGES:
        output = run_stage(ctx, stage, "digits-example@1")
        check_output(stage, output)  # every key a stage writes is declared in dataward/stages/outputs.py
    check_output("summary", out)
    assert {m.__tablename__: count(db_url, m) for m in (StageResult, Decision, Snapshot, AuditEntry)} == before
    assert cli("audit", "verify").returncode == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_licence_quarantine_runs_every_stage_and_publishes_nothing(home, cli, digits_example, tmp_path):
    m = tmp_path / "manifest.yaml"
    m.write_text((digits_example / "manifest.yaml").read_text().replace("CC-BY-4.0", "CC-BY-NC-4.0")
                 .replace("reference: reference.parquet", f"reference: {digits_example / 'reference.parquet'}")
                 .replace("[evaluation.parquet]", f"[{digits_example / 'evaluation.parquet'}]"))
    r = cli("run", str(digits_example / "train"), "--manifest", str(m), "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["outcome"] == "quarantine"
    assert any(x["check"] == "licence" and "non-commercial" in x["why"] for x in out["reasons"])
    assert out["snapshot"] is None
    assert json.loads(cli("datasets", "--json").stdout)[0]["status"] == "quarantined"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_validation_failure_quarantines(home, cli, tmp_path, monkeypatch):
    """Out-of-range pixel values fail the reviewed digits suite; the version is quarantined."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data[:400].astype(np.int64)
    x[:5, 0] = 99  # outside the suite's 0..16
    cols = {f"p{i}": x[:, i] for i in range(64)} | {"label": d.target[:400].astype(np.int64)}
    pq.write_table(pa.table(cols), tmp_path / "d.parquet")
    (tmp_path / "m.yaml").write_text("name: bad-digits\nowner: a@b.c\nlicense: CC-BY-4.0\n"
                                     "source: {uri: 'https://example.com'}\nkind: tabular-digits\n"
                                     "label_column: label\n")
    assert cli("ingest", str(tmp_path / "d.parquet"), "--manifest", str(tmp_path / "m.yaml")).returncode == 0
    v = cli("validate", "bad-digits")
    assert v.returncode == 1
    assert "FAILED expect_column_values_to_be_between on p0" in v.stdout
    listing = json.loads(cli("datasets", "--json").stdout)
    assert listing[0]["status"] == "quarantined"
    # Idempotent: a second validate reports the recorded result.
    assert cli("validate", "bad-digits@1").returncode == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_kind_without_suite_quarantines(home, cli, tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "label": [0, 1, 0]}), tmp_path / "d.parquet")
    (tmp_path / "m.yaml").write_text("name: odd\nowner: a@b.c\nlicense: MIT\nsource: {uri: s3://x}\n"
                                     "kind: no-such-kind\nlabel_column: label\n")
    cli("ingest", str(tmp_path / "d.parquet"), "--manifest", str(tmp_path / "m.yaml"))
    v = cli("validate", "odd", "--json")
    assert v.returncode == 1
    out = json.loads(v.stdout)
    assert out["status"] == "missing_suite" and "no-such-kind" in out["reason"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_run_names_the_command_for_a_missing_suite(home, cli, tmp_path):
    """``dataward run``'s terminal says what the report says: the command that drafts a
    suite, and folders relative to the project or DATAWARD_HOME, never a server path or a
    Python function."""
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "label": [0, 1, 0]}), tmp_path / "d.parquet")
    (tmp_path / "m.yaml").write_text("name: odd\nowner: a@b.c\nlicense: MIT\nsource: {uri: s3://x}\n"
                                     "kind: no-such-kind\nlabel_column: label\n")
    r = cli("run", str(tmp_path / "d.parquet"), "--manifest", str(tmp_path / "m.yaml"), "--quiet")
    assert r.returncode == 1, r.stderr
    validation = next(line for line in r.stdout.splitlines() if "no expectation suite" in line)
    assert "`dataward expectations init odd@1 --kind no-such-kind`" in validation, validation
    assert "expected expectations/gx/expectations/no-such-kind.json" in validation, validation
    assert "scaffold_suite" not in r.stdout
    from dataward.config import REPO_ROOT

    for server_path in (str(home), str(REPO_ROOT.resolve()), str(tmp_path)):
        assert server_path not in validation, validation
    # the recorded reason (history, review page, report) has the same words
    v = json.loads(cli("validate", "odd@1", "--json").stdout)
    assert "dataward expectations init odd@1 --kind no-such-kind" in v["reason"]
    assert "scaffold_suite" not in v["reason"] and str(REPO_ROOT.resolve()) not in v["reason"]


def _toy(n=240, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, 4)) + y[:, None] * 2.0
    return pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "label": y})


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_screen_contract_cli(home, cli, tmp_path):
    pq.write_table(_toy(), tmp_path / "data.parquet")
    pq.write_table(_toy(seed=1), tmp_path / "ref.parquet")
    r = cli("screen", str(tmp_path / "data.parquet"), "--label-col", "label", "--reference",
            str(tmp_path / "ref.parquet"), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    t = pq.read_table(tmp_path / "out" / "scores.parquet")
    assert t.column_names[:5] == ["row_id", "spectral", "label_noise", "influence", "flagged"]
    assert t.column("row_id").to_pylist() == list(range(240))
    assert str(t.schema.field("flagged").type) == "bool"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_rows"] == 240
    # the power statement: per class, what the class-excess test could detect, and one line of it printed
    from dataward.reports.verdict_text import power_statement
    from screening import ScreenConfig
    from screening.verdict import detectable_attack

    cfg, power = ScreenConfig(), summary["combine"]["detectable_attack"]
    data_y, ref_y = _toy().column("label").to_numpy(), _toy(seed=1).column("label").to_numpy()
    assert [d["rows"] for d in power] == [int((data_y == c).sum()) for c in range(3)]
    assert [d["reference_rows"] for d in power] == [int((ref_y == c).sum()) for c in range(3)]
    assert all(d["min_attack_rows"] == detectable_attack(
        d["rows"], d["reference_rows"], n_tests=3 * len(cfg.verdict.excess_levels), delta=cfg.verdict.excess_delta / 2,
        fdr=cfg.verdict.excess_fdr) for d in power)
    assert power_statement(power) in r.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("case,expect", [
    ("missing-label", "label"), ("one-class", "class"), ("nan", "NaN"),
    ("ref-columns", "reference"), ("tiny-class", "class"), ("not-parquet", "Parquet"),
])
def test_screen_contract_bad_inputs(home, cli, tmp_path, case, expect):
    import numpy as np

    t = _toy()
    ref = None
    if case == "missing-label":
        t = t.drop(["label"])
    elif case == "one-class":
        t = t.set_column(4, "label", pa.array(np.zeros(240, dtype=np.int64)))
    elif case == "nan":  # a missing feature is imputed; a label that is NaN cannot be
        y = t.column("label").to_numpy().astype(np.float64)
        y[3] = np.nan
        t = t.set_column(4, "label", pa.array(y))
    elif case == "ref-columns":
        ref = _toy(seed=2).drop(["d"])
    elif case == "tiny-class":
        y = t.column("label").to_numpy().copy()
        y[:2] = 7  # a class of two rows: too small for the probe's folds
        t = t.set_column(4, "label", pa.array(y))
    path = tmp_path / "data.parquet"
    if case == "not-parquet":
        path.write_text("not parquet")
    else:
        pq.write_table(t, path)
    args = ["screen", str(path), "--label-col", "label", "--out", str(tmp_path / "out")]
    if ref is not None:
        pq.write_table(ref, tmp_path / "ref.parquet")
        args += ["--reference", str(tmp_path / "ref.parquet")]
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect.lower() in lines[0].lower(), r.stderr
    assert not (tmp_path / "out" / "scores.parquet").exists()


def test_policy_outcomes():
    from dataward.governance.policy import apply_policy, load_policy

    p = load_policy()
    ok_lic = {"allowed_for_training": True, "reason": "ok"}
    passed = {"success": True, "status": "passed"}
    done = {"status": "done"}
    assert apply_policy(p, licence=ok_lic, validation=passed, screening=done, flagged_row_ids=[],
                        n_rows=100).outcome == "approve"
    trim = apply_policy(p, licence=ok_lic, validation=passed, screening=done, flagged_row_ids=[3, 1],
                        n_rows=100)
    assert trim.outcome == "trim" and trim.excluded_row_ids == [1, 3]
    many = list(range(int(p.max_trim_fraction * 100) + 1))
    assert apply_policy(p, licence=ok_lic, validation=passed, screening=done, flagged_row_ids=many,
                        n_rows=100).outcome == "quarantine"
    most = list(range(int(p.reject_above_fraction * 100) + 1))
    assert apply_policy(p, licence=ok_lic, validation=passed, screening=done, flagged_row_ids=most,
                        n_rows=100).outcome == "reject"
    both = apply_policy(p, licence={"allowed_for_training": False, "reason": "NC"},
                        validation={"success": False, "status": "failed", "failed": ["x"]},
                        screening=done, flagged_row_ids=[1], n_rows=100)
    assert both.outcome == "quarantine" and both.excluded_row_ids == []
    assert {r["check"] for r in both.reasons} >= {"licence", "validation"}
