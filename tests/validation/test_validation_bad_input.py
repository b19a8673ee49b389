"""Bad input never passes: each case is a clear error or a failed expectation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from checks.validation import (
    SuiteNotFound,
    ValidationInputError,
    load_suite,
    validate_files,
)

from ._helpers import exp, write_suite_json

SIMPLE = [
    exp("expect_column_values_to_not_be_null", column="a"),
    exp("expect_column_values_to_be_between", column="a", min_value=0, max_value=10),
    exp("expect_column_values_to_be_of_type", column="a", type_="int64"),
]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "ok.parquet"
    pd.DataFrame({"a": [1, 2, 3], "s": ["x", "y", "z"]}).to_parquet(path)
    return path


def test_kind_without_suite_is_not_found(project, data):
    with pytest.raises(SuiteNotFound) as ei:
        validate_files([data], "no-such-kind", project_root=project)
    msg = str(ei.value)
    assert "no-such-kind" in msg and str(project / "gx" / "expectations") in msg


def test_suite_that_fails_to_parse(project, data):
    path = project / "gx" / "expectations" / "broken.json"
    path.write_text('{"name": "broken", "expectations": [ {"type": ')
    with pytest.raises(ValidationInputError, match=r"not valid JSON \(line 1"):
        validate_files([data], "broken", project_root=project)


def test_suite_with_zero_expectations_is_an_error(project, data):
    write_suite_json(project, "empty", [])
    with pytest.raises(ValidationInputError, match="zero expectations"):
        load_suite("empty", project_root=project)
    with pytest.raises(ValidationInputError, match="zero expectations"):
        validate_files([data], "empty", project_root=project)


def test_unknown_expectation_type_and_bad_kwargs(project, data):
    write_suite_json(project, "unknown", [exp("expect_column_values_to_be_purple", column="a")])
    with pytest.raises(ValidationInputError, match="expect_column_values_to_be_purple|cannot be loaded"):
        validate_files([data], "unknown", project_root=project)


def test_whole_column_expectation_without_exact_batched_form_is_refused(project, data):
    write_suite_json(project, "median",
                     [exp("expect_column_median_to_be_between", column="a", min_value=0, max_value=5)])
    with pytest.raises(ValidationInputError, match="no exact cross-batch"):
        validate_files([data], "median", project_root=project)


def test_columns_missing_from_data_fail_their_expectations(project, data):
    write_suite_json(project, "missing", SIMPLE + [
        exp("expect_column_values_to_not_be_null", column="gone"),
        exp("expect_column_max_to_be_between", column="gone2", max_value=3),
        exp("expect_column_to_exist", column="gone3"),
    ])
    out = validate_files([data], "missing", project_root=project)
    assert not out.success
    failed = [(o.expectation_type, o.column) for o in out.failed]
    assert failed == [("expect_column_values_to_not_be_null", "gone"),
                      ("expect_column_max_to_be_between", "gone2"),
                      ("expect_column_to_exist", "gone3")]
    assert "not in the data" in out.failed[0].details["error"]
    assert out.failed[0].observed_value is None


def test_non_utf8_csv_is_refused(project, tmp_path):
    write_suite_json(project, "k", SIMPLE)
    path = tmp_path / "latin1.csv"
    path.write_bytes("a,s\n1,ok\n2,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValidationInputError, match=r"not valid UTF-8.*line 3"):
        validate_files([path], "k", project_root=project)


def test_non_utf8_jsonl_is_refused(project, tmp_path):
    write_suite_json(project, "k", SIMPLE)
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"a": 1, "s": "ok"}\n{"a": 2, "s": "caf\xe9"}\n')
    with pytest.raises(ValidationInputError, match="not valid UTF-8"):
        validate_files([path], "k", project_root=project)


def test_non_utf8_parquet_strings_are_refused(project, tmp_path):
    write_suite_json(project, "k", SIMPLE + [exp("expect_column_values_to_not_be_null", column="s")])
    bad = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(np.array([0, 2, 6], dtype=np.int32).tobytes()),
                                                 pa.py_buffer(b"okcaf\xe9")])
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"a": pa.array([1, 2]), "s": bad}), path)
    with pytest.raises(ValidationInputError, match="not valid UTF-8"):
        validate_files([path], "k", project_root=project)


def test_mixed_types_in_one_csv_column_fail_the_type_expectation(project, tmp_path):
    write_suite_json(project, "k", SIMPLE)
    path = tmp_path / "mixed.csv"
    path.write_text("a,s\n1,x\n2,y\nthree,z\n")
    out = validate_files([path], "k", project_root=project)
    assert not out.success
    kinds = {o.expectation_type for o in out.failed}
    assert "expect_column_values_to_be_of_type" in kinds
    t = next(o for o in out.failed if o.expectation_type == "expect_column_values_to_be_of_type")
    assert t.observed_value == "str"


def test_mixed_types_in_jsonl_are_an_error(project, tmp_path):
    write_suite_json(project, "k", SIMPLE)
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"a": 1, "s": "x"}\n{"a": "two", "s": "y"}\n')
    with pytest.raises(ValidationInputError, match="mixed types"):
        validate_files([path], "k", project_root=project)


def test_mixed_types_across_files_are_an_error(project, tmp_path):
    write_suite_json(project, "k", SIMPLE)
    pd.DataFrame({"a": [1, 2], "s": ["x", "y"]}).to_parquet(tmp_path / "p1.parquet")
    pd.DataFrame({"a": ["one", "two"], "s": ["x", "y"]}).to_parquet(tmp_path / "p2.parquet")
    with pytest.raises(ValidationInputError, match=r"column 'a' has mixed types across the files"):
        validate_files([tmp_path / "p1.parquet", tmp_path / "p2.parquet"], "k", project_root=project)


def test_mixed_types_late_in_a_large_csv_are_an_error(project, tmp_path):
    # the type is inferred from the first block; a later block that disagrees is refused
    write_suite_json(project, "k", SIMPLE)
    path = tmp_path / "late.csv"
    with open(path, "w") as f:
        f.write("a,s\n")
        line = "1,xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
        f.write(line * (17 * (1 << 20) // len(line)))
        f.write("oops,x\n")
    with pytest.raises(ValidationInputError, match="mixed types"):
        validate_files([path], "k", project_root=project)


def test_files_that_disagree_on_columns_are_an_error(project, tmp_path):
    write_suite_json(project, "k", SIMPLE)
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "p1.parquet")
    pd.DataFrame({"a": [1], "b": [2]}).to_parquet(tmp_path / "p2.parquet")
    with pytest.raises(ValidationInputError, match="disagree on columns"):
        validate_files([tmp_path / "p1.parquet", tmp_path / "p2.parquet"], "k", project_root=project)


def test_unknown_format_and_missing_file(project, tmp_path):
    write_suite_json(project, "k", SIMPLE)
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(ValidationInputError, match="unknown format"):
        validate_files([tmp_path / "x.xlsx"], "k", project_root=project)
    with pytest.raises(ValidationInputError, match="does not exist"):
        validate_files([tmp_path / "nope.parquet"], "k", project_root=project)


def test_empty_dataset_fails_row_count(project, tmp_path):
    write_suite_json(project, "k", SIMPLE + [exp("expect_table_row_count_to_be_between", min_value=1)])
    pq.write_table(pa.table({"a": pa.array([], pa.int64()), "s": pa.array([], pa.string())}), tmp_path / "e.parquet")
    out = validate_files([tmp_path / "e.parquet"], "k", project_root=project)
    assert not out.success and out.n_rows == 0
    assert [o.expectation_type for o in out.failed] == ["expect_table_row_count_to_be_between"]
