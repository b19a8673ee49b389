"""F independent MLPs trained in lock-step as one batched model, and F CNNs trained in
lock-step by one optimiser (private).

Cross-validation fits k small models on overlapping data; running them as one
batched model (weights stacked on a leading fold axis, ``torch.bmm``) pays the
per-step Python overhead once instead of k times. Each model sees only its own
training rows and has its own parameters; AdamW is element-wise, so summing the
per-model losses trains every model exactly as if it were alone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ._torch_utils import generator


class BatchedMLP(nn.Module):
    def __init__(self, n_models: int, d_in: int, hidden: int, rep_dim: int, n_classes: int, gen: torch.Generator):
        super().__init__()

        def linear(fan_in, fan_out):
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(n_models, fan_in, fan_out, generator=gen) * 2 - 1) * bound
            b = (torch.rand(n_models, 1, fan_out, generator=gen) * 2 - 1) * bound
            return nn.Parameter(w), nn.Parameter(b)

        self.w1, self.b1 = linear(d_in, hidden)
        self.w2, self.b2 = linear(hidden, rep_dim)
        self.w3, self.b3 = linear(rep_dim, n_classes)

    def features(self, x):  # x: (F, B, d_in) -> (F, B, rep_dim)
        h = torch.relu(torch.baddbmm(self.b1, x, self.w1))
        return torch.relu(torch.baddbmm(self.b2, h, self.w2))

    def head(self, h):
        return torch.baddbmm(self.b3, h, self.w3)

    def forward(self, x):
        return self.head(self.features(x))

    def select(self, f: int) -> "BatchedMLP":
        """A one-model view (shares nothing with training) of model f."""
        one = BatchedMLP.__new__(BatchedMLP)
        nn.Module.__init__(one)
        for name in ("w1", "b1", "w2", "b2", "w3", "b3"):
            setattr(one, name, nn.Parameter(getattr(self, name)[f:f + 1].detach().clone()))
        return one


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


def _train_lockstep(forward, params, X, y, train_sets, *, n_classes, config, gen, device, n_checkpoints=0,
                    snapshot=None):
    """The lock-step training loop both ensembles share: AdamW with a one-cycle schedule on
    the summed per-model cross-entropy of ``forward(rows (F, bs, ...)) -> (F, bs, K)``.

    Returns ``n_checkpoints`` (mean lr of the interval, ``snapshot()``) pairs taken at
    evenly spaced steps."""
    bs, total, batches = _lockstep_batches(train_sets, config, gen, device)
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total, pct_start=0.15)
    # zero-copy on CPU (X is float32 and C-contiguous in screen_table)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    save_at = {max(1, round(total * (i + 1) / n_checkpoints)) for i in range(n_checkpoints)} if n_checkpoints else set()
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
            checkpoints.append((sum(lrs) / len(lrs), snapshot()))
            lrs.clear()
    return checkpoints


def fit_ensemble(X, y, train_sets, *, n_classes, config, seed, device, n_checkpoints=0):
    """Train one MLP per index array in ``train_sets`` (rows of X (n, d), y (n,)).

    Returns (model, checkpoints) where checkpoints is a list of (mean lr of the
    interval, state_dict) taken at evenly spaced steps.
    """
    F = len(train_sets)
    gen = generator(seed)
    model = BatchedMLP(F, X.shape[1], config.hidden, config.rep_dim, n_classes, gen).to(device)
    model.train()
    checkpoints = _train_lockstep(
        model, model.parameters(), X, y, train_sets, n_classes=n_classes, config=config, gen=gen, device=device,
        n_checkpoints=n_checkpoints,
        snapshot=lambda: {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.eval()
    return model, checkpoints


@torch.no_grad()
def predict_member(model: BatchedMLP, f: int, X, *, idx=None, device, batch_size=8192):
    """(probs (n, K) float64, reps (n, rep_dim) float32) of model f on X[idx] (all rows if None).

    Rows are gathered batch by batch, so no copy of X[idx] is ever made.
    """
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


def fit_module_ensemble(make_model, X, y, train_sets, *, n_classes, config, seed, device, vectorise=None):
    """Train one copy of ``make_model()`` per index array in lock-step (CNN folds).

    Same schedule as :func:`fit_ensemble` (whole shuffled epochs, or ``target_steps``
    random batches for large data); each model sees only its own rows and has its own
    parameters, and one AdamW steps them all. On CUDA the F models run as one batched
    step through ``torch.func.vmap`` over stacked parameters (one kernel launch per
    layer, not F). On CPU they run one after another inside each step: vmap turns F
    convolutions into one grouped convolution, which the CPU kernels ran 2.3 times
    slower than F separate ones (5 CNNs, 128 images of 28 x 28, one thread).
    ``vectorise`` (default: on CUDA only) picks the vmap path. Both paths compute the same
    losses and updates. Returns a list of F trained modules in eval mode.
    """
    F = len(train_sets)
    models = []
    for i in range(F):
        torch.manual_seed(seed + i)
        models.append(make_model().to(device))
    for model in models:
        model.train()
    if vectorise is None:
        vectorise = device.type == "cuda"
    if not vectorise:
        def forward(x):  # x: (F, bs, ...) -> (F, bs, K)
            return torch.stack([model(x[f]) for f, model in enumerate(models)])

        _train_lockstep(forward, [p for model in models for p in model.parameters()], X, y, train_sets,
                        n_classes=n_classes, config=config, gen=generator(seed), device=device)
        for model in models:
            model.eval()
        return models

    import copy

    from torch.func import functional_call, stack_module_state, vmap

    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))

    batched = vmap(one)
    _train_lockstep(lambda x: batched(params, buffers, x), list(params.values()), X, y, train_sets,
                    n_classes=n_classes, config=config, gen=generator(seed), device=device)
    with torch.no_grad():
        for f, model in enumerate(models):
            for name, p in model.named_parameters():
                p.copy_(params[name][f])
            model.eval()
    return models
