"""Run a suite over a dataset version in bounded batches and merge the verdicts.

Flow: load and check the suite (real GX file context) -> sort its expectations
(``_plan``) -> open the files as one dataset (``_reading``) -> expectations on columns the
data lacks fail at once -> schema expectations are answered from the Arrow schema -> every
batch is (a) fed to the whole-column accumulators and (b) validated by GX for the row-wise
expectations -> hashed uniqueness is re-checked in a second pass when needed -> verdicts are
merged in suite order, and Data Docs are rendered if asked for.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import _suites
from ._aggregates import PARTIAL, ColumnStats, _jsonable
from ._outcome import ExpectationOutcome, ValidationInputError, ValidationOutcome
from ._plan import AGGREGATE, PlannedExpectation, plan_suite
from ._reading import DatasetReader


def validate_files(paths: list[str | Path], kind: str, *, project_root: str | Path,
                   batch_rows: int = 1_000_000, data_docs_dir: str | Path | None = None,
                   run_name: str | None = None, gx_root: str | Path | None = None) -> ValidationOutcome:
    t0 = time.perf_counter()
    suite = _suites.load_suite(kind, project_root=project_root)
    reader = DatasetReader(paths)
    if gx_root is not None:
        table = _one_batch(reader, batch_rows)
        if table is not None:  # fits one batch: GX runs it all, through a Checkpoint
            from ._checkpoint import validate_table

            outcome = validate_table(table, suite, gx_root=gx_root, data_docs_dir=data_docs_dir,
                                     run_name=run_name)
            outcome.elapsed_s = time.perf_counter() - t0
            return outcome
    _refuse_row_conditions(suite)
    plan = plan_suite(suite)
    schema = reader.schema
    names = reader.column_names

    results: dict[int, ExpectationOutcome] = {}
    live: list[PlannedExpectation] = []
    for p in plan:
        missing = [c for c in p.columns if c not in names] if p.type != "expect_column_to_exist" else []
        if missing:
            results[p.index] = _outcome(p, False, None, {
                "error": f"column(s) {missing} named by the suite are not in the data; the data "
                         f"has columns {names}"})
        else:
            live.append(p)

    for p in live:
        if p.category == "schema":
            results[p.index] = _eval_schema(p, schema)

    stats: dict[str, ColumnStats] = {}
    for p in live:
        if p.category == "aggregate" and p.column is not None:
            st = stats.setdefault(p.column, ColumnStats(p.column, schema.field(p.column).type, set()))
            st.need |= AGGREGATE[p.type]
    rowwise = [p for p in live if p.category == "rowwise"]
    read_cols = set(stats) | {c for p in rowwise for c in p.columns}
    if not read_cols and names:
        read_cols = {names[0]}  # row count still needs rows

    runner = _GxBatchRunner(kind, rowwise) if rowwise else None
    n_rows = n_batches = 0
    for table in reader.iter_tables(batch_rows, columns=read_cols):
        for col, st in stats.items():
            st.update(table.column(col))
        if runner is not None:
            runner.run(table, offset=n_rows)
        n_rows += table.num_rows
        n_batches += 1
        del table  # let the reader free this batch before it builds the next
    if n_batches == 0 and runner is not None:  # an empty dataset still gets GX's verdicts
        runner.run(pa.schema([schema.field(c) for c in names if c in read_cols]).empty_table(), offset=0)

    second = {c: st for c, st in stats.items() if st.needs_second_pass}
    if second:
        dup_hashes = {c: st.duplicate_keys() for c, st in second.items()}
        for table in reader.iter_tables(batch_rows, columns=set(second)):
            for c, st in second.items():
                st.second_pass_update(table.column(c), dup_hashes[c])
        for st in second.values():
            if st.exact_dups is None:
                st.exact_dups = Counter()

    for p in live:
        if p.category == "aggregate":
            results[p.index] = _eval_aggregate(p, stats.get(p.column) if p.column else None, n_rows)
    if runner is not None:
        results.update(runner.outcomes())

    outcomes = [results[p.index] for p in plan]
    outcome = ValidationOutcome(
        suite_name=kind,
        success=bool(outcomes) and all(o.success for o in outcomes),
        outcomes=outcomes,
        n_rows=n_rows,
        n_batches=n_batches,
        data_docs_path=None,
        elapsed_s=0.0,
    )
    if data_docs_dir is not None:
        from ._docs import build_data_docs

        outcome.data_docs_path = build_data_docs(
            outcome, suite, data_docs_dir=data_docs_dir, run_name=run_name,
            files=[str(p) for p in paths],
        )
    outcome.elapsed_s = time.perf_counter() - t0
    return outcome


def _one_batch(reader: DatasetReader, batch_rows: int) -> pa.Table | None:
    """The whole dataset as one table if it fits ``batch_rows`` rows, else None."""
    tables = reader.iter_tables(batch_rows)
    first = next(tables, None)
    if first is None:
        return reader.schema.empty_table()
    if next(tables, None) is not None:
        tables.close()
        return None
    return first


def _refuse_row_conditions(suite: dict) -> None:
    """The batch-merging path cannot apply ``row_condition``: refuse it, never ignore it."""
    for i, e in enumerate(suite["expectations"]):
        kw = e.get("kwargs") or {}
        if kw.get("row_condition"):
            raise ValidationInputError(
                f"suite {suite.get('name')!r}: expectation #{i} ({e['type']}) has a row_condition, "
                "which the multi-batch validation cannot apply; validate data that fits one batch "
                "(a GX Checkpoint applies it) or split the suite by condition")


def _outcome(p: PlannedExpectation, success: bool, observed: Any, details: dict | None = None) -> ExpectationOutcome:
    return ExpectationOutcome(
        expectation_type=p.type,
        column=p.column,
        kwargs=_jsonable_tree(p.kwargs),
        success=bool(success),
        observed_value=_jsonable_tree(observed),
        details=_jsonable_tree(details or {}),
    )


def _jsonable_tree(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable_tree(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_jsonable_tree(x) for x in v]
    return _jsonable(v)


# --- schema expectations ------------------------------------------------------------------

def _type_names(t: pa.DataType) -> tuple[str, set[str]]:
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


def _eval_schema(p: PlannedExpectation, schema: pa.Schema) -> ExpectationOutcome:
    names = list(schema.names)
    kw = p.kwargs
    if p.type == "expect_column_to_exist":
        col = kw.get("column")
        idx = names.index(col) if col in names else None
        want = kw.get("column_index")
        ok = idx is not None and (want is None or want == idx)
        return _outcome(p, ok, idx, {"columns": names})
    if p.type == "expect_table_columns_to_match_ordered_list":
        want = list(kw.get("column_list") or [])
        return _outcome(p, names == want, names, {
            "missing": [c for c in want if c not in names],
            "unexpected": [c for c in names if c not in want]})
    if p.type == "expect_table_columns_to_match_set":
        want = set(kw.get("column_set") or [])
        exact = kw.get("exact_match", True)
        ok = set(names) == want if exact in (True, None) else want <= set(names)
        return _outcome(p, ok, names, {
            "missing": sorted(want - set(names)), "unexpected": sorted(set(names) - want)})
    if p.type == "expect_table_column_count_to_equal":
        return _outcome(p, len(names) == kw.get("value"), len(names))
    if p.type == "expect_table_column_count_to_be_between":
        return _between_outcome(p, len(names))
    col = kw["column"]
    observed, aliases = _type_names(schema.field(col).type)
    if p.type == "expect_column_values_to_be_of_type":
        wanted = [kw.get("type_")]
    else:
        wanted = list(kw.get("type_list") or [])
    ok = any(isinstance(w, str) and w.lower() in {a.lower() for a in aliases} for w in wanted)
    return _outcome(p, ok, observed, {"arrow_type": str(schema.field(col).type)})


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
    return _outcome(p, _check_between(value, p.kwargs), value, details)


def _eval_aggregate(p: PlannedExpectation, st: ColumnStats | None, n_rows: int) -> ExpectationOutcome:
    kw = p.kwargs
    t = p.type
    if t == "expect_table_row_count_to_be_between":
        return _between_outcome(p, n_rows)
    if t == "expect_table_row_count_to_equal":
        return _outcome(p, n_rows == kw.get("value"), n_rows)
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
        if v is not None and not _numeric_type(st.type):
            return _outcome(p, False, None, {**counts, "error": f"column {st.name!r} is not numeric ({st.type})"})
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
        return _outcome(p, ok, observed, {**counts, "distinct_count": u["distinct_count"]})
    # distinct value sets
    distinct = st.distinct_values()
    value_set = kw.get("value_set")
    if not isinstance(value_set, (list, tuple, set)):
        raise ValidationInputError(f"{t} on column {st.name!r} needs a 'value_set' list")
    if distinct is None:
        return _outcome(p, False, None, {
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
    return _outcome(p, ok, distinct, {**counts, **extra})


def _sorted(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _numeric_type(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t)


# --- row-wise expectations through GX -------------------------------------------------------

def _exception_message(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        return (info.get("exception_message") or "expectation raised an exception") if info["raised_exception"] else None
    for v in info.values():
        msg = _exception_message(v)
        if msg:
            return msg
    return None


class _RowwiseMerge:
    """Sums one map expectation's per-batch GX results into a dataset-wide verdict."""

    def __init__(self, p: PlannedExpectation):
        self.p = p
        self.element = 0
        self.missing = 0
        self.unexpected = 0
        self.partial: list = []
        self.partial_index: list = []
        self.errors: list[str] = []
        self.failed_batches = 0
        self.n_batches = 0

    def add(self, r: Any, offset: int) -> None:
        self.n_batches += 1
        msg = _exception_message(r.exception_info)
        res = dict(r.result or {})
        if msg or "element_count" not in res:
            self.errors.append(msg or "Great Expectations returned no counts")
            return
        self.failed_batches += int(not r.success)
        self.element += int(res.get("element_count") or 0)
        self.missing += int(res.get("missing_count") or 0)
        self.unexpected += int(res.get("unexpected_count") or 0)
        if len(self.partial) < PARTIAL:
            room = PARTIAL - len(self.partial)
            self.partial.extend((res.get("partial_unexpected_list") or [])[:room])
            idx = res.get("partial_unexpected_index_list") or []
            self.partial_index.extend(_global_index(i, offset) for i in idx[:room])

    def outcome(self) -> ExpectationOutcome:
        if self.errors:
            return _outcome(self.p, False, None, {
                "error": self.errors[0], "batches_with_errors": len(self.errors), "batches": self.n_batches})
        considered = self.element - self.missing
        mostly = self.p.kwargs.get("mostly", 1.0)
        ok = considered == 0 or (considered - self.unexpected) / considered >= mostly
        observed = {
            "unexpected_count": self.unexpected,
            "element_count": self.element,
            "unexpected_percent": 100.0 * self.unexpected / considered if considered else 0.0,
            "partial_unexpected_list": self.partial,
        }
        return _outcome(self.p, ok, observed, {
            "missing_count": self.missing,
            "partial_unexpected_index_list": self.partial_index,
            "failed_batches": self.failed_batches,
            "batches": self.n_batches,
        })


def _global_index(i: Any, offset: int) -> Any:
    if isinstance(i, (int,)) or hasattr(i, "__index__"):
        return int(i) + offset
    return i


class _GxBatchRunner:
    """Validates each batch with GX (ephemeral context: nothing is written to the project)."""

    def __init__(self, kind: str, planned: list[PlannedExpectation]):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        self.ctx = gx.get_context(mode="ephemeral")
        try:
            self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        except Exception:  # progress bars are cosmetic; never fail a validation over them
            pass
        asset = self.ctx.data_sources.add_or_update_pandas("dataward").add_dataframe_asset("batch")
        self.batch_def = asset.add_batch_definition_whole_dataframe("batch")
        exps = []
        for p in planned:
            try:
                cfg = ExpectationConfiguration(type=p.type, kwargs=p.kwargs,
                                               meta={**p.meta, "dataward_index": p.index})
                exps.append(cfg.to_domain_obj())
            except Exception as exc:
                raise ValidationInputError(
                    f"suite {kind!r}: expectation #{p.index} ({p.type}) is invalid: {_suites._first_line(exc)}"
                ) from None
        self.suite = gx.ExpectationSuite(name=kind, expectations=exps)
        self.merges = {p.index: _RowwiseMerge(p) for p in planned}
        self.columns = sorted({c for p in planned for c in p.columns})

    def run(self, table: pa.Table, *, offset: int) -> None:
        # only the columns row-wise expectations read: conversion and GX's own
        # per-batch fingerprinting scale with the frame's width
        df = table.select([c for c in table.column_names if c in self.columns]).to_pandas()
        batch = self.batch_def.get_batch(batch_parameters={"dataframe": df})
        res = batch.validate(
            self.suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL}
        )
        for r in res.results:
            idx = (r.expectation_config.meta or {}).get("dataward_index")
            self.merges[idx].add(r, offset)

    def outcomes(self) -> dict[int, ExpectationOutcome]:
        return {i: m.outcome() for i, m in self.merges.items()}
