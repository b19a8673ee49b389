"""Exact whole-column statistics accumulated over batches.

Row-wise expectations hold for the dataset if they hold for every row, so they can be
checked batch by batch. Expectations over a whole column cannot: a duplicate may sit in two
batches, and a batch mean says nothing of the global one. This module keeps what is needed
to answer them exactly after the last batch, in memory bounded by the column's distinct
values rather than by batch count:

- row count: summed;
- min / max: running extremes; mean / stdev / sum: Chan's parallel merge of
  (count, mean, M2) per batch, in float64;
- uniqueness and distinct counts: per-batch (value, count) pairs merged by sorting.
  Fixed-width values (numbers, booleans, times) are kept as themselves, so the answer is
  exact; text is kept as 64-bit hashes and any hash seen twice is re-checked against the
  real values in a second pass over that column only (see ``needs_second_pass``);
- distinct value sets: unioned (up to ``MAX_DISTINCT`` values).

NaN counts as missing, as it does in Great Expectations over pandas.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._json import jsonable
from .._types import is_numeric

MAX_DISTINCT = 100_000
PARTIAL = 20


def _non_missing(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    arr = pc.drop_null(arr)
    if pa.types.is_floating(arr.type):
        arr = arr.filter(pc.invert(pc.is_nan(arr)))
    return arr


def _is_fixed_width(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_temporal(t))


def _key_array(arr: pa.ChunkedArray) -> np.ndarray:
    """Values as a sortable numpy array: themselves when fixed width, else 64-bit hashes."""
    t = arr.type
    if pa.types.is_floating(t):
        return arr.to_numpy().astype(np.float64, copy=False)
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        if pa.types.is_uint64(t):
            return arr.to_numpy().astype(np.uint64, copy=False)
        return arr.cast(pa.int64()).to_numpy()
    if pa.types.is_temporal(t):
        if pa.types.is_date32(t):
            return arr.cast(pa.int32()).cast(pa.int64()).to_numpy()
        return pc.cast(arr, pa.int64()).to_numpy()
    return pd.util.hash_array(np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object))


def _reduce_counts(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if keys.size == 0:
        return keys, counts
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    c = counts[order]
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
    return k[starts], np.add.reduceat(c, starts)


class ColumnStats:
    """What one column has shown so far, for the statistics that were asked for.

    Args:
        name: column name. arrow_type: its unified Arrow type.
        need: any of ``"moments"`` (mean/stdev/sum), ``"minmax"``, ``"counts"``
            (uniqueness, distinct counts), ``"distinct"`` (the distinct value set).
    """

    def __init__(self, name: str, arrow_type: pa.DataType, need: set[str]):
        self.name = name
        self.type = arrow_type
        self.need = set(need)
        self.n = 0            # non-missing values
        self.n_rows = 0       # all rows
        self.mean = 0.0
        self.m2 = 0.0
        self.total = 0.0
        self.min: Any = None
        self.max: Any = None
        self.hashed = not _is_fixed_width(arrow_type)
        self._keys: list[np.ndarray] = []
        # sorted distinct keys per batch (merged now and then), plus, for keys seen more
        # than once, how many extra times: memory ~ 8 bytes per distinct value, no argsort
        self._extra_k: list[np.ndarray] = []
        self._extra_c: list[np.ndarray] = []
        self.distinct: set | None = set()
        self.exact_dups: Counter | None = None  # filled by the second pass for hashed columns

    def update(self, column: pa.ChunkedArray) -> None:
        self.n_rows += len(column)
        if pa.types.is_float16(column.type):  # Arrow's min_max and friends have no half-float kernel
            column = column.cast(pa.float32())
        values = _non_missing(column)
        nb = len(values)
        if nb == 0:
            return
        if "moments" in self.need and is_numeric(self.type):
            x = values.to_numpy().astype(np.float64, copy=False) if not pa.types.is_decimal(self.type) \
                else values.cast(pa.float64()).to_numpy()
            mb = float(x.mean())
            m2b = float(np.square(x - mb).sum())
            delta = mb - self.mean
            tot = self.n + nb
            self.mean += delta * nb / tot
            self.m2 += m2b + delta * delta * self.n * nb / tot
            self.total += float(x.sum())
        if "minmax" in self.need:
            mm = pc.min_max(values)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            self.min = lo if self.min is None or lo < self.min else self.min
            self.max = hi if self.max is None or hi > self.max else self.max
        if "counts" in self.need:
            k, c = np.unique(_key_array(values), return_counts=True)
            self._keys.append(k)
            if (c > 1).any():
                self._extra_k.append(k[c > 1])
                self._extra_c.append(c[c > 1].astype(np.int64) - 1)
            if len(self._keys) > 8:
                self._compact()
        if "distinct" in self.need and self.distinct is not None:
            self.distinct.update(pc.unique(values).to_pylist())
            if len(self.distinct) > MAX_DISTINCT:
                self.distinct = None
        self.n += nb

    def _compact(self) -> None:
        if len(self._keys) <= 1:
            return
        allk = np.concatenate(self._keys)
        self._keys = []
        allk.sort()
        eq = allk[1:] == allk[:-1]
        if eq.any():  # a key present in several batches: each extra presence counts
            self._extra_k.append(allk[1:][eq])
            self._extra_c.append(np.ones(int(eq.sum()), dtype=np.int64))
        keep = np.empty(allk.size, dtype=bool)
        keep[0] = True
        np.logical_not(eq, out=keep[1:])
        del eq
        self._keys = [allk[keep]]

    # --- answers -------------------------------------------------------------------------

    def stdev(self) -> float | None:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None

    def _distinct_and_dups(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(number of distinct keys, keys seen more than once, their total counts)."""
        self._compact()
        n_distinct = int(self._keys[0].size) if self._keys else 0
        if not self._extra_k:
            empty = np.array([], dtype=np.int64)
            return n_distinct, empty, empty
        k, extra = _reduce_counts(np.concatenate(self._extra_k), np.concatenate(self._extra_c))
        self._extra_k, self._extra_c = [k], [extra]
        return n_distinct, k, extra + 1

    def duplicate_keys(self) -> np.ndarray:
        return self._distinct_and_dups()[1]

    @property
    def needs_second_pass(self) -> bool:
        """True when hashes collided or repeated and the real text must be looked at."""
        return "counts" in self.need and self.hashed and self.exact_dups is None and self.duplicate_keys().size > 0

    def second_pass_update(self, column: pa.ChunkedArray, dup_hashes: np.ndarray) -> None:
        """Count the real values whose hash was seen more than once."""
        values = _non_missing(column)
        if len(values) == 0:
            return
        h = _key_array(values)
        hit = np.isin(h, dup_hashes)
        if hit.any():
            if self.exact_dups is None:
                self.exact_dups = Counter()
            self.exact_dups.update(values.filter(pa.array(hit)).to_pylist())

    def uniqueness(self) -> dict:
        """Rows whose value occurs more than once, over non-missing values."""
        n_keys, dup_k, dup_c = self._distinct_and_dups()
        if self.hashed and self.exact_dups is not None:
            dups = {v: n for v, n in self.exact_dups.items() if n > 1}
            unexpected = sum(dups.values())
            partial = list(dups)[:PARTIAL]
            # distinct = distinct hashes, corrected for hashes shared by several values
            distinct = n_keys - int(dup_k.size) + len(self.exact_dups)
        else:
            unexpected = int(dup_c.sum())
            partial = [] if self.hashed else [jsonable(v) for v in dup_k[:PARTIAL]]
            distinct = n_keys
        return {"unexpected_count": unexpected, "nonmissing_count": self.n,
                "element_count": self.n_rows, "distinct_count": distinct,
                "partial_unexpected_list": [jsonable(v) for v in partial]}

    def distinct_values(self) -> list | None:
        if self.distinct is None:
            return None
        vals = [v for v in self.distinct if not (isinstance(v, float) and math.isnan(v))]
        try:
            return sorted(vals)
        except TypeError:
            return sorted(vals, key=repr)
