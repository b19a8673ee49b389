"""Influence screen: TracIn over the probe's checkpoints, on exact last-layer gradients.

TracIn (Pruthi et al. 2020) approximates the effect of training on row i on the loss of
row j as ``sum_c lr_c * g_c(i) . g_c(j)`` over checkpoints c. Last-layer gradients of
softmax cross-entropy factor as ``g = e (outer) h`` (``e = p - onehot(y)``, ``h`` the
penultimate representation with a 1 appended), so

* against a trusted reference set: ``score_i = -sum_c lr_c * e_ic^T G_c h_ic`` with
  ``G_c`` the mean reference gradient; a positive score means a step on row i raises
  the reference loss (suspicious);
* without one, self-influence: ``score_i = sum_c lr_c * |e_ic|^2 |h_ic|^2``.

Both are exact (no projection) and cost O(C N K d) time, O(batch) extra memory.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import ScreenOutput, per_class_counts


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
    device = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
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


def influence_screen(train=None, *, labels, classes, reference=None, scores=None, mode=None,
                     n_checkpoints=None, outlier_z=3.5, device=None) -> ScreenOutput:
    """TracIn screen; flags robust-z outliers of the score (reported, not in the verdict).

    Either ``train``/``reference`` (:class:`screening.probe.GradientFactors`) or precomputed
    ``scores`` (N,) from :func:`screening.probe.tracin_influence` with its ``mode``
    (``"reference"`` or ``"self-influence"``) and ``n_checkpoints``.
    """
    from .base import robust_z

    if scores is None:
        scores = influence_scores(
            train.err, train.rep, lrs=train.lrs,
            reference_err=None if reference is None else reference.err,
            reference_rep=None if reference is None else reference.rep,
            device=device,
        )
        mode = "reference" if reference is not None else "self-influence"
        n_checkpoints = int(len(train.lrs))
    flagged = robust_z(scores) > outlier_z
    return ScreenOutput(scores, flagged, {
        "parameters": {"mode": mode, "checkpoints": int(n_checkpoints), "outlier_z": outlier_z},
        "flagged": int(flagged.sum()),
        "flagged_per_class": per_class_counts(flagged, labels, classes),
    })
