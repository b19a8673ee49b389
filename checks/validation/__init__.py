"""Schema and quality validation of dataset versions with Great Expectations.

Suites live in a file-backed GX project (``<project_root>/gx/expectations/<kind>.json``),
one per dataset kind, reviewed and committed. ``scaffold_suite`` drafts one from a version;
``validate_files`` runs it over all files of a version in bounded batches and returns every
expectation's verdict; ``load_suite`` reads and checks a suite.

This module imports only the standard library: pyarrow, pandas and Great Expectations
(whose import takes seconds) are loaded when a function is first called, so Airflow DAG
parsing stays light.
"""

from __future__ import annotations

from pathlib import Path

from ._outcome import ExpectationOutcome, SuiteNotFound, ValidationInputError, ValidationOutcome

__all__ = [
    "ExpectationOutcome",
    "SuiteNotFound",
    "ValidationInputError",
    "ValidationOutcome",
    "load_suite",
    "scaffold_suite",
    "validate_files",
]


def scaffold_suite(paths: list[str | Path], kind: str, *, project_root: str | Path,
                   label_col: str | None = None, overwrite: bool = False) -> Path:
    """Draft the suite of dataset kind ``kind`` from an ingested version, for review.

    Reads every file of the version (``paths``: Parquet, CSV or JSON Lines; together one
    dataset) in batches and writes, through the GX file context, a suite stating: the
    ordered column list, at least one row, each column's type, non-nullness (with
    ``mostly`` equal to the observed non-null share, rounded down, where there were
    nulls), the observed ``[min, max]`` of every numeric column and, for ``label_col``,
    the label set (every value in it, and every label present).

    Args:
        paths: the files of the dataset version.
        kind: the dataset kind; it names the suite and its file.
        project_root: the folder holding (or to hold) the ``gx/`` GX project.
        label_col: the label column, if the dataset has one.
        overwrite: replace an existing suite of this kind.

    Returns:
        Path of the written suite JSON (``<project_root>/gx/expectations/<kind>.json``).

    Raises:
        ValidationInputError: the suite exists and ``overwrite`` is False, the data cannot
            be read (see ``validate_files``), it is empty, or ``label_col`` is absent.
    """
    from ._scaffold import scaffold_suite as _impl

    return _impl(paths, kind, project_root=project_root, label_col=label_col, overwrite=overwrite)


def validate_files(paths: list[str | Path], kind: str, *, project_root: str | Path,
                   batch_rows: int = 1_000_000, data_docs_dir: str | Path | None = None,
                   run_name: str | None = None, gx_root: str | Path | None = None) -> ValidationOutcome:
    """Run the suite of ``kind`` over one dataset version.

    With ``gx_root`` (a run-time GX file project, apart from the committed suites), a
    dataset that fits one batch is validated the GX way: a ``ValidationDefinition`` and a
    ``Checkpoint`` with an ``UpdateDataDocsAction`` in that file context; the result is
    kept in GX's validation-results store and the Data Docs are built by GX. Every other
    case takes the batch-merging path below, which refuses ``row_condition``.

    The files are read in batches of ``batch_rows`` rows (memory stays bounded).
    Row-wise expectations (values between, in set, not null, regex...) are run by Great
    Expectations on every batch and their counts summed; whole-column ones (row count,
    uniqueness, min/max/mean/stdev/sum, unique-value counts, distinct value sets) are
    computed exactly across batches; column and type expectations are answered from
    the dataset's Arrow schema (type names as pandas/numpy write them: ``int64``,
    ``float64``, ``str``, ``bool``, ``datetime64[ns]``; Arrow names also match). An
    expectation on a column the data lacks fails with ``details["error"]``.

    Args:
        paths: the files of the version (Parquet, CSV or JSON Lines), one dataset together.
        kind: the dataset kind whose suite is run.
        project_root: the folder holding the ``gx/`` GX project.
        batch_rows: rows per batch.
        data_docs_dir: where to build GX Data Docs HTML; None builds none.
        run_name: name of the run in Data Docs (default: kind and UTC time).
        gx_root: folder of the GX file project for Checkpoint runs (None: always batch).

    Returns:
        A ValidationOutcome; ``success`` False means the caller quarantines the version
        and lists ``outcome.failed``.

    Raises:
        SuiteNotFound: ``kind`` has no suite (quarantine the version; never pass it).
        ValidationInputError: the suite does not parse, has zero expectations or an
            expectation with no exact batched form (or a ``row_condition``, when batched);
            or the data cannot be read: unknown
            format, non-UTF-8 text, mixed types in a column, files that disagree on columns.
    """
    from ._engine import validate_files as _impl

    return _impl(paths, kind, project_root=project_root, batch_rows=batch_rows,
                 data_docs_dir=data_docs_dir, run_name=run_name, gx_root=gx_root)


def load_suite(kind: str, *, project_root: str | Path) -> dict:
    """Read the suite of ``kind`` from ``<project_root>/gx/expectations/<kind>.json``.

    Returns the parsed suite (GX JSON form: ``name``, ``expectations``, ``meta``) after
    checking that it is valid JSON, named after ``kind``, has at least one expectation and
    loads in Great Expectations.

    Raises:
        SuiteNotFound: no suite file for ``kind``.
        ValidationInputError: the file does not parse, is empty of expectations, or GX
            rejects it.
    """
    from ._suites import load_suite as _impl

    return _impl(kind, project_root=project_root)
