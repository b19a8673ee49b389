"""The one shape every screen shares.

A screen is a function ``(probe_outputs, labels, config) -> ScreenOutput``: it reads
what the probe produced for it (representations, pred_probs or gradients), returns a
per-row score where higher means more suspicious, its own per-row flags, and a
JSON-serialisable summary. Adding a screen is one new module that defines such a
function and registers it in :data:`SCREENS` (see ``_registry.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ScreenOutput:
    """scores: (N,) float64, higher = more suspicious; flagged: (N,) bool; summary: JSON dict."""

    scores: np.ndarray
    flagged: np.ndarray
    summary: dict[str, Any] = field(default_factory=dict)


def per_class_counts(flagged: np.ndarray, labels: np.ndarray, classes: list) -> dict[str, int]:
    """Flagged rows per class name (JSON keys are strings)."""
    counts = np.bincount(labels[flagged], minlength=len(classes))
    return {str(c): int(n) for c, n in zip(classes, counts)}


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 * MAD); a MAD of zero falls back to the mean absolute deviation."""
    x = np.asarray(x, dtype=np.float64)
    med = np.median(x)
    mad = 1.4826 * np.median(np.abs(x - med))
    if mad <= 0:
        mad = 1.2533 * np.mean(np.abs(x - med))
    if mad <= 0:
        return np.zeros_like(x)
    return (x - med) / mad


def top_fraction_per_class(scores: np.ndarray, labels: np.ndarray, fraction: float) -> np.ndarray:
    """Flag the ``ceil(fraction * n_c)`` highest-scoring rows of every class c."""
    flagged = np.zeros(len(scores), dtype=bool)
    if fraction <= 0:
        return flagged
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = min(len(idx), int(np.ceil(fraction * len(idx))))
        if k:
            top = idx[np.argsort(-scores[idx], kind="stable")[:k]]
            flagged[top] = True
    return flagged
