"""The probe: a small model trained on the data itself whose outputs the screens read.

Three fits, all seeded:

* :func:`cross_validated_probe` -- k-fold cross-validation over the data: out-of-sample
  ``pred_probs`` (N, K) and penultimate-layer ``representations`` (N, d).
* :func:`anchored_probe` -- only when a trusted reference is given: a probe trained on
  the reference alone, then refined by rounds of self-training (train rows whose label
  the probe agrees with join the reference; every row is re-scored by a cross-fitted
  probe that never trained on it). It never learns a trigger that only poisoned rows
  carry, so poisoned rows look mislabelled to it.
* :func:`tracin_probe` -- one fit on all rows that keeps checkpoints; at each checkpoint
  the per-sample gradient of the loss w.r.t. the last layer, kept in factored form
  ``g_i = e_i (outer) h_i`` with ``e_i = p_i - onehot(y_i)`` (K) and ``h_i = [rep_i, 1]``
  (d + 1), which makes gradient dot products exact and cheap.

Models: an MLP for tabular/embedding/text features, a small CNN for images. GPU when
available, CPU otherwise; inference is batched so memory stays bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._torch_utils import generator, pick_device


class _MLP(nn.Module):
    def __init__(self, d_in: int, n_classes: int, hidden: int, rep_dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, rep_dim), nn.ReLU()
        )
        self.head = nn.Linear(rep_dim, n_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


class _CNN(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], n_classes: int, rep_dim: int):
        super().__init__()
        c = in_shape[0]
        self.body = nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4 if min(in_shape[1:]) >= 4 else 1),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.body(torch.zeros(1, *in_shape)).shape[1]
        self.proj = nn.Sequential(nn.Linear(flat, rep_dim), nn.ReLU())
        self.head = nn.Linear(rep_dim, n_classes)

    def features(self, x):
        return self.proj(self.body(x))

    def forward(self, x):
        return self.head(self.features(x))


@dataclass
class Normaliser:
    """Per-feature (tabular) or global (image) standardisation fitted on the data rows."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, kind: str) -> "Normaliser":
        if kind == "image":
            m = np.float32(X.mean())
            s = np.float32(X.std()) or np.float32(1.0)
            return cls(np.asarray(m, np.float32), np.asarray(s, np.float32))
        Xd = X.astype(np.float64)
        m = Xd.mean(axis=0)
        s = Xd.std(axis=0)
        s[s == 0] = 1.0
        return cls(m.astype(np.float32), s.astype(np.float32))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale).astype(np.float32, copy=False)


def _make_model(kind, in_shape, n_classes, config):
    if kind == "image":
        return _CNN(tuple(in_shape), n_classes, config.rep_dim)
    return _MLP(int(np.prod(in_shape)), n_classes, config.hidden, config.rep_dim)


@dataclass
class FittedProbe:
    model: nn.Module
    checkpoints: list = field(default_factory=list)  # [(lr, state_dict)]


def fit_model(X, y, *, kind, n_classes, config, seed, device, n_checkpoints=0) -> FittedProbe:
    """Train one probe on (X, y). X float32 (n, ...) already normalised, y int64 (n,)."""
    torch.manual_seed(seed)
    model = _make_model(kind, X.shape[1:], n_classes, config).to(device)
    n = len(X)
    bs = min(config.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    epochs = config.epochs or max(1, min(config.max_epochs, math.ceil(config.target_steps / steps_per_epoch)))
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total, pct_start=0.15)
    Xt = torch.from_numpy(np.ascontiguousarray(X)).to(device)
    yt = torch.from_numpy(y).to(device)
    g = generator(seed)
    save_at = set()
    if n_checkpoints:
        save_at = {max(1, round(total * (i + 1) / n_checkpoints)) for i in range(n_checkpoints)}
    fitted = FittedProbe(model)
    loss_fn = nn.CrossEntropyLoss()
    step = 0
    lr_sum, lr_count = 0.0, 0
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g).to(device)
        for s in range(steps_per_epoch):
            idx = perm[s * bs:(s + 1) * bs]
            lr_sum += opt.param_groups[0]["lr"]
            lr_count += 1
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step in save_at:
                # TracIn weighs a checkpoint by the learning rate of the interval it closes.
                fitted.checkpoints.append(
                    (lr_sum / lr_count, {k: v.detach().clone() for k, v in model.state_dict().items()})
                )
                lr_sum, lr_count = 0.0, 0
    model.eval()
    return fitted


@torch.no_grad()
def predict(model, X, *, device, batch_size=8192):
    """Return (probs (n, K) float64, reps (n, d) float32) in batches."""
    probs, reps = [], []
    model.eval()
    for start in range(0, len(X), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(X[start:start + batch_size])).to(device)
        h = model.features(xb)
        probs.append(torch.softmax(model.head(h).double(), dim=1).cpu().numpy())
        reps.append(h.float().cpu().numpy())
    return np.concatenate(probs), np.concatenate(reps)


def stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index (n,) for every row, stratified by class, seeded."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        folds[idx] = np.arange(len(idx)) % n_folds
    return folds


def _fit_many(X, y, train_sets, *, kind, n_classes, config, seed, device, n_checkpoints=0):
    """Fit one probe per index array; return (predict(f, X) -> (probs, reps), checkpoint list).

    MLPs train together as one batched model; CNNs one after another.
    """
    if kind != "image":
        from ._ensemble import fit_ensemble, predict_member

        model, ckpts = fit_ensemble(X, y, train_sets, n_classes=n_classes, config=config, seed=seed,
                                    device=device, n_checkpoints=n_checkpoints)

        def predict_fn(f, Z, model=model):
            return predict_member(model, f, Z, device=device, batch_size=config.inference_batch_size)

        def load(state, model=model):
            model.load_state_dict(state)

        return predict_fn, ckpts, load
    fitted = [fit_model(X[s], y[s], kind=kind, n_classes=n_classes, config=config, seed=seed + i,
                        device=device, n_checkpoints=n_checkpoints) for i, s in enumerate(train_sets)]

    def predict_fn(f, Z):
        return predict(fitted[f].model, Z, device=device, batch_size=config.inference_batch_size)

    def load(state):
        fitted[0].model.load_state_dict(state)

    return predict_fn, fitted[0].checkpoints, load


@dataclass
class CrossValidatedProbe:
    pred_probs: np.ndarray  # (N, K) out-of-sample
    representations: np.ndarray  # (N, d) float32, each row from the model that did not see it
    folds: np.ndarray  # (N,)


def cross_validated_probe(X, y, *, kind, n_classes, config, device, progress=None) -> CrossValidatedProbe:
    folds = stratified_folds(y, config.n_folds, config.seed)
    sets = [np.flatnonzero(folds != f) for f in range(config.n_folds)]
    predict_fn, _, _ = _fit_many(X, y, sets, kind=kind, n_classes=n_classes, config=config,
                                 seed=config.seed * 1000 + 1, device=device)
    probs = np.zeros((len(y), n_classes))
    reps = np.zeros((len(y), config.rep_dim), dtype=np.float32)
    for f in range(config.n_folds):
        te = folds == f
        probs[te], reps[te] = predict_fn(f, X[te])
    if progress:
        progress(f"cross-validated probe: {config.n_folds} folds done")
    return CrossValidatedProbe(probs, reps, folds)


@dataclass
class AnchoredProbe:
    pred_probs: np.ndarray  # (N, K) every row scored by a model that never trained on it
    kept_per_round: list  # rows agreed with, per round


def anchored_probe(X, y, X_ref, y_ref, *, kind, n_classes, config, device, progress=None) -> AnchoredProbe:
    """Reference-trained probe refined by self-training; see the module docstring."""
    seed = config.seed * 1000 + 500
    n = len(y)
    Xall = np.concatenate([X, X_ref])
    yall = np.concatenate([y, y_ref])
    ref_idx = np.arange(n, n + len(y_ref))
    predict_fn, _, _ = _fit_many(Xall, yall, [ref_idx], kind=kind, n_classes=n_classes, config=config,
                                 seed=seed, device=device)
    probs, _ = predict_fn(0, X)
    kept_counts = []
    folds = stratified_folds(y, config.n_folds, config.seed + 1)
    for r in range(config.self_training_rounds):
        kept = probs.argmax(axis=1) == y
        kept_counts.append(int(kept.sum()))
        sets = [np.concatenate([ref_idx, np.flatnonzero(kept & (folds != f))]) for f in range(config.n_folds)]
        predict_fn, _, _ = _fit_many(Xall, yall, sets, kind=kind, n_classes=n_classes, config=config,
                                     seed=seed + 10 * (r + 1), device=device)
        new = np.zeros_like(probs)
        for f in range(config.n_folds):
            te = folds == f
            new[te], _ = predict_fn(f, X[te])
        probs = new
        if progress:
            progress(f"anchored probe: self-training round {r + 1}/{config.self_training_rounds}")
    return AnchoredProbe(probs, kept_counts)


@dataclass
class GradientFactors:
    """Last-layer per-sample gradients at C checkpoints, factored.

    err: (C, N, K) float32, ``p - onehot(y)``; rep: (C, N, d + 1) float32, ``[h, 1]``;
    lrs: (C,) learning rate in force at each checkpoint. The gradient of row i at
    checkpoint c is ``outer(err[c, i], rep[c, i])``.
    """

    err: np.ndarray
    rep: np.ndarray
    lrs: np.ndarray


def _factors(predict_fn, load, checkpoints, X, y):
    errs, reps = [], []
    for _, state in checkpoints:
        load(state)
        p, h = predict_fn(0, X)
        e = p.astype(np.float32)
        e[np.arange(len(y)), y] -= 1.0
        errs.append(e)
        reps.append(np.concatenate([h, np.ones((len(h), 1), np.float32)], axis=1))
    return np.stack(errs), np.stack(reps)


def tracin_probe(X, y, *, kind, n_classes, config, device, X_ref=None, y_ref=None):
    """Fit on all rows with checkpoints; return (train GradientFactors, reference GradientFactors|None)."""
    predict_fn, ckpts, load = _fit_many(X, y, [np.arange(len(y))], kind=kind, n_classes=n_classes, config=config,
                                        seed=config.seed * 1000 + 900, device=device,
                                        n_checkpoints=config.n_checkpoints)
    lrs = np.array([lr for lr, _ in ckpts])
    e, r = _factors(predict_fn, load, ckpts, X, y)
    train = GradientFactors(e, r, lrs)
    ref = None
    if X_ref is not None:
        e2, r2 = _factors(predict_fn, load, ckpts, X_ref, y_ref)
        ref = GradientFactors(e2, r2, lrs)
    return train, ref
