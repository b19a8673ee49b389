"""Small synthetic data and a fast configuration for the screening tests.

A plain module (not conftest.py), so tests import it by a name that no other test
folder shares.
"""
import numpy as np
import pandas as pd

from screening import ScreenConfig

FAST = ScreenConfig(n_folds=3, target_steps=150, hidden=32, rep_dim=16,
                    n_checkpoints=3, self_training_rounds=1)


def blobs(n_per_class=60, n_classes=3, d=6, seed=0, sep=4.0, noise_seed=None):
    """Gaussian classes around centres drawn from ``seed``; ``noise_seed`` (default: seed)
    draws the rows, so the same centres with another noise_seed give fresh rows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, d)) * sep
    if noise_seed is not None:
        rng = np.random.default_rng([seed, noise_seed])
    X = np.concatenate([centres[c] + rng.normal(size=(n_per_class, d)) for c in range(n_classes)])
    y = np.repeat(np.arange(n_classes), n_per_class)
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


def frame(X, y, label="label"):
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    df[label] = y
    return df


def flipped_blobs():
    """Three blob classes of 70 rows with 15 labels flipped to the next class, and a fresh
    40-row-per-class reference from the same centres: (X, y_true, y_noisy, flip, Xr, yr)."""
    X, y = blobs(n_per_class=70, n_classes=3, seed=1)
    # same centres, fresh rows (an overlapping reference would make its out-of-fold margins
    # look better than a clean data row's)
    Xr, yr = blobs(n_per_class=40, n_classes=3, seed=1, noise_seed=99)
    rng = np.random.default_rng(5)
    y_noisy = y.copy()
    flip = rng.choice(len(y), 15, replace=False)
    y_noisy[flip] = (y[flip] + 1) % 3
    return X, y, y_noisy, flip, Xr, yr
