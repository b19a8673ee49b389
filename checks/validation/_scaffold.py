"""Draft a suite from an ingested dataset version, for a person to review and commit."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa

from .._types import is_ordered_number
from . import _suites
from ._aggregates import ColumnStats
from ._answers import type_names
from ._outcome import ValidationInputError
from ._reading import DatasetReader

MAX_LABELS = 1000


def scaffold_suite(paths: list[str | Path], kind: str, *, project_root: str | Path,
                   label_col: str | None = None, overwrite: bool = False,
                   batch_rows: int = 1_000_000) -> Path:
    _suites._check_kind(kind)
    target = _suites.suite_path(kind, project_root)
    if target.exists() and not overwrite:
        raise ValidationInputError(
            f"suite {kind!r} already exists at {target}; pass overwrite=True to replace it"
        )
    reader = DatasetReader(paths)
    schema = reader.schema
    names = reader.column_names
    if label_col is not None and label_col not in names:
        raise ValidationInputError(f"label column {label_col!r} is not in the data; the data has columns {names}")

    stats = {}
    for f in schema:
        need = {"minmax"} if is_ordered_number(f.type) else set()
        if f.name == label_col:
            need.add("distinct")
        stats[f.name] = ColumnStats(f.name, f.type, need)
    n_rows = 0
    for table in reader.iter_tables(batch_rows):
        for name, st in stats.items():
            st.update(table.column(name))
        n_rows += table.num_rows
    if n_rows == 0:
        raise ValidationInputError("cannot scaffold a suite from an empty dataset (0 rows)")

    exps: list[dict] = [
        {"type": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": names}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": None}},
    ]
    for f in schema:
        st = stats[f.name]
        if pa.types.is_null(f.type):
            continue  # every value missing: nothing to learn; the column list still pins it
        exps.append({"type": "expect_column_values_to_be_of_type",
                     "kwargs": {"column": f.name, "type_": type_names(f.type)[0]}})
        if st.n == st.n_rows:
            exps.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": f.name}})
        else:
            mostly = math.floor(100 * st.n / st.n_rows) / 100
            if mostly > 0:
                exps.append({"type": "expect_column_values_to_not_be_null",
                             "kwargs": {"column": f.name, "mostly": mostly}})
        if f.name == label_col:
            labels = st.distinct_values()
            if labels is None or len(labels) > MAX_LABELS:
                raise ValidationInputError(
                    f"label column {label_col!r} has more than {MAX_LABELS} distinct values; is it a label?"
                )
            exps.append({"type": "expect_column_values_to_be_in_set",
                         "kwargs": {"column": f.name, "value_set": labels}})
            exps.append({"type": "expect_column_distinct_values_to_contain_set",
                         "kwargs": {"column": f.name, "value_set": labels}})
        elif "minmax" in st.need and st.min is not None:
            lo, hi = _outward(st.min, st.max)
            exps.append({"type": "expect_column_values_to_be_between",
                         "kwargs": {"column": f.name, "min_value": lo, "max_value": hi}})
    meta = {
        "dataward": {
            "status": "scaffolded: review every expectation before committing",
            "scaffolded_from": [Path(p).name for p in paths],
            "n_rows": n_rows,
            "label_col": label_col,
            "scaffolded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
    }
    return _suites.write_suite(kind, exps, meta, project_root=project_root, overwrite=overwrite)


def _outward(lo, hi):
    """The bounds as JSON numbers that still hold every value: a decimal bound becomes the
    nearest float on its outer side (the float nearest it may lie inside the range, and
    the column's own extreme would then fail the suite drafted from it)."""
    import decimal

    if isinstance(lo, decimal.Decimal):
        f = float(lo)
        lo = f if decimal.Decimal(f) <= lo else math.nextafter(f, -math.inf)
    if isinstance(hi, decimal.Decimal):
        f = float(hi)
        hi = f if decimal.Decimal(f) >= hi else math.nextafter(f, math.inf)
    return lo, hi
