"""Fold layout and the label margin, shared by the probes."""

from __future__ import annotations

import numpy as np


def stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index (n,) for every row, stratified by class, seeded."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        folds[idx] = np.arange(len(idx)) % n_folds
    return folds



def label_margin(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """``log p(label) - log max_{k != label} p(k)`` per row, (N,) float64.

    Positive when the probe prefers the given label, negative when it prefers another
    class; its size is how strongly. Scale-free (a log-odds), comparable across classes.
    """
    labels = np.asarray(labels)
    out = np.empty(len(labels))
    tiny = 1e-300
    for start in range(0, len(labels), 1 << 16):  # chunks: no (N, K) float64 copy
        lab = labels[start:start + (1 << 16)]
        rows = np.arange(len(lab))
        p = np.array(pred_probs[start:start + (1 << 16)], dtype=np.float64)  # a copy: edited below
        given = p[rows, lab].copy()
        p[rows, lab] = -1.0
        other = p.max(axis=1)
        out[start:start + len(lab)] = np.log(np.maximum(given, tiny)) - np.log(np.maximum(other, tiny))
    return out



def out_of_fold(predict_fn, X, folds, batch_size, probs) -> None:
    """Fill ``probs`` (row i from the model of fold ``folds[i]``, which never trained on
    it), chunk by chunk: no fold-sized float64 temporaries."""
    step = max(1, int(batch_size))
    for f in np.unique(folds):
        te = np.flatnonzero(folds == f)
        for start in range(0, len(te), step):
            idx = te[start:start + step]
            probs[idx], _ = predict_fn(int(f), X, idx)

