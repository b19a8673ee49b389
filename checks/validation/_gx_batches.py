"""Row-wise expectations through GX: each batch validated in an ephemeral context, the
per-batch counts merged into one dataset-wide verdict per expectation."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from . import _suites
from ._aggregates import PARTIAL
from ._answers import expectation_outcome
from ._outcome import ExpectationOutcome, ValidationInputError
from ._plan import PlannedExpectation


def exception_message(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        if not info["raised_exception"]:
            return None
        return info.get("exception_message") or "expectation raised an exception"
    for v in info.values():
        msg = exception_message(v)
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
        msg = exception_message(r.exception_info)
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
            return expectation_outcome(self.p, False, None, {
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
        return expectation_outcome(self.p, ok, observed, {
            "missing_count": self.missing,
            "partial_unexpected_index_list": self.partial_index,
            "failed_batches": self.failed_batches,
            "batches": self.n_batches,
        })


def _global_index(i: Any, offset: int) -> Any:
    if isinstance(i, (int,)) or hasattr(i, "__index__"):
        return int(i) + offset
    return i


class GxBatchRunner:
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
