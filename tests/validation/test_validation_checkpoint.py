"""One batch: a GX ValidationDefinition and Checkpoint (UpdateDataDocsAction) in a file
context, results in GX's own store. Several batches: the merging path, which refuses
row_condition rather than ignoring it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from checks.validation import ValidationInputError, validate_files

from ._helpers import exp, write_suite_json

CONDITIONED = [
    exp("expect_column_values_to_be_between", column="x", min_value=0, max_value=10,
        row_condition='kind=="a"', condition_parser="pandas"),
    exp("expect_column_values_to_not_be_null", column="x"),
    exp("expect_column_median_to_be_between", column="x", min_value=0, max_value=100),
]


@pytest.fixture
def data(tmp_path):
    # rows of kind "b" are out of range on purpose: only the row_condition spares them
    df = pd.DataFrame({"kind": ["a", "b"] * 50, "x": [i % 10 if i % 2 == 0 else 50 for i in range(100)]})
    df.to_parquet(tmp_path / "d.parquet")
    return tmp_path / "d.parquet"


def test_one_batch_runs_a_checkpoint_in_the_file_context(project, tmp_path, data):
    write_suite_json(project, "cond", CONDITIONED)
    gx_root, docs = tmp_path / "runtime", tmp_path / "docs"
    out = validate_files([data], "cond", project_root=project, gx_root=gx_root, data_docs_dir=docs,
                         run_name="cond@1")
    assert out.success and out.n_batches == 1 and out.n_rows == 100
    # the row_condition was applied by GX (the 'b' rows are out of range)
    between = out.outcomes[0]
    assert between.expectation_type == "expect_column_values_to_be_between"
    assert between.observed_value["element_count"] == 50
    # a whole-column expectation the merging path cannot compute exactly runs here
    assert out.outcomes[2].expectation_type == "expect_column_median_to_be_between"
    # GX's own objects and stores in the file context
    gx_dir = gx_root / "gx"
    assert json.loads((gx_dir / "checkpoints" / "dataward-cond.json").read_text())["actions"][0]["type"] \
        == "update_data_docs"
    assert (gx_dir / "validation_definitions" / "cond.json").is_file()
    stored = list((gx_dir / "uncommitted" / "validations" / "cond").rglob("*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["success"] is True
    # Data Docs built by GX's UpdateDataDocsAction
    assert out.data_docs_path.endswith(".html") and "cond@1" in out.data_docs_path
    assert (docs / "index.html").is_file()
    # a second run of the same kind reuses the objects and adds one stored result
    again = validate_files([data], "cond", project_root=project, gx_root=gx_root, data_docs_dir=docs,
                           run_name="cond@2")
    assert again.success
    assert len(list((gx_dir / "uncommitted" / "validations" / "cond").rglob("*.json"))) == 2


def test_failing_expectation_through_the_checkpoint(project, tmp_path, data):
    write_suite_json(project, "strict", [exp("expect_column_values_to_be_between", column="x",
                                             min_value=0, max_value=10)])
    out = validate_files([data], "strict", project_root=project, gx_root=tmp_path / "rt")
    assert not out.success and out.outcomes[0].observed_value["unexpected_count"] == 50
    assert out.data_docs_path is None


def test_several_batches_refuse_row_condition(project, tmp_path, data):
    write_suite_json(project, "cond", CONDITIONED[:2])
    with pytest.raises(ValidationInputError, match="row_condition"):
        validate_files([data], "cond", project_root=project, gx_root=tmp_path / "rt", batch_rows=30)
    with pytest.raises(ValidationInputError, match="row_condition"):  # no GX project: batched too
        validate_files([data], "cond", project_root=project)
