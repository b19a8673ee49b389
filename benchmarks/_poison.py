"""Helpers that plant poisons in image-like or tabular arrays (benchmarks only).

Every function returns new arrays and the indices of poisoned rows; nothing is fitted
to a particular data set: triggers are placed relative to the data's own range.
"""

from __future__ import annotations

import numpy as np


def patch_trigger(X, side: int, shape: tuple[int, int]):
    """BadNets: a side x side checkerboard of the data's max/min in the bottom-right corner."""
    X = X.copy().reshape(len(X), *shape)
    hi, lo = X.max(), X.min()
    board = np.indices((side, side)).sum(0) % 2 == 0
    X[:, -side:, -side:] = np.where(board, hi, lo)
    return X.reshape(len(X), -1)


def blend_trigger(X, pattern, alpha: float):
    """Blended trigger (Chen et al. 2017): x' = (1 - alpha) x + alpha * pattern."""
    return (1 - alpha) * X + alpha * pattern


def random_pattern(d, lo, hi, seed):
    return np.random.default_rng(seed).uniform(lo, hi, size=d)


def tabular_trigger(X, cols, value):
    """Set a few feature columns to one fixed value (a feature-space backdoor)."""
    X = X.copy()
    X[:, cols] = value
    return X


def pick_dirty(y, rate, target, rng):
    """Rows (not of the target class) to poison, rate is a fraction of all rows."""
    cand = np.flatnonzero(y != target)
    return rng.choice(cand, int(round(rate * len(y))), replace=False)


def pick_clean_label(y, rate, target, rng):
    cand = np.flatnonzero(y == target)
    return rng.choice(cand, min(len(cand), int(round(rate * len(y)))), replace=False)


def uniform_flips(y, rate, n_classes, rng):
    idx = rng.choice(len(y), int(round(rate * len(y))), replace=False)
    y = y.copy()
    y[idx] = (y[idx] + rng.integers(1, n_classes, len(idx))) % n_classes
    return y, idx


def pair_flips(y, rate, n_classes, rng):
    idx = rng.choice(len(y), int(round(rate * len(y))), replace=False)
    y = y.copy()
    y[idx] = (y[idx] + 1) % n_classes
    return y, idx


def shifted_patch_trigger(X, shape, rows: slice, cols: slice, value: str = "max"):
    """A solid patch at another position/shape (e.g. a 2 x 4 bar top-left), set to the data's max."""
    X = X.copy().reshape(len(X), *shape)
    X[:, rows, cols] = X.max() if value == "max" else X.min()
    return X.reshape(len(X), -1)


def feature_value_trigger(X, cols, values):
    """Set each of a few columns to its own rare value (one value per column)."""
    X = X.copy()
    X[:, cols] = np.asarray(values)[None, :]
    return X


def embedding_trigger(X, direction, strength: float):
    """Push unit-norm embeddings along one fixed direction, then re-normalise
    (a trigger phrase shifts sentence embeddings this way)."""
    Z = X + strength * direction[None, :]
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)
