"""Version diff statistics: what changed between two tables (two versions of a dataset).

Definitions (rows have no declared key, so identity is content):

* A row's identity is the content hash of every column the two versions share
  (:func:`checks.leakage.row_hashes`), with duplicates told apart by occurrence
  (the k-th copy of a row in A matches the k-th copy in B).
* **changed** rows: a row of B and a row of A whose feature values (all shared columns
  except the label) are identical but whose labels differ: relabelled rows.
* **added** / **removed**: the other rows of B not in A / of A not in B. A row whose
  features were edited is therefore one removal plus one addition, the honest reading
  when there is no key.
* **schema**: columns added, removed or retyped (from the recorded schemas).
* **label shift**: per-class counts in A and B and the total variation distance
  ``0.5 * sum |p_A - p_B|`` (0 = same distribution, 1 = disjoint).
* **feature drift**, per numeric column: the population stability index over ten
  quantile bins of A (PSI < 0.1 stable, 0.1-0.25 moderate, > 0.25 major, the usual
  reading) and the two-sample Kolmogorov-Smirnov statistic. At most ``max_drift_rows``
  values per column are used (seeded sample), so memory stays bounded.
* **newly flagged**: B's rows flagged by B's screens that arrived with B (added or changed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ._json import python_scalar
from ._types import is_number_like

MAX_EXAMPLES = 10


def _occurrence_keys(h: np.ndarray) -> np.ndarray:
    """(N,) uint64 keys of (hash, k) for the k-th occurrence (in row order) of each hash."""
    from .leakage import mix64

    order = np.argsort(h, kind="stable")
    sh = h[order]
    starts = np.ones(len(sh), dtype=bool)
    starts[1:] = sh[1:] != sh[:-1]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(sh)), 0))
    occ = np.empty(len(h), dtype=np.uint64)
    occ[order] = (np.arange(len(sh)) - group_start).astype(np.uint64)
    with np.errstate(over="ignore"):
        return mix64(h ^ mix64(occ + np.uint64(1)))


def _in(keys: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Boolean mask: keys present in ``other``."""
    return np.isin(keys, other)


def _matches(hash_b: np.ndarray, hash_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair rows of B with rows of A of equal hash, occurrence by occurrence: (B ids, A ids)."""
    from .leakage import exact_matches

    return exact_matches(_occurrence_keys(hash_b), _occurrence_keys(hash_a))


def diff_tables(a: pa.Table, b: pa.Table, *, label_col: str | None = None,
                schema_a: list[dict] | None = None, schema_b: list[dict] | None = None,
                flagged_b: list[int] | np.ndarray | None = None, max_drift_rows: int = 200_000,
                max_examples: int = MAX_EXAMPLES, seed: int = 0) -> dict[str, Any]:
    """The diff of table ``b`` against table ``a`` (see the module docstring).

    Row ids are positions in each table (as in the screens' ``scores.parquet``).
    Returns a JSON-able dict: ``rows`` (n_a, n_b, unchanged, added, removed, changed and
    examples), ``schema``, ``labels``, ``drift`` and ``newly_flagged`` (None when
    ``flagged_b`` is None).
    """
    from .leakage import row_hashes

    shared = [c for c in a.column_names if c in b.column_names]
    feats = [c for c in shared if c != label_col]
    ha, hb = row_hashes(a, shared), row_hashes(b, shared)
    ka, kb = _occurrence_keys(ha), _occurrence_keys(hb)
    b_new = ~_in(kb, ka)
    a_gone = ~_in(ka, kb)
    changed_b = np.array([], dtype=np.int64)
    changed_a = np.array([], dtype=np.int64)
    if label_col and label_col in shared and feats:
        fa, fb = row_hashes(a, feats), row_hashes(b, feats)
        ib_new, ia_gone = np.flatnonzero(b_new), np.flatnonzero(a_gone)
        pb, pa_ = _matches(fb[ib_new], fa[ia_gone])
        changed_b, changed_a = ib_new[pb], ia_gone[pa_]
    added = np.setdiff1d(np.flatnonzero(b_new), changed_b)
    removed = np.setdiff1d(np.flatnonzero(a_gone), changed_a)
    label_a = a.column(label_col).to_pylist() if label_col in a.column_names else None
    label_b = b.column(label_col).to_pylist() if label_col in b.column_names else None
    rows = {
        "n_a": a.num_rows, "n_b": b.num_rows,
        "unchanged": int(b.num_rows - b_new.sum()),
        "added": int(len(added)), "removed": int(len(removed)), "changed": int(len(changed_b)),
        "identity": f"content hash of {len(shared)} shared column(s); changed = same features, other label",
        "examples": {
            "added": [int(i) for i in added[:max_examples]],
            "removed": [int(i) for i in removed[:max_examples]],
            "changed": [{"row_b": int(i), "row_a": int(j),
                         "label_a": python_scalar(label_a[j]) if label_a else None,
                         "label_b": python_scalar(label_b[i]) if label_b else None}
                        for i, j in zip(changed_b[:max_examples], changed_a[:max_examples])],
        },
    }
    out = {"rows": rows, "schema": schema_changes(schema_a or _schema(a), schema_b or _schema(b)),
           "labels": label_shift(label_a, label_b) if label_a is not None and label_b is not None else None,
           "drift": feature_drift(a, b, feats, max_rows=max_drift_rows, seed=seed),
           "newly_flagged": None}
    if flagged_b is not None:
        flagged = np.asarray(sorted(int(i) for i in flagged_b), dtype=np.int64)
        arrived = np.union1d(added, changed_b)
        new = np.intersect1d(flagged, arrived)
        out["newly_flagged"] = {"n_flagged_b": int(len(flagged)), "arrived_with_b": int(len(new)),
                                "already_in_a": int(len(flagged) - len(new)),
                                "examples": [int(i) for i in new[:max_examples]]}
    return out


def _schema(t: pa.Table) -> list[dict]:
    return [{"name": f.name, "type": str(f.type)} for f in t.schema]


def schema_changes(schema_a: list[dict], schema_b: list[dict]) -> dict[str, Any]:
    ta = {f["name"]: f["type"] for f in schema_a}
    tb = {f["name"]: f["type"] for f in schema_b}
    return {"added": [n for n in tb if n not in ta], "removed": [n for n in ta if n not in tb],
            "retyped": [{"column": n, "from": ta[n], "to": tb[n]} for n in ta if n in tb and ta[n] != tb[n]],
            "changed": any(n not in ta for n in tb) or any(n not in tb or ta[n] != tb[n] for n in ta)}


def label_shift(label_a: list, label_b: list) -> dict[str, Any]:
    from collections import Counter

    ca, cb = Counter(map(str, label_a)), Counter(map(str, label_b))
    classes = sorted(set(ca) | set(cb))
    na, nb = max(len(label_a), 1), max(len(label_b), 1)
    tvd = 0.5 * sum(abs(ca[c] / na - cb[c] / nb) for c in classes)
    return {"counts_a": {c: ca[c] for c in classes}, "counts_b": {c: cb[c] for c in classes},
            "new_classes": [c for c in classes if c not in ca],
            "dropped_classes": [c for c in classes if c not in cb],
            "total_variation": round(float(tvd), 6)}


def feature_drift(a: pa.Table, b: pa.Table, columns: list[str], *, max_rows: int = 200_000,
                  bins: int = 10, seed: int = 0) -> dict[str, Any]:
    """Per numeric column: PSI (quantile bins of A) and the KS statistic; largest PSI first."""
    rng = np.random.default_rng(seed)
    per: dict[str, dict[str, float]] = {}
    for c in columns:
        ta, tb = a.schema.field(c).type, b.schema.field(c).type
        if not (is_number_like(ta) and is_number_like(tb)):
            continue
        xa = _finite(a.column(c), rng, max_rows)
        xb = _finite(b.column(c), rng, max_rows)
        if not len(xa) or not len(xb):
            continue
        per[c] = {"psi": round(psi(xa, xb, bins=bins), 6), "ks": round(ks_statistic(xa, xb), 6),
                  "mean_a": float(xa.mean()), "mean_b": float(xb.mean())}
    ranked = sorted(per, key=lambda k: -per[k]["psi"])
    return {"columns": per, "top": ranked[:MAX_EXAMPLES],
            "n_major": sum(1 for v in per.values() if v["psi"] > 0.25),
            "n_moderate": sum(1 for v in per.values() if 0.1 < v["psi"] <= 0.25),
            "max_psi": per[ranked[0]]["psi"] if ranked else None}


def _finite(col: pa.ChunkedArray, rng, max_rows: int) -> np.ndarray:
    x = col.to_numpy(zero_copy_only=False).astype(np.float64)
    x = x[np.isfinite(x)]
    if len(x) > max_rows:
        x = rng.choice(x, size=max_rows, replace=False)
    return x


def psi(xa: np.ndarray, xb: np.ndarray, *, bins: int = 10, floor: float = 1e-4) -> float:
    """Population stability index of ``xb`` against ``xa`` over quantile bins of ``xa``."""
    edges = np.unique(np.quantile(xa, np.linspace(0, 1, bins + 1)[1:-1]))
    pa_ = np.bincount(np.searchsorted(edges, xa, side="right"), minlength=len(edges) + 1) / len(xa)
    pb = np.bincount(np.searchsorted(edges, xb, side="right"), minlength=len(edges) + 1) / len(xb)
    pa_, pb = np.maximum(pa_, floor), np.maximum(pb, floor)
    return float(np.sum((pb - pa_) * np.log(pb / pa_)))


def ks_statistic(xa: np.ndarray, xb: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs.

    :func:`scipy.stats.ks_2samp`'s statistic; the asymptotic method because only the
    statistic is used (the exact p-value would cost time on large samples for nothing).
    """
    from scipy.stats import ks_2samp

    return float(ks_2samp(xa, xb, method="asymp").statistic)
