"""Verdicts answered without GX: schema expectations from the Arrow schema, whole-column
expectations from the column aggregates (:mod:`._aggregates`) of every batch."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from .._json import jsonable_tree
from .._types import is_numeric
from ._aggregates import PARTIAL, ColumnStats
from ._outcome import ExpectationOutcome, ValidationInputError
from ._plan import PlannedExpectation


def expectation_outcome(p: PlannedExpectation, success: bool, observed: Any,
                        details: dict | None = None) -> ExpectationOutcome:
    return ExpectationOutcome(
        expectation_type=p.type,
        column=p.column,
        kwargs=jsonable_tree(p.kwargs),
        success=bool(success),
        observed_value=jsonable_tree(observed),
        details=jsonable_tree(details or {}),
    )


# --- schema expectations ------------------------------------------------------------------

def type_names(t: pa.DataType) -> tuple[str, set[str]]:
    """(the pandas/numpy-style name shown as observed value, every name that matches it)."""
    s = str(t)
    if pa.types.is_integer(t):
        return s, {s}
    if pa.types.is_floating(t):
        np_name = {"halffloat": "float16", "float": "float32", "double": "float64"}[s]
        return np_name, {np_name, s}
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "str", {"str", "string", "object", "utf8", "large_string", s}
    if pa.types.is_boolean(t):
        return "bool", {"bool", "boolean"}
    if pa.types.is_timestamp(t):
        name = f"datetime64[{t.unit}]" if t.tz is None else f"datetime64[{t.unit}, {t.tz}]"
        return name, {name, s, "datetime64", "timestamp"}
    if pa.types.is_date(t):
        return s, {s, "date", "datetime64[d]"}
    return s, {s}


def missing_columns(p: PlannedExpectation, names: list[str]) -> ExpectationOutcome | None:
    """The failed outcome of an expectation on columns the data lacks, else None."""
    missing = [c for c in p.columns if c not in names] if p.type != "expect_column_to_exist" else []
    if not missing:
        return None
    return expectation_outcome(p, False, None, {
        "error": f"column(s) {missing} named by the suite are not in the data; the data has columns {names}"})


def eval_schema(p: PlannedExpectation, schema: pa.Schema) -> ExpectationOutcome:
    """A column or type expectation answered from the Arrow schema (type names:
    :func:`type_names`): on the batch path and the Checkpoint path alike, since a pandas
    frame has lost what the schema says (an int column with nulls is float64 there, a
    date, decimal, struct or binary column is ``object``)."""
    missing = missing_columns(p, list(schema.names))
    if missing is not None:
        return missing
    names = list(schema.names)
    kw = p.kwargs
    if p.type == "expect_column_to_exist":
        col = kw.get("column")
        idx = names.index(col) if col in names else None
        want = kw.get("column_index")
        ok = idx is not None and (want is None or want == idx)
        return expectation_outcome(p, ok, idx, {"columns": names})
    if p.type == "expect_table_columns_to_match_ordered_list":
        want = list(kw.get("column_list") or [])
        return expectation_outcome(p, names == want, names, {
            "missing": [c for c in want if c not in names],
            "unexpected": [c for c in names if c not in want]})
    if p.type == "expect_table_columns_to_match_set":
        want = set(kw.get("column_set") or [])
        exact = kw.get("exact_match", True)
        ok = set(names) == want if exact in (True, None) else want <= set(names)
        return expectation_outcome(p, ok, names, {
            "missing": sorted(want - set(names)), "unexpected": sorted(set(names) - want)})
    if p.type == "expect_table_column_count_to_equal":
        return expectation_outcome(p, len(names) == kw.get("value"), len(names))
    if p.type == "expect_table_column_count_to_be_between":
        return _between_outcome(p, len(names))
    col = kw["column"]
    observed, aliases = type_names(schema.field(col).type)
    if p.type == "expect_column_values_to_be_of_type":
        wanted = [kw.get("type_")]
    else:
        wanted = list(kw.get("type_list") or [])
    ok = any(isinstance(w, str) and w.lower() in {a.lower() for a in aliases} for w in wanted)
    return expectation_outcome(p, ok, observed, {"arrow_type": str(schema.field(col).type)})


# --- whole-column expectations --------------------------------------------------------------

def _check_between(value: Any, kw: dict) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if isinstance(lo, dict) or isinstance(hi, dict):
        raise ValidationInputError(
            f"suite parameters ({lo if isinstance(lo, dict) else hi}) are not supported; write the bound as a number"
        )
    if lo is not None and (value < lo or (kw.get("strict_min") and value == lo)):
        return False
    if hi is not None and (value > hi or (kw.get("strict_max") and value == hi)):
        return False
    return True


def _between_outcome(p: PlannedExpectation, value: Any, details: dict | None = None) -> ExpectationOutcome:
    return expectation_outcome(p, _check_between(value, p.kwargs), value, details)


def eval_aggregate(p: PlannedExpectation, st: ColumnStats | None, n_rows: int) -> ExpectationOutcome:
    kw = p.kwargs
    t = p.type
    if t == "expect_table_row_count_to_be_between":
        return _between_outcome(p, n_rows)
    if t == "expect_table_row_count_to_equal":
        return expectation_outcome(p, n_rows == kw.get("value"), n_rows)
    assert st is not None
    counts = {"element_count": st.n_rows, "nonmissing_count": st.n}
    if t in ("expect_column_min_to_be_between", "expect_column_max_to_be_between"):
        v = st.min if t.endswith("min_to_be_between") else st.max
        return _between_outcome(p, v, counts)
    if t in ("expect_column_mean_to_be_between", "expect_column_stdev_to_be_between",
             "expect_column_sum_to_be_between"):
        if st.n == 0 and t != "expect_column_sum_to_be_between":
            v = None
        elif t == "expect_column_mean_to_be_between":
            v = st.mean
        elif t == "expect_column_stdev_to_be_between":
            v = st.stdev()
        else:
            v = st.total
        if v is not None and not is_numeric(st.type):
            return expectation_outcome(p, False, None,
                                       {**counts, "error": f"column {st.name!r} is not numeric ({st.type})"})
        return _between_outcome(p, v, counts)
    if t in ("expect_column_values_to_be_unique", "expect_column_unique_value_count_to_be_between",
             "expect_column_proportion_of_unique_values_to_be_between"):
        u = st.uniqueness()
        if t == "expect_column_unique_value_count_to_be_between":
            return _between_outcome(p, u["distinct_count"], counts)
        if t == "expect_column_proportion_of_unique_values_to_be_between":
            prop = u["distinct_count"] / st.n if st.n else None
            return _between_outcome(p, prop, {**counts, "distinct_count": u["distinct_count"]})
        considered = u["nonmissing_count"]
        unexpected = u["unexpected_count"]
        mostly = kw.get("mostly", 1.0)
        ok = considered == 0 or (considered - unexpected) / considered >= mostly
        observed = {
            "unexpected_count": unexpected,
            "element_count": u["element_count"],
            "unexpected_percent": 100.0 * unexpected / considered if considered else 0.0,
            "partial_unexpected_list": u["partial_unexpected_list"],
        }
        return expectation_outcome(p, ok, observed, {**counts, "distinct_count": u["distinct_count"]})
    # distinct value sets
    distinct = st.distinct_values()
    value_set = kw.get("value_set")
    if not isinstance(value_set, (list, tuple, set)):
        raise ValidationInputError(f"{t} on column {st.name!r} needs a 'value_set' list")
    if distinct is None:
        return expectation_outcome(p, False, None, {
            **counts, "error": f"column {st.name!r} has more than {100_000} distinct values"})
    seen, want = set(distinct), set(value_set)
    if t == "expect_column_distinct_values_to_be_in_set":
        ok = seen <= want
        extra = {"unexpected_values": _sorted(seen - want)[:PARTIAL]}
    elif t == "expect_column_distinct_values_to_contain_set":
        ok = want <= seen
        extra = {"missing_values": _sorted(want - seen)[:PARTIAL]}
    else:
        ok = seen == want
        extra = {"unexpected_values": _sorted(seen - want)[:PARTIAL], "missing_values": _sorted(want - seen)[:PARTIAL]}
    return expectation_outcome(p, ok, distinct, {**counts, **extra})


def _sorted(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)
