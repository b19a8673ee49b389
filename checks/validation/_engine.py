"""Run a suite over a dataset version in bounded batches and merge the verdicts.

Flow: load and check the suite (real GX file context) -> sort its expectations
(``_plan``) -> open the files as one dataset (``_reading``) -> expectations on columns the
data lacks fail at once -> schema expectations are answered from the Arrow schema -> every
batch is (a) fed to the whole-column accumulators and (b) validated by GX for the row-wise
expectations -> hashed uniqueness is re-checked in a second pass when needed -> verdicts are
merged in suite order, and Data Docs are rendered if asked for.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

from . import _suites
from ._aggregates import ColumnStats
from ._answers import eval_aggregate, eval_schema, missing_columns
from ._gx_batches import GxBatchRunner
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
        missing = missing_columns(p, names)
        if missing is not None:
            results[p.index] = missing
        else:
            live.append(p)

    for p in live:
        if p.category == "schema":
            results[p.index] = eval_schema(p, schema)

    stats: dict[str, ColumnStats] = {}
    for p in live:
        if p.category == "aggregate" and p.column is not None:
            st = stats.setdefault(p.column, ColumnStats(p.column, schema.field(p.column).type, set()))
            st.need |= AGGREGATE[p.type]
    rowwise = [p for p in live if p.category == "rowwise"]
    read_cols = set(stats) | {c for p in rowwise for c in p.columns}
    if not read_cols and names:
        read_cols = {names[0]}  # row count still needs rows

    runner = GxBatchRunner(kind, rowwise) if rowwise else None
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
            results[p.index] = eval_aggregate(p, stats.get(p.column) if p.column else None, n_rows)
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
