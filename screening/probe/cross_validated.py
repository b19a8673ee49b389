"""The cross-validated probe: k-fold, every row scored by a model that never trained on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import out_of_fold, stratified_folds
from .training import fit_probes


@dataclass
class CrossValidatedProbe:
    pred_probs: np.ndarray  # (N, K) float32, out-of-sample
    representations: np.ndarray | None  # (N, d) float32, each row from the model that did not see it
    folds: np.ndarray  # (N,)
    reference_pred_probs: np.ndarray | None = None  # (M, K) reference rows, average of the fold models
    reference_representations: np.ndarray | None = None  # (M, d) float32, same
    predict_fn: object = None  # predict_fn(f, Z, idx) of the fold models (see fit_probes)
    rep_dim: int = 0

    def compute_representations(self, X, batch_size: int = 8192) -> np.ndarray:
        """(N, d) float32 out-of-fold representations of the data rows X, from the fold
        models (for a probe fitted with ``with_representations=False``; sets and returns
        ``self.representations``)."""
        reps = np.zeros((len(self.folds), self.rep_dim), dtype=np.float32)
        out_of_fold(self.predict_fn, X, self.folds, batch_size, reps=reps)
        self.representations = reps
        return reps



def cross_validated_probe(X, y, *, kind, n_classes, config, device, X_ref=None, progress=None,
                          with_representations: bool = True) -> CrossValidatedProbe:
    """k-fold probe on (X (N, ...), y (N,)); reference rows (never trained on) are scored by
    fold model ``j % n_folds`` for reference row j, so they are out-of-sample too.

    ``with_representations=False`` leaves the (N, d) representations to
    :meth:`CrossValidatedProbe.compute_representations` (same values, computed later:
    ``screen_table`` does so once the anchored probe's arrays are freed, which keeps the
    two from being held at once)."""
    folds = stratified_folds(y, config.n_folds, config.seed)
    sets = [np.flatnonzero(folds != f) for f in range(config.n_folds)]
    predict_fn, _, _, _ = fit_probes(X, y, sets, kind=kind, n_classes=n_classes, config=config,
                                 seed=config.seed * 1000 + 1, device=device)
    del sets
    probs = np.zeros((len(y), n_classes), dtype=np.float32)
    reps = np.zeros((len(y), config.rep_dim), dtype=np.float32) if with_representations else None
    out_of_fold(predict_fn, X, folds, config.inference_batch_size, probs=probs, reps=reps)
    rp = rr = None
    if X_ref is not None:
        rp = np.zeros((len(X_ref), n_classes), dtype=np.float32)
        rr = np.zeros((len(X_ref), config.rep_dim), dtype=np.float32)
        rf = np.arange(len(X_ref)) % config.n_folds
        for f in range(config.n_folds):
            te = np.flatnonzero(rf == f)
            rp[te], rr[te] = predict_fn(f, X_ref, te)
    if progress:
        progress(f"cross-validated probe: {config.n_folds} folds done")
    return CrossValidatedProbe(probs, reps, folds, rp, rr, predict_fn=predict_fn, rep_dim=config.rep_dim)

