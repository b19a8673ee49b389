"""Canary self-test: plant known poisons in a copy of the data and measure what the screens catch.

A screen's recall on a paper's benchmark says little about its recall on *this* data.
So every screening run appends a small, seeded, recorded set of synthetic poisons
(canaries) after the real rows, screens real + canary rows together (one probe fit),
and reads the screens' verdicts on the canaries back out.

Canary kinds (all dirty-label, the kind the label-consistency screen exists for):

``label_flip``
    a copy of a real row whose label is changed to another class, chosen at random.
``trigger``
    a copy of a real row from a class other than the target, with a trigger written
    into it, relabelled to one target class (BadNets-style). For an image-like list
    column the trigger is a square patch in the bottom-right corner set to the
    column's largest observed value; for a table it is a shifted pattern on a few
    numeric features: each set to its column's largest observed value, the features
    chosen where that is furthest from the typical value (in robust standard
    deviations), so the pattern stands out on any data without data-specific constants.

A run plants only the kinds it claims to catch (:func:`promised_kinds`), so the canary
floor tests the promise the run makes: with a trusted reference both kinds; without one,
label flips only. Without trusted rows the verdict is cleanlab's label-issue filter plus
the reference-free backdoor screen, which does not claim a trigger that the model learns
from the data itself (docs/verdict.md, "Without a reference"). Measured without a
reference on seven ordinary tables (wine, wine with a string label and a categorical
column, breast cancer, iris, digits, the bundled example, a 2,402-row mixed table; canary
seeds 0-2), it caught 86 to 100 % of the label flips in every run, but the trigger
canaries (1 % of the rows, one class) whole in only 4 of 21 runs and 0 to 3 of 7 to 18 in
the others (none of 9 to 54 at 3 % of the rows): a trigger canary there re-measures a gap
the run already declares, and held most first imports as "screens not trustworthy"
(issue 25). That gap is the policy's limited-assurance rule for a run without a reference.

Nothing here knows a data set: sizes are fractions of N with floors and caps, the
trigger is derived from the data's own ranges, everything is seeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from .encoding import is_list, is_numeric, jsonable
from .screens import canary_screens

KINDS = ("label_flip", "trigger")
#: Why a run without a trusted reference plants no trigger canaries (recorded in ``notes``).
NO_REFERENCE_NOTE = ("label flips only: without a trusted reference the screens do not claim to catch a "
                     "trigger that a model learns from the data itself, so trigger canaries are planted "
                     "only in runs with a reference")
#: The score columns the self-test measures: the registry's (``Screen.canary``).
SCORE_COLUMNS = canary_screens()


@dataclass
class CanarySet:
    """Canary rows to append after the real rows.

    table: pyarrow.Table, the canary rows (same schema as the data), M rows.
    kinds: (M,) str, the canary kind of each row (one of :data:`KINDS`).
    source_rows: (M,) int64, the real row each canary was copied from.
    original_labels, labels: length-M lists, the label before and after planting.
    target: the label trigger canaries were relabelled to (None if no trigger canaries).
    trigger: description of the trigger (JSON-able), or None.
    seed: the seed that reproduces the set.
    """

    table: pa.Table
    kinds: np.ndarray
    source_rows: np.ndarray
    original_labels: list
    labels: list
    target: Any = None
    trigger: dict[str, Any] | None = None
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.table.num_rows

    def describe(self) -> dict[str, Any]:
        """JSON-able record of the planted set (enough to reproduce and audit it); ``kinds``:
        the kinds planted (what the floor is applied to), ``notes``: why any is missing."""
        counts = {k: int((self.kinds == k).sum()) for k in KINDS}
        return {
            "n_canaries": len(self),
            "kinds": [k for k in KINDS if counts[k]],
            "counts": counts,
            "target": jsonable(self.target),
            "trigger": self.trigger,
            "seed": self.seed,
            "source_rows": [int(i) for i in self.source_rows],
            "notes": self.notes,
        }


def promised_kinds(*, with_reference: bool) -> tuple[str, ...]:
    """The canary kinds a run claims to catch, so the kinds it plants (see the module docstring)."""
    return KINDS if with_reference else ("label_flip",)


def _is_numeric(t: pa.DataType) -> bool:
    """Integer or floating (a decimal column is left alone: a canary value need not fit it)."""
    return is_numeric(t) and not pa.types.is_decimal(t)


def canary_count(n_rows: int, *, fraction: float = 0.02, min_per_kind: int = 10,
                 max_fraction: float = 0.10, n_kinds: int = 2) -> int:
    """Canaries per kind: ``fraction`` of N, at least ``min_per_kind``, at most ``max_fraction`` of N in all."""
    want = max(min_per_kind, math.ceil(fraction * n_rows / n_kinds))
    cap = max(1, int(max_fraction * n_rows) // n_kinds)
    return max(1, min(want, cap))


def plant_canaries(data: pa.Table, *, label_col: str, feature_cols: list[str] | None = None,
                   fraction: float = 0.02, min_per_kind: int = 10, max_fraction: float = 0.10,
                   n_trigger_features: int | None = None, patch_fraction: float = 0.25,
                   with_reference: bool = True, seed: int = 0) -> CanarySet:
    """Plant canaries into a copy of ``data`` and return them (the data itself is not touched).

    Args:
        data: pyarrow.Table, N real rows, with the label column ``label_col``.
        label_col: the class-label column.
        feature_cols: the columns a trigger may be written into; default every numeric
            column except the label, or the single list column (image / embedding).
        fraction: canaries per kind as a fraction of N (``min_per_kind`` floor and
            ``max_fraction`` of N cap over all kinds).
        n_trigger_features: features in the tabular trigger pattern; default
            ``max(2, round(sqrt(D) / 2))`` of D candidate features.
        patch_fraction: side of the image patch as a fraction of the image side.
        with_reference: whether the run screens against trusted rows; without them only
            label flips are planted (:func:`promised_kinds`), the same ones as with them.
        seed: seeds every choice.

    Returns:
        :class:`CanarySet` whose ``table`` has the same schema as ``data``. A data set
        with fewer than two classes, or without a usable feature, gets only the kinds
        that can be planted (the reason is in ``notes``).
    """
    rng = np.random.default_rng(seed)
    n = data.num_rows
    labels = data.column(label_col).to_pylist()
    classes = sorted(set(labels), key=repr)
    notes: list[str] = []
    if len(classes) < 2 or n < 2:
        return CanarySet(data.slice(0, 0), np.array([], dtype=object), np.array([], dtype=np.int64),
                         [], [], seed=seed, notes=["fewer than two classes: no canaries planted"])
    per_kind = canary_count(n, fraction=fraction, min_per_kind=min_per_kind, max_fraction=max_fraction)
    labels_arr = np.asarray(labels, dtype=object)

    # Label flips: any row, any other class.
    flip_src = np.sort(rng.choice(n, size=min(per_kind, n), replace=False))
    flip_new = []
    for i in flip_src:
        others = [c for c in classes if c != labels_arr[i]]
        flip_new.append(others[rng.integers(len(others))])

    # Trigger: rows from classes other than one target class, relabelled to it.
    target, trigger_writer, trigger_desc = None, None, None
    trig_src = np.array([], dtype=np.int64)
    if "trigger" not in promised_kinds(with_reference=with_reference):
        notes.append(NO_REFERENCE_NOTE)
    else:
        trigger_writer, trigger_desc = _trigger_writer(data, label_col, feature_cols, n_trigger_features,
                                                       patch_fraction, rng)
        if trigger_writer is None:
            notes.append(trigger_desc["why"])
            trigger_desc = None
        else:
            target = classes[rng.integers(len(classes))]
            candidates = np.flatnonzero(labels_arr != target)
            trig_src = np.sort(rng.choice(candidates, size=min(per_kind, len(candidates)), replace=False))

    src = np.concatenate([flip_src, trig_src]).astype(np.int64)
    kinds = np.array(["label_flip"] * len(flip_src) + ["trigger"] * len(trig_src), dtype=object)
    canaries = data.take(pa.array(src, type=pa.int64()))
    if len(trig_src):
        canaries = trigger_writer(canaries, np.arange(len(flip_src), len(src)))
    new_labels = list(flip_new) + [target] * len(trig_src)
    label_idx = canaries.schema.get_field_index(label_col)
    label_type = canaries.schema.field(label_col).type
    canaries = canaries.set_column(label_idx, canaries.schema.field(label_col),
                                   pa.array([jsonable(v) for v in new_labels], type=label_type))
    return CanarySet(canaries.combine_chunks(), kinds, src, [jsonable(labels_arr[i]) for i in src],
                     [jsonable(v) for v in new_labels], target=jsonable(target), trigger=trigger_desc,
                     seed=seed, notes=notes)


def _trigger_writer(data: pa.Table, label_col: str, feature_cols, n_features, patch_fraction, rng):
    """(function(table, row_positions) -> table, description) or (None, {"why": ...})."""
    schema = data.schema
    cols = feature_cols if feature_cols is not None else [
        f.name for f in schema if f.name != label_col and (_is_numeric(f.type) or is_list(f.type))]
    lists = [c for c in cols if is_list(schema.field(c).type)]
    numeric = [c for c in cols if _is_numeric(schema.field(c).type)]
    if len(lists) == 1 and not numeric:
        return _patch_writer(data, lists[0], patch_fraction)
    if not numeric:
        return None, {"why": "no numeric feature column to write a trigger into: label flips only"}
    # Shift each chosen feature to its largest observed value. Chosen: features whose typical
    # value sits at the bottom of their range (median far from the max, relative to the
    # range), graded ones (more distinct values) first, so the pattern is a visible shift.
    stats = []
    for c in numeric:
        x = data.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
        x = x[np.isfinite(x)]
        if len(x) > 100_000:
            x = rng.choice(x, size=100_000, replace=False)
        if not len(x):
            continue
        lo, med, hi = np.min(x), np.median(x), np.max(x)
        if hi <= med:
            continue
        position = round(float((hi - med) / (hi - lo)), 2)
        stats.append((c, position, len(np.unique(x)), float(hi)))
    if not stats:
        return None, {"why": "every numeric feature is constant: label flips only"}
    k = n_features or max(2, round(math.sqrt(len(numeric)) / 2))
    k = min(k, len(stats))
    order = [(c, hi) for c, _, _, hi in sorted(stats, key=lambda s: (-s[1], -s[2], s[0]))[:k]]
    chosen = dict(order)

    def write(table: pa.Table, rows: np.ndarray) -> pa.Table:
        for c, hi in chosen.items():
            i = table.schema.get_field_index(c)
            typ = table.schema.field(c).type
            vals = table.column(c).to_numpy(zero_copy_only=False).astype(np.float64).copy()
            vals[rows] = hi
            arr = pa.array(vals).cast(typ, safe=False)
            table = table.set_column(i, table.schema.field(c), arr)
        return table

    return write, {"kind": "shifted feature pattern", "features": {c: jsonable(v) for c, v in chosen.items()}}


def _patch_writer(data: pa.Table, col: str, patch_fraction: float):
    first = data.column(col).slice(0, 1).to_pylist()[0]
    arr0 = np.asarray(first, dtype=np.float64)
    length = arr0.size
    side = math.isqrt(length)
    if arr0.ndim == 1 and side * side != length:
        return None, {"why": f"list column {col!r} is not image-like (length {length} is not square): "
                             "label flips only"}
    h, w = (arr0.shape if arr0.ndim == 2 else (side, side))
    p = max(1, round(patch_fraction * min(h, w)))
    flat = np.asarray(data.column(col).to_pylist(), dtype=np.float64).reshape(data.num_rows, -1)
    hi = float(np.nanmax(flat))

    def write(table: pa.Table, rows: np.ndarray) -> pa.Table:
        vals = np.asarray(table.column(col).to_pylist(), dtype=np.float64)
        shape = vals.shape
        img = vals.reshape(len(vals), h, w)
        img[rows, h - p:, w - p:] = hi
        i = table.schema.get_field_index(col)
        typ = table.schema.field(col).type
        out = img.reshape(shape).tolist()
        return table.set_column(i, table.schema.field(col), pa.array(out).cast(typ, safe=False))

    return write, {"kind": "image patch", "column": col, "patch": [p, p], "corner": "bottom-right",
                   "value": hi}


def canary_recall(scores, kinds: np.ndarray, *, n_real: int,
                  screen_budgets: dict[str, int] | None = None) -> dict[str, Any]:
    """How many canaries the screens caught.

    Args:
        scores: DataFrame of ``screen_table`` scores over N real rows followed by the
            M canary rows (``flagged`` plus the per-screen score columns).
        kinds: (M,) canary kinds.
        n_real: N, the number of real rows before the canaries.
        screen_budgets: per screen, how many rows that screen flagged (from the
            screening summary); recall per screen is then measured at that budget, the
            top-``budget`` rows by the screen's score over all rows.

    Returns:
        ``{"flagged": {"recall", "caught", "n", "per_kind": {kind: {...}}},
        "screens": {name: {"recall_at_budget", "budget", "auroc", "per_kind"}}}``.
        ``auroc`` is the probability that a canary outscores a real row (real rows may
        hold real poisons, so it is a slight underestimate); it needs no threshold.
    """
    kinds = np.asarray(kinds, dtype=object)
    m = len(kinds)
    flagged = scores["flagged"].to_numpy(dtype=bool)
    canary = flagged[n_real:n_real + m]
    out: dict[str, Any] = {"flagged": _recall_block(canary, kinds), "screens": {}}
    for name in SCORE_COLUMNS:
        if name not in scores.columns:
            continue
        s = scores[name].to_numpy(dtype=np.float64)
        s = np.where(np.isfinite(s), s, -np.inf)
        entry: dict[str, Any] = {"auroc": _auroc(s[n_real:n_real + m], s[:n_real])}
        budget = (screen_budgets or {}).get(name)
        if budget is not None:
            top = np.zeros(len(s), dtype=bool)
            if budget > 0:
                top[np.argsort(-s, kind="stable")[:int(budget)]] = True
            block = _recall_block(top[n_real:n_real + m], kinds)
            entry.update({"budget": int(budget), "recall_at_budget": block["recall"],
                          "per_kind": block["per_kind"]})
        out["screens"][name] = entry
    return out


def _recall_block(caught: np.ndarray, kinds: np.ndarray) -> dict[str, Any]:
    n = len(caught)
    per_kind = {}
    for k in KINDS:
        sel = kinds == k
        if sel.any():
            per_kind[k] = {"n": int(sel.sum()), "caught": int(caught[sel].sum()),
                           "recall": float(caught[sel].mean())}
    return {"n": n, "caught": int(caught.sum()), "recall": float(caught.mean()) if n else None,
            "per_kind": per_kind}


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    """AUROC of the canaries' scores against the real rows' (ties count half); None when
    either side is empty."""
    if not len(pos) or not len(neg):
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.concatenate([pos, neg])))
