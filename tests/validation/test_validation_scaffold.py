"""Scaffolding a suite from a version, then validating versions against it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from checks.validation import ValidationInputError, load_suite, scaffold_suite, validate_files

from ._helpers import digits_frame


def test_scaffold_round_trip(project, tmp_path):
    df = digits_frame(400).iloc[:, [0, 1, 2, 64]].copy()
    df["name"] = [f"n{i}" for i in range(len(df))]
    df["opt"] = np.where(np.arange(len(df)) % 4 == 0, np.nan, 1.5)
    df.iloc[:200].to_parquet(tmp_path / "a.parquet")
    df.iloc[200:].to_csv(tmp_path / "b.csv", index=False)
    files = [tmp_path / "a.parquet", tmp_path / "b.csv"]
    path = scaffold_suite(files, "scaffolded", project_root=project, label_col="label")
    assert path == project / "gx" / "expectations" / "scaffolded.json"
    suite = json.loads(path.read_text())
    by = {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in suite["expectations"]}
    assert by["expect_table_columns_to_match_ordered_list", None]["column_list"] == list(df.columns)
    assert by["expect_column_values_to_be_in_set", "label"]["value_set"] == list(range(10))
    assert by["expect_column_values_to_be_between", "p0"]["min_value"] == df["p0"].min()
    assert by["expect_column_values_to_be_between", "p0"]["max_value"] == df["p0"].max()
    assert by["expect_column_values_to_be_of_type", "name"]["type_"] == "str"
    assert by["expect_column_values_to_not_be_null", "opt"]["mostly"] == 0.75
    assert suite["meta"]["dataward"]["n_rows"] == 400

    out = validate_files(files, "scaffolded", project_root=project, batch_rows=150)
    assert out.success, [(o.expectation_type, o.column, o.observed_value) for o in out.failed]

    bad = df.copy()
    bad.loc[3, "label"] = 12
    bad.loc[4, "p1"] = 17
    bad.to_parquet(tmp_path / "bad.parquet")
    out = validate_files([tmp_path / "bad.parquet"], "scaffolded", project_root=project)
    assert {(o.expectation_type, o.column) for o in out.failed} == {
        ("expect_column_values_to_be_in_set", "label"), ("expect_column_values_to_be_between", "p1")}

    with pytest.raises(ValidationInputError, match="already exists"):
        scaffold_suite(files, "scaffolded", project_root=project)
    scaffold_suite([tmp_path / "a.parquet"], "scaffolded", project_root=project, overwrite=True)
    assert load_suite("scaffolded", project_root=project)["meta"]["dataward"]["n_rows"] == 200


def test_scaffold_refuses_bad_kind_and_label(project, tmp_path):
    digits_frame(20).to_parquet(tmp_path / "d.parquet")
    with pytest.raises(ValidationInputError, match="not a valid suite name"):
        scaffold_suite([tmp_path / "d.parquet"], "../escape", project_root=project)
    with pytest.raises(ValidationInputError, match="label column 'target'"):
        scaffold_suite([tmp_path / "d.parquet"], "x", project_root=project, label_col="target")


def test_package_import_stays_light():
    code = ("import sys, checks.validation; "
            "bad = [m for m in ('great_expectations', 'pandas', 'pyarrow', 'airflow') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _awkward_types_table(n: int = 120):
    """One column of each Arrow type whose pandas form loses what the schema says."""
    import datetime
    import decimal

    import pandas as pd
    import pyarrow as pa

    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    day = datetime.date(2020, 1, 1)
    return pa.table({
        "nullable_int": pa.array([None if i % 5 == 0 else i for i in range(n)], pa.int32()),
        "big_int": pa.array(np.where(np.arange(n) % 3 == 0, np.iinfo(np.int64).max, 1), pa.int64()),
        "date": pa.array([day + datetime.timedelta(days=i) for i in range(n)]),
        "when": pa.array([datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(hours=i)
                          for i in range(n)], pa.timestamp("us", tz="UTC")),
        "elapsed": pa.array([datetime.timedelta(seconds=i) for i in range(n)]),
        "price": pa.array([decimal.Decimal(f"{v:.2f}") for v in x]),
        "half": pa.array(x.astype(np.float16)),
        "blob": pa.array([bytes([i % 256]) * 3 for i in range(n)]),
        "tags": pa.array([[i, 1] for i in range(n)]),
        "point": pa.array([{"p": float(i), "q": "z"} for i in range(n)]),
        "kind": pa.Array.from_pandas(pd.Categorical([f"k{i % 4}" for i in range(n)])),
        "label": pa.array(np.arange(n) % 3),
    })


@pytest.mark.parametrize("path", ["checkpoint", "batches"])
def test_a_suite_drafted_from_a_table_passes_on_that_table(project, tmp_path, path):
    """Nullable ints, dates, time zones, durations, decimals, half floats, binary, lists,
    structs and categoricals: the drafted suite holds on its own data, through a GX
    Checkpoint (one batch: pandas) and through the batch-merging path alike."""
    import pyarrow.parquet as pq

    pq.write_table(_awkward_types_table(), tmp_path / "t.parquet")
    files = [tmp_path / "t.parquet"]
    scaffold_suite(files, "awkward", project_root=project, label_col="label")
    kw = {"gx_root": tmp_path / "runtime"} if path == "checkpoint" else {"batch_rows": 50}
    out = validate_files(files, "awkward", project_root=project, **kw)
    assert out.n_batches == (1 if path == "checkpoint" else 3)
    assert out.success, [(o.expectation_type, o.column, o.observed_value) for o in out.failed]
    types = {o.column: o for o in out.outcomes if o.expectation_type == "expect_column_values_to_be_of_type"}
    assert types["nullable_int"].observed_value == "int32"  # not pandas' float64
    assert types["date"].observed_value == "date32[day]"
