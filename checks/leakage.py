"""Leakage and duplicate checks: exact duplicates by content hash, near duplicates by cosine.

Exact duplicates
    Every row gets a stable 64-bit content hash of the chosen columns (:func:`row_hashes`):
    numbers are compared by value (an int 3 and a float 3.0 hash alike, -0.0 as 0.0, every
    NaN alike), strings by their UTF-8 bytes, fixed-length lists element by element. The
    hash is vectorised (numpy / pandas' stable SipHash for strings), so hashing is never
    the slow part; with N rows the chance of any 64-bit collision is about N^2 / 2^65
    (3e-8 at a million rows).

Near duplicates
    Cosine similarity between row vectors, top-1 neighbour per query row, computed in
    blocks (torch when loaded, else numpy) so memory stays at ``block x N`` floats. A pair is a near duplicate
    when its cosine *distance* ``1 - cos`` is below ``ratio`` times the median
    nearest-neighbour distance of the data set itself (``ratio`` default 0.05: the pair is
    twenty times closer than a typical row is to its nearest neighbour). The threshold is
    therefore scale-free: it adapts to how tightly the data clusters, without a
    data-specific constant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ._types import is_number_like

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_NULL = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, elementwise on uint64 (wraps on overflow by design)."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64, copy=True)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _float_bits(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).copy()
    v[v == 0] = 0.0  # -0.0 -> 0.0
    v[np.isnan(v)] = np.nan
    return v.view(np.uint64)


def _column_hash(col: pa.ChunkedArray) -> np.ndarray:
    """(N,) uint64 hash of each value of one column."""
    import pyarrow.compute as pc

    t = col.type
    n = len(col)
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    nulls = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
    if is_number_like(t):
        vals = pc.fill_null(pc.cast(col, pa.float64(), safe=False), 0.0).to_numpy(zero_copy_only=False)
        h = mix64(_float_bits(vals))
    elif pa.types.is_struct(t):
        # an image struct ({bytes, path}) is the same image whatever its path: hash the bytes
        fields = ["bytes"] if t.get_field_index("bytes") >= 0 else [t.field(i).name for i in range(t.num_fields)]
        h = np.full(n, np.uint64(0x13198A2E03707344), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for f in fields:
                h = mix64(h * np.uint64(0x100000001B3) ^ _column_hash(pc.struct_field(col, f)))
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        import pandas as pd

        h = pd.util.hash_array(np.asarray([b"" if v is None else v for v in col.to_pylist()],
                                          dtype=object)).astype(np.uint64)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        h = np.full(n, np.uint64(0x243F6A8885A308D3), dtype=np.uint64)
        lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(col)
        if pa.types.is_list(flat.type) or pa.types.is_fixed_size_list(flat.type):
            flat = pc.list_flatten(flat)  # 2-D images: list<list<number>>
            lengths = None
        vals = pc.cast(pc.fill_null(flat, 0), pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        if lengths is not None and len(vals) and np.all(lengths == lengths[0]) and lengths[0] * n == len(vals):
            mat = _float_bits(vals).reshape(n, -1)
            with np.errstate(over="ignore"):
                for j in range(mat.shape[1]):
                    h = mix64(h * np.uint64(31) ^ mat[:, j])
        else:  # ragged or nested: hash the Python values (slower, rare)
            import pandas as pd

            h = pd.util.hash_array(np.array([repr(v) for v in col.to_pylist()], dtype=object))
    else:
        import pandas as pd

        vals = col.cast(pa.string()) if not (pa.types.is_string(t) or pa.types.is_large_string(t)) else col
        h = pd.util.hash_array(np.asarray(vals.to_numpy(zero_copy_only=False), dtype=object)).astype(np.uint64)
    if nulls is not None:
        h = np.where(nulls, _NULL, h)
    return h


def row_hashes(table: pa.Table, columns: list[str] | None = None) -> np.ndarray:
    """(N,) uint64 stable content hash of each row over ``columns`` (default: all, in table order).

    Column order matters; column names do not (callers pass the same column list for
    tables they compare). Values are compared as described in the module docstring.
    """
    columns = list(columns) if columns is not None else list(table.column_names)
    h = np.full(table.num_rows, np.uint64(0x452821E638D01377), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in columns:
            h = mix64(h * np.uint64(0x100000001B3) ^ _column_hash(table.column(c)))
    return h


def exact_duplicates(hashes: np.ndarray, *, max_examples: int = 5) -> dict[str, Any]:
    """Rows whose hash equals an earlier row's.

    Returns ``{"n_duplicate_rows": rows that repeat an earlier row, "n_groups": distinct
    repeated contents, "duplicate_row_ids": (all such row ids, ascending), "examples":
    [[row ids of one group], ...]}``.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    order = np.argsort(hashes, kind="stable")
    sh = hashes[order]
    same_as_prev = np.zeros(len(sh), dtype=bool)
    same_as_prev[1:] = sh[1:] == sh[:-1]
    dup_ids = np.sort(order[same_as_prev])
    starts = np.flatnonzero(~same_as_prev)
    sizes = np.diff(np.append(starts, len(sh)))
    group_starts = starts[sizes > 1]
    group_sizes = sizes[sizes > 1]
    examples = []
    for s, k in zip(group_starts[:max_examples], group_sizes[:max_examples]):
        examples.append(sorted(int(i) for i in order[s:s + k]))
    return {"n_duplicate_rows": int(len(dup_ids)), "n_groups": int(len(group_starts)),
            "duplicate_row_ids": [int(i) for i in dup_ids], "examples": examples}


def exact_matches(hashes: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row ids of ``hashes`` that occur in ``other``, for each the first matching row of ``other``)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    other = np.asarray(other, dtype=np.uint64)
    if not len(other) or not len(hashes):
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    order = np.argsort(other, kind="stable")
    so = other[order]
    pos = np.searchsorted(so, hashes)
    pos_c = np.minimum(pos, len(so) - 1)
    hit = so[pos_c] == hashes
    ids = np.flatnonzero(hit)
    return ids.astype(np.int64), order[pos_c[hit]].astype(np.int64)


@dataclass
class Neighbours:
    """index: (Q,) int64, each query's most similar base row; similarity: (Q,) float32 cosine."""

    index: np.ndarray
    similarity: np.ndarray


def nearest_neighbours(queries: np.ndarray, base: np.ndarray | None = None, *, block: int = 2048,
                       device: str | None = None) -> Neighbours:
    """Top-1 cosine neighbour of each query row among ``base`` rows.

    ``base=None`` searches the queries themselves, excluding each row's own match.
    Memory: ``block x len(base)`` float32 at a time. Uses torch when it is already loaded
    (the screens load it) or a device is named, numpy's BLAS otherwise (same blocked products).
    """
    import sys

    self_search = base is None
    q = _unit(np.asarray(queries, dtype=np.float32))
    b = q if self_search else _unit(np.asarray(base, dtype=np.float32))
    idx = np.empty(len(q), dtype=np.int64)
    sim = np.empty(len(q), dtype=np.float32)
    use_torch = device is not None or "torch" in sys.modules
    if use_torch:
        import torch

        dev = device or "cpu"
        bt = torch.as_tensor(b, device=dev)
    for s in range(0, len(q), block):
        e = min(s + block, len(q))
        if use_torch:
            with torch.no_grad():
                m = torch.as_tensor(q[s:e], device=dev) @ bt.T
                if self_search:
                    r = torch.arange(s, e, device=dev)
                    m[r - s, r] = -float("inf")
                v, i = m.max(dim=1)
                idx[s:e], sim[s:e] = i.cpu().numpy(), v.cpu().numpy()
        else:
            m = q[s:e] @ b.T
            if self_search:
                r = np.arange(s, e)
                m[r - s, r] = -np.inf
            i = m.argmax(axis=1)
            idx[s:e], sim[s:e] = i, m[np.arange(e - s), i]
    return Neighbours(idx, sim)


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def standardize(x: np.ndarray, *, like: np.ndarray | None = None, block: int = 8) -> np.ndarray:
    """Centre and scale columns by ``like``'s (default ``x``'s) mean and standard deviation.

    The moments are computed in float64, ``block`` columns at a time: a float32 column of
    magnitudes near 1e19 (an int64 identifier) overflows a float32 variance."""
    ref = x if like is None else like
    d = ref.shape[1]
    mu, sd = np.zeros((1, d)), np.ones((1, d))
    for j in range(0, d, block):
        cols = np.asarray(ref[:, j:j + block], dtype=np.float64)
        mu[0, j:j + block], sd[0, j:j + block] = cols.mean(axis=0), cols.std(axis=0)
    sd[(sd == 0) | ~np.isfinite(sd)] = 1.0
    return ((x - mu.astype(x.dtype)) / sd.astype(x.dtype)).astype(np.float32)


def near_duplicates(x: np.ndarray, *, ratio: float = 0.05, exclude_exact: np.ndarray | None = None,
                    max_rows: int = 200_000, seed: int = 0, max_examples: int = 5,
                    block: int = 2048) -> dict[str, Any]:
    """Near-duplicate pairs inside one data set (see the module docstring for the rule).

    Args:
        x: (N, d) row vectors (representations or standardized features).
        ratio: a pair is near when ``1 - cos < ratio * median(1 - cos_nn)``.
        exclude_exact: (N,) uint64 row hashes; pairs with equal hashes are exact, not near.
        max_rows: above this many rows, a seeded sample of rows is queried (reported).

    Returns ``{"n_rows_with_near_duplicate", "threshold_distance", "median_nn_distance",
    "ratio", "queried_rows", "row_ids", "examples": [{"row", "neighbour", "cosine"}]}``.
    """
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    if n < 2:
        return {"n_rows_with_near_duplicate": 0, "queried_rows": n, "row_ids": [], "examples": []}
    q_ids = np.arange(n)
    if n > max_rows:
        q_ids = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
        nb = nearest_neighbours(x[q_ids], x, block=block)
        # a query may find itself: exclude it by searching the second best is costly; treat
        # self matches (same id) as no match
        self_hit = nb.index == q_ids
        nb.similarity[self_hit] = -1.0
    else:
        nb = nearest_neighbours(x, block=block)
    dist = 1.0 - nb.similarity.astype(np.float64)
    exact = np.zeros(len(q_ids), dtype=bool)
    if exclude_exact is not None:
        h = np.asarray(exclude_exact, dtype=np.uint64)
        exact = h[q_ids] == h[nb.index]
    real = dist[~exact]
    med = float(np.median(real)) if len(real) else 0.0
    thr = ratio * med
    near = (~exact) & (dist < thr) if med > 0 else np.zeros(len(q_ids), dtype=bool)
    rows = q_ids[near]
    order = np.argsort(dist[near], kind="stable")[:max_examples]
    examples = [{"row": int(rows[k]), "neighbour": int(nb.index[near][k]),
                 "cosine": round(float(nb.similarity[near][k]), 6)} for k in order]
    return {"n_rows_with_near_duplicate": int(near.sum()), "threshold_distance": thr,
            "median_nn_distance": med, "ratio": ratio, "queried_rows": int(len(q_ids)),
            "row_ids": [int(i) for i in rows], "examples": examples}


def near_matches(queries: np.ndarray, base: np.ndarray, *, threshold_distance: float,
                 max_examples: int = 5, block: int = 2048) -> dict[str, Any]:
    """Query rows (e.g. evaluation rows) whose nearest ``base`` row (training) is within the threshold.

    ``threshold_distance`` comes from :func:`near_duplicates` on ``base`` so both use the
    same, data-derived scale. Returns ``{"n_queries_matched", "pairs": [(query, base)],
    "examples": [{"query", "row", "cosine"}]}``.
    """
    if not len(queries) or not len(base):
        return {"n_queries_matched": 0, "pairs": [], "examples": []}
    nb = nearest_neighbours(queries, base, block=block)
    dist = 1.0 - nb.similarity.astype(np.float64)
    hit = np.flatnonzero(dist < threshold_distance)
    order = hit[np.argsort(dist[hit], kind="stable")]
    return {"n_queries_matched": int(len(hit)),
            "pairs": [(int(i), int(nb.index[i])) for i in hit],
            "examples": [{"query": int(i), "row": int(nb.index[i]),
                          "cosine": round(float(nb.similarity[i]), 6)} for i in order[:max_examples]]}


def feature_matrix(table: pa.Table, columns: list[str]) -> np.ndarray | None:
    """(N, D) float32 of the numeric and fixed-length list columns among ``columns``
    (other columns are left out); None if there is none."""
    import pyarrow.compute as pc

    blocks = []
    for c in columns:
        col = table.column(c)
        t = col.type
        if is_number_like(t):
            vals = pc.fill_null(pc.cast(col, pa.float64(), safe=False), 0.0)
            blocks.append(vals.to_numpy(zero_copy_only=False)[:, None])
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            try:
                arr = np.asarray(col.to_pylist(), dtype=np.float64)
            except (ValueError, TypeError):
                continue
            blocks.append(arr.reshape(len(arr), -1))
    if not blocks:
        return None
    x = np.concatenate(blocks, axis=1)
    x[~np.isfinite(x)] = 0.0
    return x.astype(np.float32)


def _exact_internal(hf: np.ndarray, hl: np.ndarray, max_examples: int) -> dict[str, Any]:
    """The exact part inside the data from the rows' feature hashes ``hf`` and feature +
    label hashes ``hl``: repeated rows, and rows that share their features with a row of
    another label (same ``hf``, another ``hl``)."""
    exact = exact_duplicates(hl, max_examples=max_examples)
    exact["duplicate_row_ids"] = exact["duplicate_row_ids"][:1000]
    feat_groups = exact_duplicates(hf, max_examples=10 ** 9)
    conflicting = [group for group in feat_groups["examples"] if len(np.unique(hl[group])) > 1]
    return {"exact": exact,
            "conflicting_labels": {"n_groups": len(conflicting), "n_rows": sum(len(g) for g in conflicting),
                                   "examples": conflicting[:max_examples]},
            "near_features": None, "near_representations": None}


def _exact_against(hf: np.ndarray, ev: pa.Table, feature_cols: list[str], max_examples: int
                   ) -> tuple[dict[str, Any], np.ndarray | None]:
    """(an evaluation table's entry, exact part only; the evaluation rows copied exactly,
    or None when the table lacks a feature column and is not compared)."""
    missing = [c for c in feature_cols if c not in ev.column_names]
    if missing:
        return {"n_rows": ev.num_rows, "note": f"lacks feature column(s) {', '.join(missing[:5])}: not compared"}, None
    train_ids, eval_ids = exact_matches(hf, row_hashes(ev, feature_cols))
    return {"n_rows": ev.num_rows, "exact_train_rows": int(len(train_ids)),
            "exact_eval_rows": int(len(np.unique(eval_ids))),
            "examples_exact": [{"row": int(i), "eval_row": int(j)}
                               for i, j in zip(train_ids[:max_examples], eval_ids[:max_examples])],
            "near_eval_rows": None, "examples_near": []}, eval_ids


EXACT_METHOD = "64-bit content hash of the feature columns (+ label inside the data)"


def exact_leakage_report(batches: Iterable[pa.RecordBatch], *, label_col: str, feature_cols: list[str],
                         evaluation: dict[str, pa.Table] | None = None, near_reason: str,
                         max_examples: int = 5) -> dict[str, Any]:
    """:func:`leakage_report`'s exact part over a table streamed as record batches, for a
    table too large to hold: exact duplicates, rows that share their features with a row
    of another label, and evaluation rows copied exactly (memory: two 8-byte hashes a row
    and one batch). Near duplicates need the whole feature matrix in one process: they are
    not searched, and ``near_not_run`` says why (``near_reason``)."""
    hf_parts, hl_parts = [], []
    for batch in batches:
        table = pa.Table.from_batches([batch])
        hf_parts.append(row_hashes(table, feature_cols))
        hl_parts.append(row_hashes(table, [*feature_cols, label_col]))
    empty = np.zeros(0, dtype=np.uint64)
    hf = np.concatenate(hf_parts) if hf_parts else empty
    hl = np.concatenate(hl_parts) if hl_parts else empty
    del hf_parts, hl_parts
    evals: dict[str, Any] = {}
    totals: dict[str, Any] = {"eval_exact_train_rows": 0, "eval_exact_eval_rows": 0, "eval_near_eval_rows": None}
    for name, ev in (evaluation or {}).items():
        evals[name], compared = _exact_against(hf, ev, feature_cols, max_examples)
        if compared is None:
            continue
        totals["eval_exact_train_rows"] += evals[name]["exact_train_rows"]
        totals["eval_exact_eval_rows"] += evals[name]["exact_eval_rows"]
    return {"n_rows": int(len(hf)), "ratio": None, "internal": _exact_internal(hf, hl, max_examples),
            "evaluation": evals, "totals": totals, "near_not_run": near_reason,
            "method": {"exact": EXACT_METHOD, "near": f"not searched: {near_reason}"}}


def leakage_report(data: pa.Table, *, label_col: str, feature_cols: list[str],
                   evaluation: dict[str, pa.Table] | None = None, representations: np.ndarray | None = None,
                   ratio: float = 0.05, max_examples: int = 5) -> dict[str, Any]:
    """Exact and near duplicates inside ``data`` and against named evaluation tables.

    Args:
        data: N training rows. label_col / feature_cols: the label and the features
            (what the screens read).
        evaluation: name -> evaluation table (needs the feature columns).
        representations: (N, d) row embeddings from ONE model (not the cross-validated
            probe's, whose rows come from different fold models); near duplicates inside
            the data are then also reported in that space.
        ratio: the near-duplicate rule's ratio (see module docstring).

    Returns a JSON-able dict::

        {"internal": {"exact": {...exact_duplicates, label excluded ids trimmed},
                      "conflicting_labels": {"n_groups", "n_rows", "examples"},
                      "near_features": {...near_duplicates}, "near_representations": {...} | None},
         "evaluation": {name: {"n_rows", "exact_train_rows", "exact_eval_rows", "near_eval_rows",
                               "examples_exact", "examples_near", "note"}},
         "totals": {"eval_exact_train_rows", "eval_exact_eval_rows", "eval_near_eval_rows"}}

    Near duplicates against evaluation sets use standardized raw features (scaled by
    the training data), because the probe cannot embed rows it was not given.
    """
    n = data.num_rows
    hf = row_hashes(data, feature_cols)
    hl = row_hashes(data, [*feature_cols, label_col])
    internal = _exact_internal(hf, hl, max_examples)
    x = feature_matrix(data, feature_cols)
    xs = standardize(x) if x is not None else None
    near_thr = None
    if xs is not None:
        nf = near_duplicates(xs, ratio=ratio, exclude_exact=hf, max_examples=max_examples)
        near_thr = nf.get("threshold_distance")
        nf["row_ids"] = nf["row_ids"][:1000]
        internal["near_features"] = nf
    if representations is not None and len(representations) == n:
        nr = near_duplicates(np.asarray(representations, dtype=np.float32), ratio=ratio, exclude_exact=hf,
                             max_examples=max_examples)
        nr["row_ids"] = nr["row_ids"][:1000]
        internal["near_representations"] = nr
    evals: dict[str, Any] = {}
    totals = {"eval_exact_train_rows": 0, "eval_exact_eval_rows": 0, "eval_near_eval_rows": 0}
    for name, ev in (evaluation or {}).items():
        entry, eval_ids = _exact_against(hf, ev, feature_cols, max_examples)
        if eval_ids is None:
            evals[name] = entry
            continue
        if xs is not None and near_thr is not None:
            xe = feature_matrix(ev, feature_cols)
            if xe is not None:
                es = standardize(xe, like=x)
                m = near_matches(es, xs, threshold_distance=near_thr, max_examples=len(es))
                exact_eval = set(int(j) for j in eval_ids)
                near = [e for e in m["examples"] if e["query"] not in exact_eval]
                entry["near_eval_rows"] = len(near)
                entry["examples_near"] = [{"eval_row": e["query"], "row": e["row"], "cosine": e["cosine"]}
                                          for e in near[:max_examples]]
                totals["eval_near_eval_rows"] += len(near)
        totals["eval_exact_train_rows"] += entry["exact_train_rows"]
        totals["eval_exact_eval_rows"] += entry["exact_eval_rows"]
        evals[name] = entry
    return {"n_rows": n, "ratio": ratio, "internal": internal, "evaluation": evals, "totals": totals,
            "method": {"exact": EXACT_METHOD,
                       "near": f"cosine distance < {ratio} x median nearest-neighbour distance, "
                               "on standardized raw features"
                               + (" (and on the given representations inside the data)"
                                  if representations is not None else "")}}
