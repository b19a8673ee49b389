"""The cross-validated probe: k-fold, every row scored by a model that never trained on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import out_of_fold, stratified_folds
from .training import fit_probes


@dataclass
class CrossValidatedProbe:
    """pred_probs: (N, K) float32, each row from the fold model that never trained on it;
    folds: (N,) the fold of each row; reference_pred_probs: (M, K) float32, reference row j
    scored by fold model ``j % n_folds`` (None without a reference)."""

    pred_probs: np.ndarray
    folds: np.ndarray
    reference_pred_probs: np.ndarray | None = None


def cross_validated_probe(X, y, *, kind, n_classes, config, device, X_ref=None, progress=None) -> CrossValidatedProbe:
    """k-fold probe on (X (N, ...), y (N,)): out-of-fold pred_probs of the data rows and,
    with ``X_ref``, of the reference rows (never trained on, so out-of-sample too)."""
    folds = stratified_folds(y, config.n_folds, config.seed)
    sets = [np.flatnonzero(folds != f) for f in range(config.n_folds)]
    predict_fn, _, _, _ = fit_probes(X, y, sets, kind=kind, n_classes=n_classes, config=config,
                                     seed=config.seed * 1000 + 1, device=device)
    del sets
    probs = np.zeros((len(y), n_classes), dtype=np.float32)
    out_of_fold(predict_fn, X, folds, config.inference_batch_size, probs)
    rp = None
    if X_ref is not None:
        rp = np.zeros((len(X_ref), n_classes), dtype=np.float32)
        rf = np.arange(len(X_ref)) % config.n_folds
        for f in range(config.n_folds):
            te = np.flatnonzero(rf == f)
            rp[te], _ = predict_fn(f, X_ref, te)
    if progress:
        progress(f"cross-validated probe: {config.n_folds} folds done")
    return CrossValidatedProbe(probs, folds, rp)
