"""Attribution: TracIn influence of every data row, from one probe fitted with checkpoints.

At each checkpoint the per-sample gradient of the loss w.r.t. the last layer is kept in
factored form ``g_i = e_i (outer) h_i`` with ``e_i = p_i - onehot(y_i)`` (K) and
``h_i = [rep_i, 1]`` (d + 1), which makes gradient dot products exact and cheap
(:func:`influence_scores`).
"""

from __future__ import annotations

import numpy as np
import torch

from .._torch_utils import pick_device
from .training import fit_probes


def _batch_factors(predict_fn, X, y, idx=None):
    p, h = predict_fn(0, X, idx)
    yy = y if idx is None else y[idx]
    e = p.astype(np.float32)
    e[np.arange(len(yy)), yy] -= 1.0
    return e, np.concatenate([h, np.ones((len(h), 1), np.float32)], axis=1)


def tracin_influence(X, y, *, kind, n_classes, config, device, X_ref=None, y_ref=None,
                     batch_size: int = 65536):
    """TracIn scores (N,) float64 of the rows of X from one probe fitted on them with
    ``config.n_checkpoints`` checkpoints: :func:`influence_scores` of every row's factored
    last-layer gradients, streamed in batches (O(batch) extra memory). Against the
    reference rows' mean gradient when ``X_ref`` is given, else self-influence.

    Returns (scores, number of checkpoints)."""
    n = len(y)
    predict_fn, ckpts, load = fit_probes(X, y, [np.arange(n)], kind=kind, n_classes=n_classes, config=config,
                                        seed=config.seed * 1000 + 900, device=device,
                                        n_checkpoints=config.n_checkpoints)
    out = np.zeros(n)
    for lr, state in ckpts:
        load(state)
        ref_e = ref_h = None
        if X_ref is not None:
            ref_e, ref_h = _batch_factors(predict_fn, X_ref, y_ref)
            ref_e, ref_h = ref_e[None], ref_h[None]
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(n, start + batch_size))
            e, h = _batch_factors(predict_fn, X, y, idx)
            out[idx] += influence_scores(e[None], h[None], lrs=np.array([lr]), reference_err=ref_e,
                                         reference_rep=ref_h, device=device)
    return out, len(ckpts)


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
