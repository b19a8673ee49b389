"""Errors and result records of the validation engine (stdlib only, cheap to import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class ValidationInputError(ValueError):
    """The input cannot be validated: bad suite, unreadable or malformed data.

    The message is one human-readable sentence (or two) naming the file, the column or the
    expectation at fault, fit to be shown on stderr or stored as a quarantine reason.
    """


class SuiteNotFound(LookupError):
    """The dataset kind has no expectation suite.

    A kind without a reviewed suite must be quarantined, never passed; the message says
    which kind was asked for, in which folder the suites live and what to do (``remedy``:
    the caller's words, e.g. its command that drafts a suite).
    """

    def __init__(self, kind: str, suites_dir: str, *, remedy: str | None = None):
        self.kind = kind
        self.suites_dir = suites_dir
        #: what to do about it, in the caller's words (a command); the default names no
        #: function and no tool, so the message is fit for a terminal or a report as is
        self.remedy = remedy or "Draft one from the data, review it and commit it"
        super().__init__(
            f"no expectation suite for dataset kind {kind!r}: expected {suites_dir}/{kind}.json. "
            f"{self.remedy}"
        )

    def __str__(self) -> str:  # LookupError would otherwise show the message in quotes
        return str(self.args[0])


@dataclass
class ExpectationOutcome:
    """The verdict on one expectation of the suite, over the whole dataset.

    Attributes:
        expectation_type: GX name, e.g. ``"expect_column_values_to_be_between"``.
        column: the column it is about, or None for table-level expectations.
        kwargs: the expectation's arguments as written in the suite.
        success: True when the whole dataset (all batches together) meets it.
        observed_value: JSON-serializable summary of what was seen: the statistic for
            aggregate expectations (min, mean, row count, distinct values...), or for
            row-wise ones a dict with ``unexpected_count``, ``element_count``,
            ``unexpected_percent`` and ``partial_unexpected_list``; None when the
            expectation could not be evaluated (see ``details["error"]``).
        details: further JSON-serializable facts (counts, per-batch figures, row indices
            of up to 20 offending rows, ``error`` when it could not be evaluated).
    """

    expectation_type: str
    column: str | None
    kwargs: dict
    success: bool
    observed_value: Any
    details: dict = field(default_factory=dict)


@dataclass
class ValidationOutcome:
    """The result of running a suite over one dataset version.

    Attributes:
        suite_name: the suite (= dataset kind) that was run.
        success: True only if every expectation succeeded; a False outcome means the
            caller quarantines the version and lists ``failed``.
        outcomes: one entry per expectation, in suite order.
        n_rows: rows read over all files.
        n_batches: how many batches the rows were validated in.
        data_docs_path: path of the Data Docs HTML page of this validation run, or None
            when no Data Docs were asked for.
        elapsed_s: wall-clock seconds the validation took.
    """

    suite_name: str
    success: bool
    outcomes: list[ExpectationOutcome]
    n_rows: int
    n_batches: int
    data_docs_path: str | None
    elapsed_s: float

    @property
    def failed(self) -> list[ExpectationOutcome]:
        """The expectations that did not hold, in suite order."""
        return [o for o in self.outcomes if not o.success]

    def to_dict(self) -> dict:
        """A JSON-serializable dict, fit to be stored as a check result."""
        d = asdict(self)
        d["failed"] = [
            {"expectation_type": o.expectation_type, "column": o.column} for o in self.failed
        ]
        return d
