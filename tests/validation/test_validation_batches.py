"""Whole-column expectations stay exact when the data is split into batches and files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from checks.validation import validate_files

from ._helpers import exp, write_suite_json


def _by_type(out):
    return {(o.expectation_type, o.column): o for o in out.outcomes}


def test_duplicate_split_across_batches_fails_uniqueness(project, tmp_path):
    ids = np.arange(1000)
    ids[900] = 5                      # duplicate of row 5, in another batch
    names = np.array([f"id-{i}" for i in range(1000)], dtype=object)
    names[999] = "id-0"               # text duplicate: hashed, then confirmed on a second pass
    pd.DataFrame({"id": ids, "name": names, "ok": np.arange(1000)}).to_parquet(tmp_path / "d.parquet")
    write_suite_json(project, "uniq", [
        exp("expect_column_values_to_be_unique", column="id"),
        exp("expect_column_values_to_be_unique", column="name"),
        exp("expect_column_values_to_be_unique", column="ok"),
        exp("expect_column_unique_value_count_to_be_between", column="name", min_value=999, max_value=999),
    ])
    out = validate_files([tmp_path / "d.parquet"], "uniq", project_root=project, batch_rows=100)
    assert out.n_batches == 10
    r = _by_type(out)
    assert not r["expect_column_values_to_be_unique", "id"].success
    assert r["expect_column_values_to_be_unique", "id"].observed_value["unexpected_count"] == 2
    assert r["expect_column_values_to_be_unique", "id"].observed_value["partial_unexpected_list"] == [5]
    assert not r["expect_column_values_to_be_unique", "name"].success
    assert r["expect_column_values_to_be_unique", "name"].observed_value["partial_unexpected_list"] == ["id-0"]
    assert r["expect_column_values_to_be_unique", "ok"].success
    assert r["expect_column_unique_value_count_to_be_between", "name"].success
    assert [o.column for o in out.failed] == ["id", "name"]


def test_stats_across_batches_and_files_match_whole_column(project, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(10, 3, 2500)
    x[1234] = 100.0                   # the max sits in one middle batch
    x[7] = -50.0
    label = rng.integers(0, 4, 2500)
    label[2499] = 7                   # a new class only in the last file
    df = pd.DataFrame({"x": x, "label": label})
    df.iloc[:1000].to_parquet(tmp_path / "a.parquet")
    df.iloc[1000:1700].to_csv(tmp_path / "b.csv", index=False)
    with open(tmp_path / "c.jsonl", "w") as f:  # json writes floats that round-trip exactly
        for xi, li in zip(x[1700:], label[1700:]):
            f.write(json.dumps({"x": float(xi), "label": int(li)}) + "\n")
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    write_suite_json(project, "stats", [
        exp("expect_table_row_count_to_equal", value=2500),
        exp("expect_column_min_to_be_between", column="x", min_value=-50, max_value=-50),
        exp("expect_column_max_to_be_between", column="x", min_value=99.9, max_value=100.1),
        exp("expect_column_mean_to_be_between", column="x", min_value=mean - 1e-9, max_value=mean + 1e-9),
        exp("expect_column_stdev_to_be_between", column="x", min_value=sd - 1e-9, max_value=sd + 1e-9),
        exp("expect_column_sum_to_be_between", column="x", min_value=x.sum() - 1e-6, max_value=x.sum() + 1e-6),
        exp("expect_column_distinct_values_to_be_in_set", column="label", value_set=[0, 1, 2, 3]),
        exp("expect_column_distinct_values_to_contain_set", column="label", value_set=[0, 1, 2, 3]),
        exp("expect_table_row_count_to_be_between", min_value=2501, max_value=None),
    ])
    out = validate_files([tmp_path / "a.parquet", tmp_path / "b.csv", tmp_path / "c.jsonl"], "stats",
                         project_root=project, batch_rows=300)
    assert out.n_rows == 2500 and out.n_batches == 9
    r = _by_type(out)
    assert r["expect_table_row_count_to_equal", None].observed_value == 2500
    assert r["expect_column_min_to_be_between", "x"].observed_value == -50
    assert r["expect_column_max_to_be_between", "x"].observed_value == 100
    assert r["expect_column_mean_to_be_between", "x"].observed_value == pytest.approx(mean, abs=1e-12)
    assert r["expect_column_stdev_to_be_between", "x"].observed_value == pytest.approx(sd, rel=1e-12)
    assert r["expect_column_distinct_values_to_be_in_set", "label"].observed_value == [0, 1, 2, 3, 7]
    assert [(o.expectation_type, o.column) for o in out.failed] == [
        ("expect_column_distinct_values_to_be_in_set", "label"),
        ("expect_table_row_count_to_be_between", None),
    ]
    assert r["expect_column_distinct_values_to_be_in_set", "label"].details["unexpected_values"] == [7]


def test_mostly_is_judged_over_all_batches(project, tmp_path):
    # batch 1 holds 3 nulls in 10 rows (fails mostly=0.9 alone); overall 3 in 100 passes
    v = np.arange(100, dtype="float64")
    v[[0, 1, 2]] = np.nan
    pq.write_table(pa.table({"v": v}), tmp_path / "m.parquet")
    write_suite_json(project, "mostly", [
        exp("expect_column_values_to_not_be_null", column="v", mostly=0.9),
        exp("expect_column_values_to_be_between", column="v", min_value=0, max_value=50, mostly=0.6),
    ])
    out = validate_files([tmp_path / "m.parquet"], "mostly", project_root=project, batch_rows=10)
    r = _by_type(out)
    nn = r["expect_column_values_to_not_be_null", "v"]
    assert nn.success and nn.observed_value["unexpected_count"] == 3 and nn.details["failed_batches"] == 1
    bt = r["expect_column_values_to_be_between", "v"]
    assert not bt.success  # 49 of 97 non-null values above 50
    assert bt.observed_value["unexpected_count"] == 49
