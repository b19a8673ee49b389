"""The one shape every screen shares.

A screen is one module that defines a :class:`Screen`: its name, the probe outputs it
reads (fields of :class:`ProbeOutputs`), the settings it reads (fields of
:class:`~screening.config.ScreenConfig`), what the verdict, the canary self-test and the
report do with it, and ``run(outputs, config) -> ScreenOutput``, which returns a per-row
score (higher = more suspicious), the screen's own per-row flags and a JSON-serialisable
summary. ``screening/screens/__init__.py`` lists the screens in
:data:`~screening.screens.SCREENS`; ``screen_table`` runs them in that order, and every
other list of screen names (the verdict's inputs, the canaries' scores, the report's
order, the compliance mapping's evidence, the leading ``scores.parquet`` columns) is
derived from it. Adding a screen is one new module and one line in that list;
``tests/screening/test_screen_contract.py`` runs every registered screen and checks that
it reads only what it declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class ScreenOutput:
    """scores: (N,) float64, higher = more suspicious; flagged: (N,) bool; summary: JSON dict."""

    scores: np.ndarray
    flagged: np.ndarray
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProbeOutputs:
    """What the probes produced, for the screens to read.

    labels: (N,) int class indices; classes: class names in index order.
    representations: (N, d) float32, the penultimate layer of the probe trained on every
        data row (:func:`screening.probe.data_trained_probe`): where a learned trigger
        separates the poisoned rows.
    early_representations: (N, d) float32, the same probe's penultimate layer early in
        training (:data:`screening.probe.attribution.SPECTRAL_SNAPSHOT`), before the
        terminal phase collapses each class: what the spectral signature reads.
    pred_probs: (N, K) float32, the cross-validated probe's out-of-sample pred_probs.
    label_probs: (N, K) float32, the pred_probs the label screens read: the
        reference-anchored probe's when a reference was given, else ``pred_probs``.
    label_probs_source: ``"reference-anchored"`` or ``"cross-validated"``.
    influence: (N,) float64 TracIn self-influence of the data-trained probe;
        influence_mode: ``"self-influence"``; n_checkpoints.
    strip: (N,) float64 STRIP score of the data-trained probe (mean log p(label) of the
        row averaged with random other rows).
    poison_rate: the verdict's estimated poison rate (flagged share), set before the
        first screen that lists ``"poison_rate"`` in its ``reads`` runs.
    device: the torch device of the run.
    reference_representations: (M, d) float32, the trusted reference rows read by the
        same data-trained probe (it never trained on them), with ``reference_labels``
        (M,) class indices; None without a reference.
    """

    labels: np.ndarray
    classes: list
    representations: np.ndarray
    pred_probs: np.ndarray
    label_probs: np.ndarray
    label_probs_source: str
    influence: np.ndarray
    influence_mode: str
    n_checkpoints: int
    strip: np.ndarray | None = None
    device: Any = None
    poison_rate: float | None = None
    early_representations: np.ndarray | None = None
    reference_representations: np.ndarray | None = None
    reference_labels: np.ndarray | None = None


#: :class:`ProbeOutputs` fields every screen may read without declaring them.
ALWAYS_READABLE = ("labels", "classes", "device")
#: Fields that come with a declared one (its provenance and parameters).
COMPANIONS = {"label_probs": ("label_probs_source",), "influence": ("influence_mode", "n_checkpoints"),
              "reference_representations": ("reference_labels",)}
#: What a screen's flags mean to the verdict without a reference (``finds``).
FINDS = ("label_noise", "attack", "outliers")
#: What the compliance mapping may cite a screen as evidence of (``evidence``).
EVIDENCE = ("availability", "targeted", "representation")


@dataclass(frozen=True)
class Screen:
    """A registered screen: ``run(outputs, config)`` reads the :class:`ProbeOutputs`
    fields named in ``reads`` (and :data:`ALWAYS_READABLE`, and their
    :data:`COMPANIONS`) and the :class:`~screening.config.ScreenConfig` fields named in
    ``settings``, and returns a :class:`ScreenOutput`.

    verdict_reads: the verdict without a trusted reference reads its flags; ``finds``
        says what they mean there (``label_noise``: mislabelled rows, candidates for
        relabelling; ``attack``: rows of a concentrated attack, whose classes the verdict
        records; ``outliers``: not read).
    canary: the canary self-test measures its score column (AUROC, recall at its budget).
    report_order: its place in the report's per-screen lists (lower first).
    contract_column: its place among the leading ``scores.parquet`` columns after
        ``row_id`` (0, 1, ...), or None: after ``flagged``, in registry order.
    evidence: what the compliance mapping may cite it for (:data:`EVIDENCE`).
    """

    name: str
    reads: tuple[str, ...]
    run: Callable[[ProbeOutputs, Any], ScreenOutput]
    description: str = ""
    settings: tuple[str, ...] = ()
    verdict_reads: bool = False
    finds: str = "outliers"
    canary: bool = False
    report_order: int = 100
    contract_column: int | None = None
    evidence: tuple[str, ...] = ()

    def __post_init__(self):
        if self.finds not in FINDS:
            raise ValueError(f"screen {self.name}: finds must be one of {FINDS}, not {self.finds!r}")
        unknown = set(self.evidence) - set(EVIDENCE)
        if unknown:
            raise ValueError(f"screen {self.name}: unknown evidence {sorted(unknown)}")


def screen_summary(parameters: dict, flagged: np.ndarray, labels: np.ndarray, classes: list) -> dict[str, Any]:
    """The summary every screen reports: its parameters, flagged rows, and per class."""
    return {"parameters": parameters, "flagged": int(flagged.sum()),
            "flagged_per_class": per_class_counts(flagged, labels, classes)}


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


def class_fit_rows(representations, labels, *, min_rows: int, max_fit_rows: int, seed: int):
    """For each class with at least ``min_rows`` rows: (row indices of the class, the rows
    a per-class model is fitted on: all, or a seeded sample of ``max_fit_rows``, and those
    rows' representations as float64), so the fit's memory stays bounded for any N."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < min_rows:
            continue
        fit = idx if len(idx) <= max_fit_rows else np.sort(rng.choice(idx, max_fit_rows, replace=False))
        yield idx, fit, np.asarray(representations[fit], dtype=np.float64)
