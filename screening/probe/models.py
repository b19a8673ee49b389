"""The probe's networks: an MLP for tabular, embedding and text features, a small CNN
for images (whose cost per image stops growing with the resolution, see :class:`CNN`),
and the batched MLP that trains k cross-validation folds as one model."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class MLP(nn.Module):
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
#: pixel (see :class:`CNN`).
CNN_GRID = 8

#: Activations one CNN inference batch may hold, in floats (rows per batch shrink with
#: the image's size, so memory stays bounded whatever the resolution).
CNN_INFERENCE_FLOATS = 1 << 24


class CNN(nn.Module):
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
    the same averages, several times cheaper forward and backward on a CPU than the
    adaptive kernel."""

    def __init__(self, h: int, w: int, out: int):
        super().__init__()
        self.out = out * out
        weight = torch.kron(_pool_matrix(h, out), _pool_matrix(w, out)).T.contiguous()
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x):  # (B, C, h, w) -> (B, C * out^2)
        return (x.flatten(2) @ self.weight).flatten(1)


def cnn_step_flops(in_shape: tuple[int, ...], grid: int | None = None) -> float:
    """Multiply-adds of one image's forward pass through :class:`CNN`'s convolutions."""
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




def make_model(kind: str, in_shape, n_classes: int, config) -> nn.Module:
    """A fresh probe network for one input kind: :class:`CNN` for images, else :class:`MLP`."""
    if kind == "image":
        return CNN(tuple(in_shape), n_classes, config.rep_dim)
    return MLP(int(np.prod(in_shape)), n_classes, config.hidden, config.rep_dim)


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
