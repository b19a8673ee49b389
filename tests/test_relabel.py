"""Relabel instead of remove: with ``screening.on_label_noise: relabel`` the policy keeps the
rows flagged as label noise only, with cleanlab's suggested label, and the snapshot's lineage
records every change. Real pipeline (``dataward run``) on scikit-learn's digits with planted
label flips and a trusted reference; real SQLite lineage DB."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import select


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_policy_relabels_label_noise_and_lineage_records_it(home, db_url, cli, tmp_path, monkeypatch):
    from digits_tables import digits_table, shuffled_digits, use_policy

    use_policy(tmp_path, monkeypatch, "version: relabel-test\ncanary: {enabled: false}\n"
                                      "screening: {on_label_noise: relabel}\n")
    x, y, order, rng = shuffled_digits(7)
    train, ref = order[:1100], order[1100:1500]
    xt, yt = x[train], y[train].copy()
    flipped = rng.choice(len(yt), size=66, replace=False)  # 6 % uniform label flips
    yt[flipped] = (yt[flipped] + rng.integers(1, 10, size=len(flipped))) % 10
    (tmp_path / "src").mkdir()
    pq.write_table(digits_table(xt, yt), tmp_path / "src" / "data.parquet")
    pq.write_table(digits_table(x[ref], y[ref]), tmp_path / "reference.parquet")
    manifest = {"name": "digits-relabel", "owner": "data@example.com", "license": "CC-BY-4.0",
                "kind": "tabular-digits", "label_column": "label", "source": {"uri": "https://example.org/digits"},
                "reference": str(tmp_path / "reference.parquet")}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(manifest))

    r = cli("run", str(tmp_path / "src"), "--manifest", str(tmp_path / "m.yaml"), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["outcome"] == "trim", out["reasons"]
    from dataward.context import Context
    from dataward.stage_results import finished

    decision = finished(Context(), "digits-relabel@1", "decide")[2]
    relabels = {int(i): lab for i, lab in decision["relabels"]}
    excluded = set(decision["excluded_row_ids"])
    scores = pq.read_table(finished(Context(), "digits-relabel@1", "screen")[2]["scores_path"]).to_pandas()
    flagged = set(scores.loc[scores["flagged"], "row_id"])
    suggested = {int(i): str(s) for i, s in zip(scores["row_id"], scores["suggested_label"]) if s is not None
                 and s == s}
    # every flagged row is either relabelled (exactly the rows with a suggestion) or removed
    assert relabels and set(relabels) | excluded == flagged and not set(relabels) & excluded
    assert relabels == suggested
    assert decision["relabelled_rows"] == len(relabels) and decision["excluded_rows"] == len(excluded)
    # the suggestions put planted flips back to their true class, most of the time
    back = [i for i in relabels if i in set(flipped.tolist())]
    assert len(back) >= 0.5 * len(flipped), f"{len(back)} of {len(flipped)} flips relabelled"
    assert sum(int(relabels[i]) == y[train][i] for i in back) >= 0.9 * len(back)

    # the snapshot: every row but the removed ones, the relabelled ones with their new label
    snap = pq.read_table(out["snapshot"])
    assert snap.num_rows == len(yt) - len(excluded)
    assert snap.schema.field("label").type == pa.int64()
    kept = [i for i in range(len(yt)) if i not in excluded]
    expect = np.array([int(relabels[i]) if i in relabels else yt[i] for i in kept])
    assert np.array_equal(snap.column("label").to_numpy(), expect)
    assert np.array_equal(snap.column("p5").to_numpy(), xt[kept, 5])

    # lineage: the snapshot row lists [row, old, new]; the audit entry and `lineage show` say so
    from lineage.db import get_engine, session_scope
    from lineage.models import AuditEntry, Snapshot

    with session_scope(get_engine(db_url)) as s:
        row = s.execute(select(Snapshot)).scalars().one()
        assert sorted(map(tuple, row.relabels)) == sorted((i, int(yt[i]), int(lab)) for i, lab in relabels.items())
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "snapshot")).scalars().one()
        assert entry.payload["relabelled_rows"] == len(relabels)
    show = json.loads(cli("lineage", "show", out["snapshot_ref"], "--json").stdout)
    assert len(show["snapshot"]["relabels"]) == len(relabels)
    assert show["snapshot"]["excluded_rows"] == len(excluded)
    text = cli("lineage", "show", out["snapshot_ref"]).stdout
    assert f"{len(relabels)} relabelled" in text
    html = (home / "reports" / "digits-relabel-v1" / "report.html").read_text()
    assert "Relabelled rows" in html and f"{len(relabels)} more flagged row(s)" in html
    assert cli("audit", "verify").returncode == 0


def test_policy_relabel_rule():
    """The rule alone: suggested rows are relabelled, the rest removed; nothing is relabelled
    when the outcome is not a trim, and the default policy removes."""
    from dataward.governance.policy import apply_policy, load_policy

    ok = dict(licence={"allowed_for_training": True, "reason": "ok"},
              validation={"success": True, "status": "passed"}, screening={"status": "done"}, n_rows=100)
    default = load_policy()
    assert default.on_label_noise == "remove"
    d = apply_policy(default, flagged_row_ids=[5, 2, 9], suggested_labels={2: "cat"}, **ok)
    assert d.excluded_row_ids == [2, 5, 9] and d.relabels == []
    import dataclasses

    relabel = dataclasses.replace(default, on_label_noise="relabel")
    d = apply_policy(relabel, flagged_row_ids=[5, 2, 9], suggested_labels={2: "cat", 9: "dog"}, **ok)
    assert d.outcome == "trim" and d.excluded_row_ids == [5] and d.relabels == [[2, "cat"], [9, "dog"]]
    assert d.to_dict()["relabelled_rows"] == 2
    assert "2 of them relabelled" in next(r["why"] for r in d.reasons if r["check"] == "screening")
    blocked = apply_policy(relabel, flagged_row_ids=[5, 2], suggested_labels={},
                           relabel_blocked="labels of type binary cannot be relabelled", **ok)
    assert blocked.excluded_row_ids == [2, 5] and blocked.relabels == []
    assert "not relabelled: labels of type binary" in next(r["why"] for r in blocked.reasons
                                                           if r["check"] == "screening")
    many = list(range(int(relabel.max_trim_fraction * 100) + 1))
    q = apply_policy(relabel, flagged_row_ids=many, suggested_labels={i: "cat" for i in many}, **ok)
    assert q.outcome == "quarantine" and q.relabels == [] and q.excluded_row_ids == []


@pytest.mark.parametrize("column,new,expect", [
    (pa.array(["cat", "dog", "cat"]), "dog", "dog"),
    (pa.array(["cat", "dog", "cat"]).dictionary_encode(), "dog", "dog"),
    (pa.array([True, False, True]), "False", False),
    (pa.array([1, 2, 1], type=pa.int8()), "2", 2),
])
def test_relabel_keeps_the_label_column_type(column, new, expect):
    from dataward.stages.publish import _relabelled

    batch = pa.record_batch({"x": [0.1, 0.2, 0.3], "label": column})
    changes: list = []
    out = _relabelled(batch, "label", np.array([12]), 10, {12: new}, changes)
    assert out.schema == batch.schema
    assert out.column("label").to_pylist() == [column[0].as_py(), column[1].as_py(), expect]
    assert changes == [[12, column[2].as_py(), expect]]


def test_a_policy_with_an_unknown_label_noise_action_is_refused(tmp_path):
    from dataward.errors import BadInput
    from dataward.governance.policy import load_policy

    (tmp_path / "p.yaml").write_text("screening: {on_label_noise: fix}\n")
    with pytest.raises(BadInput, match="on_label_noise must be one of remove, relabel"):
        load_policy(tmp_path / "p.yaml")


def test_without_a_trusted_reference_flagged_rows_are_removed_not_relabelled():
    import dataclasses

    from dataward.governance.policy import apply_policy, load_policy

    relabel = dataclasses.replace(load_policy(), on_label_noise="relabel", on_no_reference="approve")
    d = apply_policy(relabel, licence={"allowed_for_training": True, "reason": "ok"},
               validation={"success": True, "status": "passed"},
               screening={"status": "done", "used_reference": False}, n_rows=100,
               flagged_row_ids=[5, 2], suggested_labels={2: "cat"})
    assert d.outcome == "trim" and d.excluded_row_ids == [2, 5] and d.relabels == []
    assert any("only with a trusted reference" in r["why"] for r in d.reasons)


@pytest.mark.parametrize("label_type,ok", [
    (pa.int64(), True), (pa.int8(), True), (pa.bool_(), True), (pa.float64(), True), (pa.string(), True),
    (pa.large_string(), True), (pa.dictionary(pa.int32(), pa.string()), True),
    (pa.binary(), False), (pa.decimal128(5, 2), False), (pa.date32(), False),
])
def test_only_labels_whose_text_casts_back_exactly_are_relabelled(label_type, ok):
    """The screens name classes by their text: it casts back exactly to integers, booleans,
    floats and strings; bytes would come back as the text "b'x'" and decimals cannot be
    recorded as JSON, so those versions keep the default (remove)."""
    from dataward.stages.publish import relabelable

    assert relabelable(label_type) is ok


def test_relabelled_snapshot_rows_are_never_drawn_into_a_trust_chain_reference():
    """A snapshot row's position is its source row id minus the source rows left out before
    it; the relabelled ones (labels cleanlab suggested, nobody checked) are left out of
    the trust chain's sample."""
    from types import SimpleNamespace

    from dataward.governance.reference import _relabelled_positions

    snap = SimpleNamespace(excluded_row_ids=[1, 4, 5], relabels=[[0, 3, 2], [3, 1, 7], [9, 0, 1]])
    # source rows 0..9 minus 1, 4, 5 -> snapshot rows [0, 2, 3, 6, 7, 8, 9] at positions 0..6
    assert _relabelled_positions(snap) == [0, 2, 6]
    assert _relabelled_positions(SimpleNamespace(excluded_row_ids=[2], relabels=None)) == []
