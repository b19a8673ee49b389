"""The one training loop every probe fit goes through, and scoring with the fitted models.

Cross-validation fits k small models on overlapping data. They train in lock-step: one
AdamW with a one-cycle schedule steps all of them on the summed per-model loss (AdamW is
element-wise, so each model trains exactly as if it were alone) and the per-step Python
overhead is paid once instead of k times. MLPs run as one batched model (weights stacked
on a fold axis, ``torch.bmm``); CNNs run one after another inside each step on a CPU, or
as one ``torch.func.vmap`` step on CUDA. A single fit (the TracIn probe) is the same loop
with one model.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from .._torch_utils import generator
from .models import BatchedMLP, inference_rows, make_model

#: ``predict_fn(f, X, idx=None) -> (probs (n, K) float64, reps (n, d) float32)`` of fold
#: model f on ``X[idx]`` (all rows when ``idx`` is None), gathered batch by batch.
PredictFn = Callable[..., tuple]


def _schedule(sizes, config):
    """(batch size, steps per epoch, total steps, sample with replacement?) for the fit.

    Small data: whole shuffled epochs, about ``config.target_steps`` optimiser steps.
    Large data (one epoch would already exceed ``target_steps`` steps): the batch grows
    up to ``config.max_batch_size`` and ``target_steps`` batches are drawn at random, so
    the cost of a fit stops growing with N (a probe does not need every row to learn
    the classes; every row is still *scored*).
    """
    bs = min(config.batch_size, min(sizes))
    steps_per_epoch = math.ceil(max(sizes) / bs)
    if config.epochs is None and steps_per_epoch > config.target_steps:
        bs = min(max(config.batch_size, math.ceil(max(sizes) / config.target_steps)),
                 max(config.max_batch_size, config.batch_size), min(sizes))
        return bs, config.target_steps, config.target_steps, True
    epochs = config.epochs or max(1, min(config.max_epochs, math.ceil(config.target_steps / steps_per_epoch)))
    return bs, steps_per_epoch, epochs * steps_per_epoch, False


def _lockstep_batches(train_sets, config, gen, device):
    """The fit's schedule and its batches: (bs, total steps, iterator of (F, bs) row indices).

    One shuffled pass per model per epoch (shorter sets wrap around so all models step
    together), or ``target_steps`` random batches for large data (see :func:`_schedule`).
    """
    sizes = [len(s) for s in train_sets]
    bs, steps_per_epoch, total, sampled = _schedule(sizes, config)
    sets = [torch.from_numpy(np.asarray(s, dtype=np.int64)) for s in train_sets]

    def batches():
        for _ in range(total // steps_per_epoch):
            perms = None if sampled else [s[torch.randperm(len(s), generator=gen)] for s in sets]
            for k in range(steps_per_epoch):
                if sampled:
                    yield torch.stack([s[torch.randint(len(s), (bs,), generator=gen)] for s in sets]).to(device)
                else:
                    yield torch.stack([p[(torch.arange(k * bs, (k + 1) * bs)) % len(p)] for p in perms]).to(device)

    return bs, total, batches()


def snapshot_steps(fractions, total: int) -> list[int]:
    """The optimiser steps (1..total) at the given fractions of training, in order."""
    return sorted({max(1, min(total, round(total * float(f)))) for f in fractions})


def train_lockstep(forward, params, X, y, train_sets, *, n_classes, config, gen, device, snapshots=(),
                   snapshot=None):
    """The training loop: AdamW with a one-cycle schedule on the summed per-model
    cross-entropy of ``forward(rows (F, bs, ...)) -> (F, bs, K)``.

    ``snapshots``: fractions of training (0 < f <= 1) after which ``snapshot()`` is taken.
    Returns (list of (step, snapshot()), the learning rate of every step (float64 array),
    so TracIn can weigh a checkpoint by the rates of the interval it closes)."""
    bs, total, batches = _lockstep_batches(train_sets, config, gen, device)
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total, pct_start=0.15)
    # zero-copy on CPU (X is float32 and C-contiguous in screen_table)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    save_at = set(snapshot_steps(snapshots, total))
    checkpoints, lrs = [], []
    for step, idx in enumerate(batches, start=1):
        logits = forward(Xt[idx])  # (F, bs, K)
        loss = nn.functional.cross_entropy(logits.reshape(-1, n_classes), yt[idx].reshape(-1),
                                           reduction="sum") / bs
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step in save_at:
            checkpoints.append((step, snapshot()))
    return checkpoints, np.asarray(lrs, dtype=np.float64)


def _state(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def fit_batched_mlp(X, y, train_sets, *, n_classes, config, seed, device, snapshots=()):
    """Train one MLP per index array in ``train_sets`` (rows of X (n, d), y (n,)) as one
    :class:`BatchedMLP`. Returns (model, (step, state_dict) snapshots, per-step lrs)."""
    gen = generator(seed)
    model = BatchedMLP(len(train_sets), X.shape[1], config.hidden, config.rep_dim, n_classes, gen).to(device)
    model.train()
    checkpoints, lrs = train_lockstep(model, model.parameters(), X, y, train_sets, n_classes=n_classes,
                                      config=config, gen=gen, device=device, snapshots=snapshots,
                                      snapshot=lambda: _state(model))
    model.eval()
    return model, checkpoints, lrs


def fit_modules(make, X, y, train_sets, *, n_classes, config, seed, device, snapshots=(), vectorise=None):
    """Train one copy of ``make()`` per index array in lock-step (the CNN probes).

    On CUDA the F models run as one batched step through ``torch.func.vmap`` over stacked
    parameters (one kernel launch per layer, not F); on a CPU one after another inside
    each step, because vmap turns F convolutions into one grouped convolution, which the
    CPU kernels run slower than F separate ones. ``vectorise`` (default: on CUDA, without
    snapshots) picks the vmap path; both compute the same losses and updates. With
    ``snapshots`` (one model, for TracIn) they are the first model's state.
    Returns (list of F trained modules in eval mode, (step, state) snapshots, per-step lrs)."""
    models = []
    for i in range(len(train_sets)):
        torch.manual_seed(seed + i)
        models.append(make().to(device))
    for model in models:
        model.train()
    if vectorise is None:
        vectorise = device.type == "cuda" and not snapshots
    checkpoints, lrs = [], None
    if not vectorise:
        def forward(x):  # x: (F, bs, ...) -> (F, bs, K)
            return torch.stack([model(x[f]) for f, model in enumerate(models)])

        checkpoints, lrs = train_lockstep(forward, [p for model in models for p in model.parameters()], X, y,
                                          train_sets, n_classes=n_classes, config=config, gen=generator(seed),
                                          device=device, snapshots=snapshots, snapshot=lambda: _state(models[0]))
    else:
        from torch.func import functional_call, stack_module_state, vmap

        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")

        def one(p, b, x):
            return functional_call(base, (p, b), (x,))

        batched = vmap(one)
        _, lrs = train_lockstep(lambda x: batched(params, buffers, x), list(params.values()), X, y, train_sets,
                                n_classes=n_classes, config=config, gen=generator(seed), device=device)
        with torch.no_grad():
            for f, model in enumerate(models):
                for name, p in model.named_parameters():
                    p.copy_(params[name][f])
    for model in models:
        model.eval()
    return models, checkpoints, lrs


@torch.no_grad()
def predict(model: nn.Module, X, *, device, batch_size=8192):
    """(probs (n, K) float64, reps (n, d) float32) of one network on X, in batches."""
    probs, reps = [], []
    model.eval()
    for start in range(0, len(X), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(X[start:start + batch_size])).to(device)
        h = model.features(xb)
        probs.append(torch.softmax(model.head(h).double(), dim=1).cpu().numpy())
        reps.append(h.float().cpu().numpy())
    return np.concatenate(probs), np.concatenate(reps)


@torch.no_grad()
def predict_member(model: BatchedMLP, f: int, X, *, idx=None, device, batch_size=8192):
    """(probs (n, K) float64, reps (n, rep_dim) float32) of model f of a :class:`BatchedMLP`
    on X[idx] (all rows if None); rows are gathered batch by batch, so no copy of X[idx]."""
    n = len(X) if idx is None else len(idx)
    probs, reps = [], []
    for start in range(0, n, batch_size):
        part = X[start:start + batch_size] if idx is None else X[idx[start:start + batch_size]]
        xb = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32)).to(device)
        h = torch.relu(xb @ model.w1[f] + model.b1[f])
        h = torch.relu(h @ model.w2[f] + model.b2[f])
        logits = h @ model.w3[f] + model.b3[f]
        probs.append(torch.softmax(logits.double(), dim=1).cpu().numpy())
        reps.append(h.float().cpu().numpy())
    if not probs:
        return np.zeros((0, model.w3.shape[2])), np.zeros((0, model.w2.shape[2]), np.float32)
    return np.concatenate(probs), np.concatenate(reps)


def fit_probes(X, y, train_sets, *, kind, n_classes, config, seed, device, snapshots=()):
    """Fit one probe per index array; return (predict_fn, snapshots, lrs, load).

    ``predict_fn`` is a :data:`PredictFn`; ``snapshots`` the (step, state) pairs of model 0
    taken at the given fractions of training, ``lrs`` the learning rate of every step;
    ``load(state)`` puts a snapshot into model 0. Threads: the caller's (``screen_table``
    sets them).
    """
    if kind != "image":
        model, ckpts, lrs = fit_batched_mlp(X, y, train_sets, n_classes=n_classes, config=config, seed=seed,
                                            device=device, snapshots=snapshots)

        def predict_fn(f, Z, idx=None):
            return predict_member(model, f, Z, idx=idx, device=device, batch_size=config.inference_batch_size)

        return predict_fn, ckpts, lrs, model.load_state_dict
    rows = inference_rows(kind, X.shape[1:], config)
    models, ckpts, lrs = fit_modules(lambda: make_model(kind, X.shape[1:], n_classes, config), X, y, train_sets,
                                     n_classes=n_classes, config=config, seed=seed, device=device,
                                     snapshots=snapshots)

    def predict_fn(f, Z, idx=None):
        return predict(models[f], Z if idx is None else Z[idx], device=device, batch_size=rows)

    return predict_fn, ckpts, lrs, models[0].load_state_dict
