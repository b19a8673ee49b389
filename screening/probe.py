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

Models: an MLP for tabular/embedding/text features, a small CNN for images (whose cost
per image stops growing with the resolution, see :class:`_CNN`). GPU when available,
CPU otherwise; inference is batched so memory stays bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._torch_utils import generator


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


#: The CNN's second convolution, and all after it, work on a grid of at most this many
#: positions a side: larger images reach it through a patch stem that reads every
#: pixel (see :class:`_CNN`).
CNN_GRID = 8

#: Activations one CNN inference batch may hold, in floats (rows per batch shrink with
#: the image's size, so memory stays bounded whatever the resolution).
CNN_INFERENCE_FLOATS = 1 << 24


class _CNN(nn.Module):
    """A 16-channel stem, a 3 x 3 convolution to 32 channels, a 4 x 4 average pool, a projection.

    Images of at most ``grid`` pixels a side (``CNN_GRID``) keep the network the probe
    always had: a 3 x 3 stem convolution at full resolution. Larger images go through a
    patch stem instead (ConvNeXt's "patchify" stem): a ``p x p`` convolution of stride
    ``p = ceil(min side / grid)``, so every pixel belongs to exactly one patch (the far
    borders are zero-padded, where patch triggers usually sit, so none is dropped) and
    each patch's 16 features are a learned linear map of all its pixels: a trigger of
    any size, or a faint blend over the whole image, still reaches the features. The
    second convolution, the costly layer (``16 x 32 x 9`` multiply-adds per position),
    then runs on at most ``grid x grid`` positions, as it does for 8 x 8 images.

    Cost per image pass: ``c x 16 x pixels`` for the stem plus at most
    ``grid^2 x 4608`` for the convolution: at 28 x 28 about 15 times fewer
    multiply-adds than both 3 x 3 convolutions at full resolution, and it grows with
    the pixel count only through the stem.
    """

    def __init__(self, in_shape: tuple[int, ...], n_classes: int, rep_dim: int, grid: int | None = None):
        super().__init__()
        c = in_shape[0]
        self.pool = p = max(1, math.ceil(min(in_shape[1:]) / (grid or CNN_GRID)))
        if p == 1:
            stem = [nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.Identity()]
        else:  # p x p patches, zero-padded at the far borders so no pixel is dropped
            pad_h, pad_w = (-in_shape[1]) % p, (-in_shape[2]) % p
            stem = [nn.ZeroPad2d((0, pad_w, 0, pad_h)), nn.Conv2d(c, 16, p, stride=p), nn.ReLU()]
        self.body = nn.Sequential(
            *stem,
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        )
        with torch.no_grad():
            grid_hw = self.body(torch.zeros(1, *in_shape)).shape[-2:]
        self.body.append(_AveragePool(*grid_hw, 4 if min(in_shape[1:]) >= 4 else 1))
        flat = 32 * self.body[-1].out
        self.proj = nn.Sequential(nn.Linear(flat, rep_dim), nn.ReLU())
        self.head = nn.Linear(rep_dim, n_classes)

    def features(self, x):
        return self.proj(self.body(x))

    def forward(self, x):
        return self.head(self.features(x))


def _pool_matrix(n: int, out: int) -> torch.Tensor:
    """(out, n): row i averages the cells ``AdaptiveAvgPool`` gives output i."""
    a = torch.zeros(out, n)
    for i in range(out):
        start, end = (i * n) // out, -(-(i + 1) * n // out)
        a[i, start:end] = 1.0 / (end - start)
    return a


class _AveragePool(nn.Module):
    """``AdaptiveAvgPool2d(out)`` then ``Flatten``, as one (h w, out^2) matrix product:
    the same averages, five times cheaper forward and backward on CPU than the adaptive
    kernel (measured on a 128 x 32 x 7 x 7 batch)."""

    def __init__(self, h: int, w: int, out: int):
        super().__init__()
        self.out = out * out
        weight = torch.kron(_pool_matrix(h, out), _pool_matrix(w, out)).T.contiguous()
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x):  # (B, C, h, w) -> (B, C * out^2)
        return (x.flatten(2) @ self.weight).flatten(1)


def cnn_step_flops(in_shape: tuple[int, ...], grid: int | None = None) -> float:
    """Multiply-adds of one image's forward pass through :class:`_CNN`'s convolutions."""
    c, h, w = in_shape
    p = max(1, math.ceil(min(h, w) / (grid or CNN_GRID)))
    gh, gw = math.ceil(h / p), math.ceil(w / p)
    stem = h * w * c * 16 * 9 if p == 1 else gh * gw * p * p * c * 16
    return stem + gh * gw * 16 * 32 * 9


def inference_rows(kind: str, in_shape, config) -> int:
    """Rows per forward pass when scoring: ``config.inference_batch_size``, fewer for
    images so one batch's activations stay under :data:`CNN_INFERENCE_FLOATS`."""
    bs = max(1, int(config.inference_batch_size))
    if kind != "image":
        return bs
    per_row = 16 * int(np.prod(in_shape[1:]))  # the first convolution's output, the largest
    return max(1, min(bs, CNN_INFERENCE_FLOATS // per_row))


@dataclass
class Normaliser:
    """Per-feature (tabular) or global (image) standardisation fitted on the data rows."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, kind: str, batch_size: int = 1 << 16) -> "Normaliser":
        """Mean and standard deviation, accumulated in float64 over row chunks (no full copy)."""
        n = len(X)
        flat = X.reshape(n, -1)
        s1 = np.zeros(flat.shape[1])
        s2 = np.zeros(flat.shape[1])
        shift = flat[: min(n, 1024)].astype(np.float64).mean(axis=0)  # keeps the sums from cancelling
        for start in range(0, n, batch_size):
            part = flat[start:start + batch_size].astype(np.float64) - shift
            s1 += part.sum(axis=0)
            s2 += (part * part).sum(axis=0)
        if kind == "image":
            tot = n * flat.shape[1]
            mean_d = s1.sum() / tot
            m = float((shift * n).sum() / tot + mean_d)
            var = float(((s2 + 2 * shift * s1 + n * shift ** 2).sum()) / tot - m * m)
            sd = np.float32(np.sqrt(max(var, 0.0))) or np.float32(1.0)
            return cls(np.asarray(m, np.float32), np.asarray(sd, np.float32))
        mean_d = s1 / n
        m = shift + mean_d
        var = np.maximum(s2 / n - mean_d ** 2, 0.0)
        sd = np.sqrt(var)
        sd[sd == 0] = 1.0
        return cls(m.astype(np.float32), sd.astype(np.float32))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale).astype(np.float32, copy=False)

    def into(self, X: np.ndarray, out: np.ndarray, batch_size: int = 1 << 16) -> None:
        """Write the normalised rows of X into ``out`` (same shape) chunk by chunk."""
        for start in range(0, len(X), batch_size):
            out[start:start + batch_size] = self(X[start:start + batch_size])


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
    """Fit one probe per index array; return (predict_fn, checkpoint list, load).

    ``predict_fn(f, Z, idx=None)`` -> (probs (n, K) float64, reps (n, d) float32) of model
    f on ``Z[idx]`` (gathered batch by batch). MLPs train together as one batched model;
    CNN folds in lock-step (:func:`~screening._ensemble.fit_module_ensemble`; a CNN fit
    with checkpoints, for TracIn, trains alone), and score in batches of
    :func:`inference_rows` rows. Threads: the caller's (``screen_table`` sets them; a
    second OpenMP thread for the CNN under CPU contention cost 12 times the CPU time
    and 9 times the wall time of one, measured on this 2-core machine at load 9).
    """
    if kind != "image":
        from ._ensemble import fit_ensemble, predict_member

        model, ckpts = fit_ensemble(X, y, train_sets, n_classes=n_classes, config=config, seed=seed,
                                    device=device, n_checkpoints=n_checkpoints)

        def predict_fn(f, Z, idx=None, model=model):
            return predict_member(model, f, Z, idx=idx, device=device, batch_size=config.inference_batch_size)

        def load(state, model=model):
            model.load_state_dict(state)

        return predict_fn, ckpts, load
    rows = inference_rows(kind, X.shape[1:], config)
    if len(train_sets) > 1 and not n_checkpoints:
        from ._ensemble import fit_module_ensemble

        models = fit_module_ensemble(lambda: _make_model(kind, X.shape[1:], n_classes, config), X, y,
                                     train_sets, n_classes=n_classes, config=config, seed=seed, device=device)
        fitted = [FittedProbe(mdl) for mdl in models]
    else:
        fitted = [fit_model(X[s], y[s], kind=kind, n_classes=n_classes, config=config, seed=seed + i,
                            device=device, n_checkpoints=n_checkpoints) for i, s in enumerate(train_sets)]

    def predict_fn(f, Z, idx=None):
        return predict(fitted[f].model, Z if idx is None else Z[idx], device=device, batch_size=rows)

    def load(state):
        fitted[0].model.load_state_dict(state)

    return predict_fn, fitted[0].checkpoints, load


@dataclass
class CrossValidatedProbe:
    pred_probs: np.ndarray  # (N, K) float32, out-of-sample
    representations: np.ndarray | None  # (N, d) float32, each row from the model that did not see it
    folds: np.ndarray  # (N,)
    reference_pred_probs: np.ndarray | None = None  # (M, K) reference rows, average of the fold models
    reference_representations: np.ndarray | None = None  # (M, d) float32, same
    predict_fn: object = None  # predict_fn(f, Z, idx) of the fold models (see _fit_many)
    rep_dim: int = 0

    def compute_representations(self, X, batch_size: int = 8192) -> np.ndarray:
        """(N, d) float32 out-of-fold representations of the data rows X, from the fold
        models (for a probe fitted with ``with_representations=False``; sets and returns
        ``self.representations``)."""
        reps = np.zeros((len(self.folds), self.rep_dim), dtype=np.float32)
        _out_of_fold(self.predict_fn, X, self.folds, batch_size, reps=reps)
        self.representations = reps
        return reps


def _out_of_fold(predict_fn, X, folds, batch_size, *, probs=None, reps=None) -> None:
    """Fill ``probs`` and/or ``reps`` (row i from the model of fold ``folds[i]``, which
    never trained on it), chunk by chunk: no fold-sized float64 temporaries."""
    step = max(1, int(batch_size))
    for f in np.unique(folds):
        te = np.flatnonzero(folds == f)
        for start in range(0, len(te), step):
            idx = te[start:start + step]
            p, r = predict_fn(int(f), X, idx)
            if probs is not None:
                probs[idx] = p
            if reps is not None:
                reps[idx] = r


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
    predict_fn, _, _ = _fit_many(X, y, sets, kind=kind, n_classes=n_classes, config=config,
                                 seed=config.seed * 1000 + 1, device=device)
    del sets
    probs = np.zeros((len(y), n_classes), dtype=np.float32)
    reps = np.zeros((len(y), config.rep_dim), dtype=np.float32) if with_representations else None
    _out_of_fold(predict_fn, X, folds, config.inference_batch_size, probs=probs, reps=reps)
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


@dataclass
class AnchoredProbe:
    """Reference-anchored probe outputs; every row scored by a model that never trained on it.

    pred_probs: (N, K) float32, data rows, last self-training round.
    reference_pred_probs: (M, K) float32, reference rows, same models (out-of-fold).
    initial_margins, initial_reference_margins: (N,) and (M,) float64 label margins
        (:func:`label_margin`) from round 0, whose models trained on the reference alone
        (they never saw a data row, so they cannot have learned a trigger from the data).
    kept_per_round: data rows admitted to training before each later round (per model,
        averaged; a row can be admitted by up to :func:`admit_span` models).
    model_margins: (n_folds, N) float32, model f's (last round) margin of every data row.
    admitted: (n_folds, N) bool, the data rows model f of the last round trained on.
    reference_folds: (M,) int, the fold whose model scored each reference row.
    eligible: (n_folds, N) bool, the data rows model f could ever admit (fixed by the
        fold layout before any model is trained; ``admitted`` is a subset). The verdict
        judges a row only by the models that could not admit it.
    admit_threshold: label-margin cut-off for admission (from the reference's own OOF margins).
    """

    pred_probs: np.ndarray
    reference_pred_probs: np.ndarray
    initial_margins: np.ndarray
    initial_reference_margins: np.ndarray
    kept_per_round: list
    model_margins: np.ndarray  # (n_folds, N) float32: model f's margin of every data row
    admitted: np.ndarray  # (n_folds, N) bool: data rows model f trained on
    reference_folds: np.ndarray  # (M,) the fold that scores each reference row
    eligible: np.ndarray  # (n_folds, N) bool: data rows model f could ever admit
    admit_threshold: float = 0.0
    n_reference_duplicates: int = 0


def reference_duplicates(X_all: np.ndarray, n: int) -> np.ndarray:
    """(N,) bool: data rows (the first ``n`` of X_all) equal to some reference row.

    A 64-bit hash of every row's float32 bits finds candidates in O(N d); candidates are
    then compared exactly."""
    flat = np.ascontiguousarray(X_all.reshape(len(X_all), -1), dtype=np.float32)
    w = np.random.default_rng(12345).integers(1, 2 ** 62, size=flat.shape[1], dtype=np.uint64)
    h = np.empty(len(flat), dtype=np.uint64)
    for start in range(0, len(flat), 1 << 16):
        bits = flat[start:start + (1 << 16)].view(np.uint32).astype(np.uint64)
        with np.errstate(over="ignore"):
            h[start:start + len(bits)] = (bits * w).sum(axis=1)
    ref_h = h[n:]
    cand = np.flatnonzero(np.isin(h[:n], ref_h))
    dup = np.zeros(n, dtype=bool)
    if len(cand):
        order = np.argsort(ref_h, kind="stable")
        for i in cand:
            j = np.searchsorted(ref_h[order], h[i])
            while j < len(order) and ref_h[order[j]] == h[i]:
                if np.array_equal(flat[i], flat[n + order[j]]):
                    dup[i] = True
                    break
                j += 1
    return dup


def admit_span(config, n_reference: int) -> int:
    """How many other data folds each anchored-probe model may admit rows from.

    ``config.admit_folds`` when set (1 .. n_folds - 1). Automatic (``None``): about half,
    ``(n_folds - 1) // 2`` (with 5 folds: 2, so every row is judged by 3 models that never
    saw it, and each model self-trains on 2 of the 5 data folds); 1 when the reference is
    so small that the judged reference rows, ``M (n_folds - s) / n_folds``, could not give
    a p-value as low as ``verdict_alpha`` (more judges, finer p-values)."""
    k = int(config.n_folds)
    if config.admit_folds is not None:
        s = int(config.admit_folds)
        if not 1 <= s <= k - 1:
            raise ValueError(f"admit_folds must be between 1 and n_folds - 1 = {k - 1}, not {s}")
        return s
    s = max(1, (k - 1) // 2)
    if n_reference * (k - s) / k + 1 < 1.0 / config.verdict_alpha:
        s = 1
    return s


def anchored_probe(X_all, y_all, n, *, kind, n_classes, config, device, progress=None,
                   cv_margins=None) -> AnchoredProbe:
    """Reference-anchored probe with cross-fitted self-training.

    Args:
        X_all: (N + M, ...) float32, the N data rows followed by the M reference rows.
        y_all: (N + M,) int64 labels.
        n: N, the number of data rows.
        cv_margins: optional (N,) label margins of the data rows under the
            cross-validated probe: with ``config.admit_contrast_quantile``, the rows
            whose round-0 margin falls furthest below it are never admitted.

    Data rows and reference rows are both split into ``n_folds`` folds. Model f trains on
    the reference rows outside fold f plus the data rows *admitted to model f*, and scores
    reference fold f and every data row. Round 0 admits no data row. Before each later
    round, model f admits the data rows of its eligible data folds, ``f + 1 .. f + s``
    (mod ``n_folds``, s = :func:`admit_span`), whose label margin (:func:`label_margin`)
    under model f of the previous round is above ``max(0, the config.admit_quantile
    quantile of the reference rows' margins)``, except the ``config.admit_contrast_quantile``
    share of them whose round-0 margin under model f falls furthest below ``cv_margins``.

    Which models may admit a row is fixed by the fold layout, before anything is trained:
    the verdict judges a data row only by the ``n_folds - s`` models that could never
    have admitted it (its own fold's and the others outside its span), so the choice of
    judges never depends on the row's own scores. (Judging a row by the models that
    merely *did not* admit it picks, for a hard clean row, exactly the models that doubted
    it, while its reference counterparts are judged unselected: measured on 23 tables of
    6 kinds, a class's clean rows then drifted below its reference rows, and the
    class-excess rule once flagged 12 % of breast_cancer's clean rows.)

    Each model's admissions are decided by its own lineage only, and no model of that
    lineage ever trained on reference fold f: a reference row reaches the model that
    scores it neither directly nor through the data rows it helped admit, so it is scored
    exactly like a data row that model never trained on, which is what lets the verdict
    calibrate its cut-off on the reference. (Measured on 12 clean data sets: when
    admissions came from the other folds' models, whose training included reference fold
    f, clean rows were flagged at twice the promised rate, 4.0 % for alpha = 2 %.)
    Memory: one (N, K) float32 array of probabilities at a time, plus (n_folds, N) float32
    margins and two (n_folds, N) bool masks.
    """
    seed = config.seed * 1000 + 500
    m = len(y_all) - n
    y, y_ref = y_all[:n], y_all[n:]
    folds = stratified_folds(y, config.n_folds, config.seed + 1)
    rfolds = stratified_folds(y_ref, config.n_folds, config.seed + 2)
    ref_idx = np.arange(n, n + m)
    ref_by_fold = [n + np.flatnonzero(rfolds == f) for f in range(config.n_folds)]

    def round_(admitted, r):
        # admitted: (n_folds, N) bool, the data rows model f may train on (never its own fold)
        sets = [np.concatenate([ref_idx[rfolds != f], np.flatnonzero(admitted[f])])
                for f in range(config.n_folds)]
        predict_fn, _, _ = _fit_many(X_all, y_all, sets, kind=kind, n_classes=n_classes, config=config,
                                     seed=seed + 10 * r, device=device)
        del sets
        probs = np.zeros((n, n_classes), dtype=np.float32)
        rprobs = np.zeros((m, n_classes), dtype=np.float32)
        margins = np.zeros((config.n_folds, n), dtype=np.float32)  # model f's margin of every data row
        step = max(1, config.inference_batch_size)
        for f in range(config.n_folds):
            for start in range(0, n, step):  # bounded memory: one chunk of probabilities at a time
                idx = np.arange(start, min(n, start + step))
                p_chunk, _ = predict_fn(f, X_all, idx)
                margins[f, idx] = label_margin(y[idx], p_chunk)
                own = folds[idx] == f
                probs[idx[own]] = p_chunk[own]
            rprobs[ref_by_fold[f] - n], _ = predict_fn(f, X_all, ref_by_fold[f])
        return probs, rprobs, margins

    # a data row that duplicates a reference row is never admitted: training on it would
    # let the models see that reference row's twin and make its out-of-fold margin too good
    dup = reference_duplicates(X_all, n)
    k = config.n_folds
    span = admit_span(config, m)
    # model f may admit rows of data folds f+1 .. f+span (mod k): never its own, and the
    # layout alone (not any score) decides which models can never see a row
    eligible = np.zeros((k, n), dtype=bool)
    for f in range(k):  # row by row: a (k, N) int64 temporary would cost 8 k N bytes
        ahead = (folds - f) % k
        eligible[f] = (ahead >= 1) & (ahead <= span)
    admitted = np.zeros((config.n_folds, n), dtype=bool)
    probs, rprobs, margins = round_(admitted, 0)
    init_m, init_rm = label_margin(y, probs), label_margin(y_ref, rprobs)
    # Rows model f may admit: its layout's, less those where the probe trained on the data
    # is far surer of the label than model f's round 0, which saw only the reference (a
    # learned trigger does that; admitting such rows taught self-training the trigger:
    # measured on a 30-feature table with an extreme-value trigger, 3 of 6 seeds). The
    # cut is a quantile over data rows only, so no reference row reaches model f's
    # admissions; ``eligible`` (the judges' layout) is untouched.
    admissible = eligible & ~dup[None, :]
    q = float(config.admit_contrast_quantile)
    if cv_margins is not None and q > 0:
        for f in range(k):
            contrast = margins[f] - cv_margins
            cand = admissible[f]
            if cand.any():
                admissible[f] &= contrast > np.quantile(contrast[cand], q)
    kept_counts = []
    thr = 0.0
    for r in range(config.self_training_rounds):
        thr = max(0.0, float(np.quantile(label_margin(y_ref, rprobs), config.admit_quantile)))
        # model f's admissions are decided by model f's own previous round, which never
        # trained on reference fold f: nothing of the rows that calibrate the verdict
        # reaches, through an admission, the model that scores them
        admitted = (margins > thr) & admissible
        kept_counts.append(int(round(admitted.sum() / span)))
        del probs
        probs, rprobs, margins = round_(admitted, r + 1)
        if progress:
            progress(f"anchored probe: self-training round {r + 1}/{config.self_training_rounds}")
    return AnchoredProbe(probs, rprobs, init_m, init_rm, kept_counts, model_margins=margins, admitted=admitted,
                         reference_folds=rfolds, eligible=eligible, admit_threshold=thr, n_reference_duplicates=int(dup.sum()))


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


def _batch_factors(predict_fn, X, y, idx=None):
    p, h = predict_fn(0, X, idx)
    yy = y if idx is None else y[idx]
    e = p.astype(np.float32)
    e[np.arange(len(yy)), yy] -= 1.0
    return e, np.concatenate([h, np.ones((len(h), 1), np.float32)], axis=1)


def _factors(predict_fn, load, checkpoints, X, y):
    errs, reps = [], []
    for _, state in checkpoints:
        load(state)
        e, h = _batch_factors(predict_fn, X, y)
        errs.append(e)
        reps.append(h)
    return np.stack(errs), np.stack(reps)


def tracin_probe(X, y, *, kind, n_classes, config, device, X_ref=None, y_ref=None):
    """Fit on all rows with checkpoints; return (train GradientFactors, reference GradientFactors|None).

    Holds C x N x (K + d + 1) floats; :func:`tracin_influence` streams instead.
    """
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


def tracin_influence(X, y, *, kind, n_classes, config, device, X_ref=None, y_ref=None,
                     batch_size: int = 65536):
    """TracIn scores (N,) float64 of the rows of X, streamed: same values as
    ``influence_scores`` on :func:`tracin_probe`'s factors, in O(batch) extra memory.

    Returns (scores, number of checkpoints)."""
    from .influence import influence_scores

    n = len(y)
    predict_fn, ckpts, load = _fit_many(X, y, [np.arange(n)], kind=kind, n_classes=n_classes, config=config,
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
