"""Passing and failing versions against the committed tabular-digits suite (tmp copy)."""

from __future__ import annotations

import json

import numpy as np

from checks.validation import ValidationOutcome, load_suite, validate_files

from ._helpers import digits_frame


def test_committed_digits_suite_is_reviewed_and_loads(digits_project):
    suite = load_suite("tabular-digits", project_root=digits_project)
    types = [e["type"] for e in suite["expectations"]]
    assert suite["name"] == "tabular-digits"
    assert suite["meta"]["dataward"]["status"] == "reviewed"
    assert types.count("expect_column_values_to_be_between") == 64
    assert "expect_column_values_to_be_in_set" in types


def test_passing_version_with_data_docs(digits_project, tmp_path):
    df = digits_frame(600)
    df.iloc[:350].to_parquet(tmp_path / "part-0.parquet")
    df.iloc[350:].to_csv(tmp_path / "part-1.csv", index=False)
    out = validate_files([tmp_path / "part-0.parquet", tmp_path / "part-1.csv"], "tabular-digits",
                         project_root=digits_project, data_docs_dir=tmp_path / "docs", run_name="pass-run")
    assert isinstance(out, ValidationOutcome)
    assert out.success, [(o.expectation_type, o.column, o.observed_value) for o in out.failed]
    assert out.failed == []
    assert out.n_rows == 600 and out.n_batches == 1
    assert len(out.outcomes) == len(load_suite("tabular-digits", project_root=digits_project)["expectations"])
    assert out.data_docs_path and out.data_docs_path.endswith(".html")
    html = open(out.data_docs_path, encoding="utf-8").read()
    assert "tabular-digits" in html and "pass-run" in html
    assert (tmp_path / "docs" / "index.html").is_file()
    json.dumps(out.to_dict())  # storable as a check result


def test_failing_version_lists_failures_with_observed_values(digits_project, tmp_path):
    df = digits_frame(600).astype({"p5": "float64"})
    df.loc[10, "p3"] = 99            # out of range
    df.loc[20, "p3"] = -1
    df.loc[330, "label"] = 11         # unexpected label, in the second batch
    df.loc[40, "p5"] = np.nan         # null
    df.to_parquet(tmp_path / "bad.parquet")
    out = validate_files([tmp_path / "bad.parquet"], "tabular-digits", project_root=digits_project,
                         batch_rows=300, data_docs_dir=tmp_path / "docs")
    assert not out.success
    assert out.n_batches == 2
    failed = {(o.expectation_type, o.column): o for o in out.failed}
    assert set(failed) == {
        ("expect_column_values_to_be_between", "p3"),
        ("expect_column_values_to_be_in_set", "label"),
        ("expect_column_values_to_not_be_null", "p5"),
    }
    between = failed["expect_column_values_to_be_between", "p3"]
    assert between.observed_value["unexpected_count"] == 2
    assert sorted(between.observed_value["partial_unexpected_list"]) == [-1, 99]
    assert sorted(between.details["partial_unexpected_index_list"]) == [10, 20]  # global row ids
    labels = failed["expect_column_values_to_be_in_set", "label"]
    assert labels.observed_value["partial_unexpected_list"] == [11]
    assert labels.details["partial_unexpected_index_list"] == [330]
    assert failed["expect_column_values_to_not_be_null", "p5"].observed_value["unexpected_count"] == 1
    d = out.to_dict()
    json.dumps(d)
    assert {f["column"] for f in d["failed"]} == {"p3", "label", "p5"}
    assert "Unsuccessful" in open(out.data_docs_path, encoding="utf-8").read() or not out.success


def test_float_pixels_pass_the_reviewed_suite(digits_project, tmp_path):
    # scikit-learn ships digits as float64; the reviewed suite accepts either numeric type
    df = digits_frame(200).astype({f"p{i}": "float64" for i in range(64)})
    df.to_parquet(tmp_path / "f.parquet")
    out = validate_files([tmp_path / "f.parquet"], "tabular-digits", project_root=digits_project)
    assert out.success, [(o.expectation_type, o.column) for o in out.failed]
