"""Validation reads Arrow IPC versions (Feather, the stream files datasets.save_to_disk
writes) like Parquet: same outcomes, across batch and file boundaries."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from checks.validation import validate_files

from ._helpers import exp, write_suite_json


def test_arrow_stream_and_feather_files_validate(project, tmp_path):
    x = np.arange(300, dtype=np.float64)
    x[250] = 1e6  # one value out of range, in the second file
    table = pa.table({"x": x, "label": pa.array([f"c{i % 3}" for i in range(300)])})
    stream = tmp_path / "data-00000-of-00002.arrow"
    with pa.OSFile(str(stream), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        for b in table.slice(0, 200).to_batches(max_chunksize=64):
            w.write_batch(b)
    feather.write_feather(table.slice(200), tmp_path / "data-00001-of-00002.feather", chunksize=30)
    write_suite_json(project, "arrowy", [
        exp("expect_column_values_to_be_between", column="x", min_value=0, max_value=1000),
        exp("expect_column_values_to_be_in_set", column="label", value_set=["c0", "c1", "c2"]),
        exp("expect_table_row_count_to_equal", value=300),
    ])
    out = validate_files([stream, tmp_path / "data-00001-of-00002.feather"], "arrowy",
                         project_root=project, batch_rows=50)
    assert out.n_rows == 300 and out.n_batches == 6
    assert [o.expectation_type for o in out.failed] == ["expect_column_values_to_be_between"]
    assert out.failed[0].observed_value["unexpected_count"] == 1
