"""Leakage and duplicate checks on data with planted answers (checks/leakage.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from checks.leakage import (
    exact_duplicates,
    exact_leakage_report,
    exact_matches,
    leakage_report,
    near_duplicates,
    nearest_neighbours,
    row_hashes,
)


def test_row_hash_compares_values_not_types():
    a = pa.table({"x": pa.array([1, 2, 3], pa.int64()), "s": ["a", None, "c"], "v": [[1.0, 2.0]] * 3})
    b = pa.table({"x": pa.array([1.0, 2.0, 3.5]), "s": ["a", None, "c"], "v": [[1, 2]] * 3})
    ha, hb = row_hashes(a), row_hashes(b)
    assert ha.dtype == np.uint64 and list(ha[:2] == hb[:2]) == [True, True] and ha[2] != hb[2]
    assert row_hashes(pa.table({"x": [0.0]}))[0] == row_hashes(pa.table({"x": [-0.0]}))[0]
    assert len(set(row_hashes(pa.table({"x": np.arange(100_000)})).tolist())) == 100_000


def planted(seed: int = 0):
    """600 training rows with 12 exact copies, 15 near copies, 3 relabelled copies; 200
    evaluation rows of which 7 are copied exactly and 9 nearly into the training data."""
    rng = np.random.default_rng(seed)
    d = 16
    base = rng.normal(size=(600, d))
    y = rng.integers(0, 4, size=600)
    ev = rng.normal(size=(200, d))
    ye = rng.integers(0, 4, size=200)
    x, lab = base.copy(), y.copy()
    exact_src, exact_dst = rng.choice(150, 12, replace=False), 300 + np.arange(12)
    x[exact_dst], lab[exact_dst] = x[exact_src], lab[exact_src]
    near_src, near_dst = 150 + rng.choice(100, 15, replace=False), 320 + np.arange(15)
    x[near_dst] = x[near_src] + rng.normal(scale=1e-3, size=(15, d))
    relab_src, relab_dst = 250 + rng.choice(50, 3, replace=False), 340 + np.arange(3)
    x[relab_dst], lab[relab_dst] = x[relab_src], (lab[relab_src] + 1) % 4
    ev_exact, ev_near = np.arange(7), np.arange(7, 16)
    x[400:407] = ev[ev_exact]
    x[410:419] = ev[ev_near] + rng.normal(scale=1e-3, size=(9, d))
    cols = [f"f{i}" for i in range(d)]
    train = pa.table({**{c: x[:, i] for i, c in enumerate(cols)}, "label": lab})
    evaluation = pa.table({**{c: ev[:, i] for i, c in enumerate(cols)}, "label": ye})
    return train, evaluation, cols


def test_counts_match_what_was_planted():
    train, evaluation, cols = planted()
    rep = leakage_report(train, label_col="label", feature_cols=cols, evaluation={"eval": evaluation})
    internal = rep["internal"]
    assert internal["exact"]["n_duplicate_rows"] == 12 and internal["exact"]["n_groups"] == 12
    assert internal["conflicting_labels"]["n_groups"] == 3
    near = set(internal["near_features"]["row_ids"])
    # each near copy and its source find each other: 15 pairs, 30 rows
    assert len(near) == 30 and near >= set(range(320, 335))
    ev = rep["evaluation"]["eval"]
    assert ev["exact_train_rows"] == 7 and ev["exact_eval_rows"] == 7
    assert ev["near_eval_rows"] == 9
    assert rep["totals"] == {"eval_exact_train_rows": 7, "eval_exact_eval_rows": 7, "eval_near_eval_rows": 9}
    assert ev["examples_exact"][0] == {"row": 400, "eval_row": 0}


def test_streamed_exact_part_equals_the_whole_table_one():
    """A table too large to hold gets the exact part batch by batch (here 37 rows a batch):
    the same duplicates, relabelled copies and evaluation copies as the whole-table check;
    near duplicates not searched, with why, never reported as zero."""
    train, evaluation, cols = planted()
    whole = leakage_report(train, label_col="label", feature_cols=cols,
                           evaluation={"eval": evaluation, "other": train.select(cols[:3])})
    streamed = exact_leakage_report(train.to_batches(max_chunksize=37), label_col="label", feature_cols=cols,
                                    evaluation={"eval": evaluation, "other": train.select(cols[:3])},
                                    near_reason="too large")
    assert streamed["n_rows"] == 600 and streamed["near_not_run"] == "too large"
    for part in ("exact", "conflicting_labels"):
        assert streamed["internal"][part] == whole["internal"][part]
    assert streamed["internal"]["near_features"] is None and "not searched" in streamed["method"]["near"]
    ev, ev_whole = streamed["evaluation"]["eval"], whole["evaluation"]["eval"]
    assert {k: ev[k] for k in ("exact_train_rows", "exact_eval_rows", "examples_exact")} == \
        {k: ev_whole[k] for k in ("exact_train_rows", "exact_eval_rows", "examples_exact")}
    assert ev["near_eval_rows"] is None and "lacks feature column(s)" in streamed["evaluation"]["other"]["note"]
    assert streamed["evaluation"]["other"] == whole["evaluation"]["other"]
    assert streamed["totals"] == {"eval_exact_train_rows": 7, "eval_exact_eval_rows": 7, "eval_near_eval_rows": None}
    from dataward.reports.check_sections import leakage_section

    section = leakage_section({"status": "done", "leakage": {"status": "done", **streamed}})
    assert "near duplicates were not searched (too large)" in section["sentence"]
    assert "12 row(s) repeat another row exactly" in section["sentence"]
    assert "near copies not searched" in section["sentence"] and section["near"]["not_run"] == "too large"


def test_near_duplicate_threshold_is_scale_free():
    train, _, cols = planted()
    x = np.column_stack([train.column(c).to_numpy() for c in cols])
    a = near_duplicates(x, exclude_exact=row_hashes(train, cols))
    b = near_duplicates(x * 1000.0, exclude_exact=row_hashes(train, cols))
    assert a["row_ids"] == b["row_ids"]


def test_blocked_search_equals_brute_force_and_matches_are_found():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(257, 5)).astype(np.float32)
    nb = nearest_neighbours(x, block=16)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = u @ u.T
    np.fill_diagonal(s, -np.inf)
    assert np.array_equal(nb.index, s.argmax(1))
    assert nb.similarity == pytest.approx(s.max(1), abs=1e-5)
    h = row_hashes(pa.table({"x": [1, 2, 3, 2]}))
    assert exact_duplicates(h)["examples"] == [[1, 3]]
    ids, other = exact_matches(h, row_hashes(pa.table({"x": [9, 3]})))
    assert ids.tolist() == [2] and other.tolist() == [1]
