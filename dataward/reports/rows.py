"""What the report reads of a version's rows and scores: every row of a table up to
:data:`REPORT_FULL_ROWS` rows, a bounded, seeded sample of a larger one.

A version of a hundred million rows does not fit the report's process (the table, the
per-row scores as a DataFrame, every label as a Python string). Above
:data:`REPORT_FULL_ROWS` rows the report reads, in one streamed pass over
``scores.parquet`` and one over the data files (memory: one batch, plus one byte a row
for the flags):

* a uniform sample of :data:`REPORT_SAMPLE_ROWS` rows (seeded): the score
  distributions, their percentiles, the column profile and each class's typical values
  (what a flagged row "differs from") come from it;
* the first :data:`MAX_FLAGGED_READ` flagged rows by row id, and the flagged rows the
  sample holds (the flagged-row table, the cards and ``flagged.csv``; the report says how
  many of the flagged rows these are);
* the label of every row, counted batch by batch: the class balance and the flagged rows
  per class are exact.

The report says which figures come from the sample (``figures.sampled``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Versions with more rows than this are read as a sample (see the module docstring).
REPORT_FULL_ROWS = 1_000_000
#: Rows in the uniform sample of a large version.
REPORT_SAMPLE_ROWS = 100_000
#: Flagged rows read of a large version (the table, the cards, ``flagged.csv``).
MAX_FLAGGED_READ = 100_000


@dataclass
class ReportRows:
    """The rows the report reads. ``table`` and ``scores`` hold the same rows in the same
    order (``scores["row_id"]`` names them); ``in_sample``: which of them are the uniform
    sample (None: every row of the version was read); ``n_rows``: the version's rows;
    ``sampled``: what was read, for the report (None when every row was)."""

    table: Any
    scores: Any
    n_rows: int
    in_sample: np.ndarray | None = None
    sampled: dict[str, Any] | None = None
    label_counts: dict[str, int] = field(default_factory=dict)
    flagged_per_class: dict[str, int] = field(default_factory=dict)


def report_rows(ctx, version_id: int, scores_path: str | None, label_col: str | None, *,
                seed: int = 0) -> ReportRows:
    """Every row of a small version; a bounded sample of a large one (module docstring).

    ``table`` is None when the data cannot be read, ``scores`` when there is no scores
    file; the report then leaves those figures out."""
    from dataward.artifacts import read_scores
    from dataward.stage_results import read_table

    has_scores = bool(scores_path) and Path(str(scores_path)).is_file()
    n = _n_rows(ctx, version_id, scores_path if has_scores else None)
    if n <= REPORT_FULL_ROWS:
        try:
            table = read_table(ctx, version_id)
        except Exception:  # noqa: BLE001 - the report says the profile could not be made, never fails for it
            table = None
        scores = read_scores(str(scores_path)) if has_scores else None
        return ReportRows(table, scores, n if table is None else table.num_rows)
    return _sampled(ctx, version_id, str(scores_path) if has_scores else None, label_col, n, seed)


def _n_rows(ctx, version_id: int, scores_path: str | None) -> int:
    if scores_path:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(scores_path).metadata.num_rows)
    from lineage.models import DatasetVersion

    with ctx.session(read_only=True) as s:
        return int(s.get(DatasetVersion, version_id).row_count or 0)


def _sampled(ctx, version_id: int, scores_path: str | None, label_col: str | None, n: int, seed: int
             ) -> ReportRows:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from dataward.stage_results import iter_batches

    flagged = (pq.read_table(scores_path, columns=["flagged"]).column("flagged").to_numpy(zero_copy_only=False)
               if scores_path else np.zeros(n, dtype=bool))
    flagged_ids = np.flatnonzero(flagged)
    sample = np.random.default_rng(seed).choice(n, size=min(REPORT_SAMPLE_ROWS, n), replace=False)
    keep = np.zeros(n, dtype=bool)
    keep[flagged_ids[:MAX_FLAGGED_READ]] = True
    keep[sample] = True
    in_sample_all = np.zeros(n, dtype=bool)
    in_sample_all[sample] = True
    del sample

    scores, positions = None, np.flatnonzero(keep)
    if scores_path:
        parts = _kept(pq.ParquetFile(scores_path, pre_buffer=False).iter_batches(batch_size=1 << 20), keep)
        scores = pa.Table.from_batches(parts, schema=pq.read_schema(scores_path)).to_pandas()
        positions = scores["row_id"].to_numpy()

    labels: dict[str, int] = {}
    by_flag: dict[str, int] = {}

    def count(batch, rows: slice) -> None:  # every row's label, and the flagged rows'
        if label_col and label_col in batch.schema.names:
            col = batch.column(label_col)
            _add_counts(labels, pc.value_counts(col))
            f = flagged[rows]
            if f.any():
                _add_counts(by_flag, pc.value_counts(col.filter(pa.array(f))))

    try:
        kept = _kept(iter_batches(ctx, version_id), keep, count)
        table = pa.Table.from_batches(kept) if kept else None
    except Exception:  # noqa: BLE001 - as for a small version: no profile, never a failed report
        table = None
    if table is not None and table.num_rows != len(positions):
        table = None  # the data and the scores disagree on the rows: show no row content
    sampled = {"rows_read": int(len(positions)), "sample_rows": int(in_sample_all.sum()),
               "flagged_read": int(flagged[positions].sum()),
               "flagged_total": int(len(flagged_ids)), "n_rows": int(n), "seed": int(seed)}
    return ReportRows(table, scores, n, in_sample=in_sample_all[positions], sampled=sampled,
                      label_counts=labels, flagged_per_class=by_flag)


def _kept(batches, keep: np.ndarray, each=None) -> list:
    """The rows of a stream of batches that ``keep`` (a mask over the whole stream) marks,
    as filtered batches; ``each(batch, rows)`` sees every whole batch and its row slice."""
    import pyarrow as pa

    out, offset = [], 0
    for batch in batches:
        rows = slice(offset, offset + batch.num_rows)
        if each is not None:
            each(batch, rows)
        if keep[rows].any():
            out.append(batch.filter(pa.array(keep[rows])))
        offset = rows.stop
    return out


def _add_counts(total: dict[str, int], counts) -> None:
    for d in counts.to_pylist():
        key = str(d["values"])
        total[key] = total.get(key, 0) + int(d["counts"])
