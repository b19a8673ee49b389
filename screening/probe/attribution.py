"""The data-trained probe: one model fitted on every data row, as a poisoner's victim
would be, and what its training reveals about each row.

* TracIn self-influence (Pruthi et al. 2020) over the snapshots (``config.n_checkpoints``
  evenly spaced ones and :data:`EARLY_SNAPSHOTS`), on exact last-layer gradients:
  ``g_i = e_i (outer) h_i`` with ``e_i = p_i - onehot(y_i)`` (K) and ``h_i = [rep_i, 1]``
  (d + 1), so ``|g_i|^2 = |e_i|^2 |h_i|^2`` costs O(K + d);
* the final model's penultimate representations, where a learned trigger separates the
  poisoned rows of the target class (what activation clustering is defined on, Chen et
  al. 2018), and the same layer at :data:`SPECTRAL_SNAPSHOT` of training, before each
  class collapses to its mean (what the spectral signature reads, Tran et al. 2018);
* STRIP (Gao et al. 2019): every row's mean log-probability of its label when it is
  averaged with :data:`STRIP_PARTNERS` random other rows; a trigger keeps its label
  through the superposition, real features are diluted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._torch_utils import pick_device
from .training import fit_probes, snapshot_steps

#: Snapshots besides the evenly spaced TracIn checkpoints, early in training where the
#: gradients are largest: they refine TracIn's quadrature of the training run.
EARLY_SNAPSHOTS = (0.02, 0.05, 0.1, 0.15)
#: The fraction of training at which the representation the spectral signature reads is
#: taken: 5 % of the one-cycle schedule (40 of the default 800 steps, in the warm-up).
#: Later the probe enters its terminal phase, where each class's representations collapse
#: towards their mean (neural collapse, Papyan, Han, Donoho 2020) and the within-class
#: direction a trigger adds fades: on 11 backdoor cases the spectral signature of the
#: final representation ranked the poison at AUROC 0.50-0.91, of this one at 0.59-0.998,
#: as the textbook signature on an independent victim MLP does (docs/screens.md).
SPECTRAL_SNAPSHOT = 0.05
#: Random partner rows each row is superposed with for STRIP.
STRIP_PARTNERS = 8


@dataclass
class DataTrainedProbe:
    """self_influence: (N,) float64 TracIn self-influence.
    snapshot_fractions: (S,) the fractions of training the snapshots were taken at.
    representations: (N, d) float32, the final model's penultimate layer.
    n_checkpoints: TracIn checkpoints used.
    strip: (N,) float64 mean log p(label) of the row superposed with random other rows."""

    self_influence: np.ndarray
    snapshot_fractions: np.ndarray
    representations: np.ndarray
    n_checkpoints: int
    strip: np.ndarray | None = None
    early_representations: np.ndarray | None = None  # at SPECTRAL_SNAPSHOT of training
    reference_representations: np.ndarray | None = None  # (M, d): the trusted rows, final model


def _batch_factors(predict_fn, X, y, idx=None):
    p, h = predict_fn(0, X, idx)
    yy = y if idx is None else y[idx]
    e = p.astype(np.float32)
    e[np.arange(len(yy)), yy] -= 1.0
    return e, np.concatenate([h, np.ones((len(h), 1), np.float32)], axis=1)


def data_trained_probe(X, y, *, kind, n_classes, config, device, batch_size: int = 65536,
                       X_ref=None) -> DataTrainedProbe:
    """Fit one probe on all rows of X (N, ...) and read it at every snapshot, streamed in
    batches (O(batch) extra memory besides the (N, d) representations); the trusted rows
    ``X_ref`` (M, ...), never trained on, are read by the final model."""
    n = len(y)
    tracin = tuple((i + 1) / config.n_checkpoints for i in range(config.n_checkpoints))
    fractions = tuple(sorted(set(EARLY_SNAPSHOTS) | set(tracin)))
    predict_fn, snaps, lrs, load = fit_probes(X, y, [np.arange(n)], kind=kind, n_classes=n_classes,
                                              config=config, seed=config.seed * 1000 + 900, device=device,
                                              snapshots=fractions)
    total = len(lrs)
    steps = snapshot_steps(fractions, total)
    # TracIn approximates the sum over training of lr_t |g_t|^2: every snapshot stands for
    # the interval it closes, weighted by the sum of that interval's learning rates (the
    # early snapshots refine the quadrature where gradients are largest)
    weight = {s: float(lrs[prev:s].sum()) for prev, s in zip([0] + steps[:-1], steps)}
    influence = np.zeros(n)
    reps = np.zeros((n, config.rep_dim), dtype=np.float32)
    early = np.zeros((n, config.rep_dim), dtype=np.float32)
    early_step = snapshot_steps((SPECTRAL_SNAPSHOT,), total)[0]
    for k, (step, state) in enumerate(snaps):
        load(state)
        last = k == len(snaps) - 1
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(n, start + batch_size))
            e, h = _batch_factors(predict_fn, X, y, idx)
            if step in weight:
                influence[idx] += influence_scores(e[None], h[None], lrs=np.array([weight[step]]), device=device)
            if step == early_step:
                early[idx] = h[:, :-1]
            if last:
                reps[idx] = h[:, :-1]
    done = np.array([s for s, _ in snaps], dtype=np.float64)
    strip = strip_scores(predict_fn, X, y, seed=config.seed, batch_size=batch_size)
    ref_reps = None
    if X_ref is not None and len(X_ref):
        ref_reps = np.concatenate([predict_fn(0, X_ref[s:s + batch_size])[1]
                                   for s in range(0, len(X_ref), batch_size)]).astype(np.float32, copy=False)
    return DataTrainedProbe(influence, done / max(total, 1), reps, len(steps), strip, early, ref_reps)


def strip_scores(predict_fn, X, y, *, seed: int, batch_size: int) -> np.ndarray:
    """STRIP score of every row under the loaded (final) model: mean over
    :data:`STRIP_PARTNERS` seeded random partners j of ``log p(y_i | (x_i + x_j) / 2)``."""
    n = len(y)
    rng = np.random.default_rng(seed + 4242)
    out = np.zeros(n)
    rows = max(1, batch_size // STRIP_PARTNERS)
    for start in range(0, n, rows):
        idx = np.arange(start, min(n, start + rows))
        partners = rng.integers(0, n, size=(len(idx), STRIP_PARTNERS))
        mixed = (X[idx][:, None] + X[partners]) * np.float32(0.5)  # (b, S, ...)
        p, _ = predict_fn(0, mixed.reshape((-1,) + X.shape[1:]))
        lab = np.repeat(y[idx], STRIP_PARTNERS)
        logp = np.log(np.maximum(p[np.arange(len(lab)), lab], 1e-30)).reshape(len(idx), STRIP_PARTNERS)
        out[idx] = logp.mean(axis=1)
    return out


def influence_scores(
    train_err: np.ndarray,
    train_rep: np.ndarray,
    *,
    lrs: np.ndarray,
    reference_err: np.ndarray | None = None,
    reference_rep: np.ndarray | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 65536,
) -> np.ndarray:
    """TracIn score per training row.

    Args:
        train_err: (C, N, K) ``p - onehot(y)`` of the N rows at C checkpoints.
        train_rep: (C, N, D) penultimate representation with a trailing 1 (bias), same rows.
        lrs: (C,) learning rate of each checkpoint's interval.
        reference_err, reference_rep: (C, M, K) and (C, M, D) for M trusted rows, or None
            for self-influence.
        device: torch device, ``None`` = CUDA when available.
        batch_size: rows per chunk.

    Returns:
        (N,) float64, higher = more suspicious.
    """
    device = torch.device(device) if device is not None else pick_device()
    C, N, _ = train_err.shape
    out = torch.zeros(N, dtype=torch.float64, device=device)
    for c in range(C):
        lr = float(lrs[c])
        G = None
        if reference_err is not None:
            re = torch.from_numpy(np.ascontiguousarray(reference_err[c])).to(device).double()
            rr = torch.from_numpy(np.ascontiguousarray(reference_rep[c])).to(device).double()
            G = re.T @ rr / re.shape[0]  # (K, D) mean reference gradient
        for start in range(0, N, batch_size):
            e = torch.from_numpy(np.ascontiguousarray(train_err[c, start:start + batch_size])).to(device).double()
            h = torch.from_numpy(np.ascontiguousarray(train_rep[c, start:start + batch_size])).to(device).double()
            if G is None:
                out[start:start + len(e)] += lr * (e * e).sum(1) * (h * h).sum(1)
            else:
                out[start:start + len(e)] -= lr * ((e @ G) * h).sum(1)
    return out.cpu().numpy()
