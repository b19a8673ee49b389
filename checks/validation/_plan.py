"""Sort a suite's expectations by how they can be answered exactly over batches.

- ``schema``: answered once from the dataset's unified Arrow schema (columns, types);
- ``aggregate``: whole-column or whole-table statistics, accumulated across batches
  (``_aggregates.ColumnStats``);
- ``rowwise``: map expectations (a verdict per row), run by Great Expectations on every
  batch and merged.

Anything else (a whole-column expectation with no exact cross-batch form here, such as a
median, quantiles or KL divergence) is refused with a clear error rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._outcome import ValidationInputError

SCHEMA = {
    "expect_column_to_exist",
    "expect_table_columns_to_match_ordered_list",
    "expect_table_columns_to_match_set",
    "expect_table_column_count_to_equal",
    "expect_table_column_count_to_be_between",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_be_in_type_list",
}

# type -> statistics of ColumnStats it needs (empty for table-level)
AGGREGATE: dict[str, set[str]] = {
    "expect_table_row_count_to_be_between": set(),
    "expect_table_row_count_to_equal": set(),
    "expect_column_min_to_be_between": {"minmax"},
    "expect_column_max_to_be_between": {"minmax"},
    "expect_column_mean_to_be_between": {"moments"},
    "expect_column_stdev_to_be_between": {"moments"},
    "expect_column_sum_to_be_between": {"moments"},
    "expect_column_values_to_be_unique": {"counts"},
    "expect_column_unique_value_count_to_be_between": {"counts"},
    "expect_column_proportion_of_unique_values_to_be_between": {"counts"},
    "expect_column_distinct_values_to_be_in_set": {"distinct"},
    "expect_column_distinct_values_to_contain_set": {"distinct"},
    "expect_column_distinct_values_to_equal_set": {"distinct"},
}

# map expectations whose verdict is not per row
_NOT_ROWWISE = {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}


@dataclass
class PlannedExpectation:
    index: int
    type: str
    kwargs: dict
    meta: dict
    category: str  # "schema" | "aggregate" | "rowwise"
    columns: list[str] = field(default_factory=list)

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column") if isinstance(self.kwargs.get("column"), str) else None


def expectation_columns(kwargs: dict) -> list[str]:
    """Columns an expectation reads (from its ``column``/``column_A``/``column_list`` kwargs)."""
    cols: list[str] = []
    for key in ("column", "column_A", "column_B"):
        if isinstance(kwargs.get(key), str):
            cols.append(kwargs[key])
    if isinstance(kwargs.get("column_list"), list) and "column" not in kwargs:
        cols.extend(c for c in kwargs["column_list"] if isinstance(c, str))
    return cols


def plan_suite(suite: dict) -> list[PlannedExpectation]:
    """Classify every expectation of a parsed suite; ValidationInputError if one is unsupported."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.registry import get_expectation_impl

    planned = []
    for i, exp in enumerate(suite["expectations"]):
        etype = exp["type"]
        if etype in SCHEMA:
            cat = "schema"
        elif etype in AGGREGATE:
            cat = "aggregate"
        else:
            try:
                impl = get_expectation_impl(etype)
            except Exception:
                raise ValidationInputError(
                    f"suite {suite.get('name')!r}: unknown expectation type {etype!r}"
                ) from None
            if issubclass(impl, (ColumnMapExpectation, ColumnPairMapExpectation,
                                 MulticolumnMapExpectation)) and etype not in _NOT_ROWWISE:
                cat = "rowwise"
            else:
                raise ValidationInputError(
                    f"suite {suite.get('name')!r}: expectation {etype!r} looks at a whole column "
                    f"and has no exact cross-batch evaluation here; supported whole-column "
                    f"expectations are {sorted(AGGREGATE)}"
                )
        planned.append(planned_expectation(i, exp, cat))
    return planned


def planned_expectation(index: int, exp: dict, category: str) -> PlannedExpectation:
    """The suite's expectation ``exp`` (its ``index``-th) as a :class:`PlannedExpectation`."""
    etype, kwargs = exp["type"], dict(exp.get("kwargs") or {})
    table_level = etype in ("expect_table_columns_to_match_ordered_list", "expect_table_columns_to_match_set")
    cols = [] if category == "schema" and table_level else expectation_columns(kwargs)
    return PlannedExpectation(index, etype, kwargs, dict(exp.get("meta") or {}), category, cols)
