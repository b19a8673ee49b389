"""The combined per-row verdict, and the text a report prints for it.

Rule ``"auto"`` (the default), with a trusted reference:

    A data row is flagged when the probe that never trained on it rejects its label
    more strongly than it rejects the labels of all but a fraction ``alpha`` of the
    trusted reference rows.

Concretely, the score is the label margin ``log p(label) - log max_{other} p``
(:func:`screening.probe.label_margin`) under the self-trained, reference-anchored probe
(:func:`screening.probe.anchored_probe`). Reference rows are scored out-of-fold by the
very models that score the data rows, so for a clean data row and a reference row the
margin has the same distribution. The row's conformal p-value is
``(1 + #{reference margins <= its margin}) / (M + 1)``; it is flagged when that p-value is
at most ``max(alpha, 1 / (M + 1))``. The expected flag rate on clean rows exchangeable
with the reference is then at most that level: ``alpha`` (default 2 %) once the reference
has ``1 / alpha - 1`` rows or more. No constant is fitted to any data set: the cut-off
adapts to how good the probe is, because the reference's own out-of-fold margins say how
far from the probe's preference a clean row's label can be. (The reference-only probe of
round 0 is computed and reported too; a union with it at alpha / 2 each was measured on
digits and halved patch recall at the same clean flag rate, so it is not in the rule.)

Without a reference there is nothing trusted to calibrate on: the verdict is
cleanlab's ``find_label_issues`` on the cross-validated probe, restricted to rows whose
label the probe rejects (another class is the argmax); the flag rate on clean data then
depends on the probe and is reported, not bounded.

Rule ``"label_noise"`` is cleanlab's ``find_label_issues`` alone; ``"union"`` flags a row
any screen flagged.
"""

from __future__ import annotations

import numpy as np


def conformal_lower_pvalues(scores: np.ndarray, reference_scores: np.ndarray) -> np.ndarray:
    """Conformal p-values for "this score is unusually low" against a clean reference.

    Args:
        scores: (N,) scores of the rows under test (lower = more suspicious).
        reference_scores: (M,) the same score on trusted rows, computed the same way.

    Returns:
        (N,) float64, ``(1 + #{j: reference_scores[j] <= scores[i]}) / (M + 1)``. For a row
        exchangeable with the reference rows, ``P(p <= a) <= a`` for every ``a``.
    """
    ref = np.sort(np.asarray(reference_scores, dtype=np.float64))
    below = np.searchsorted(ref, np.asarray(scores, dtype=np.float64), side="right")
    return (1.0 + below) / (len(ref) + 1.0)


def calibrated_level(alpha: float, n_reference: int) -> float:
    """The p-value level actually used: ``alpha``, or ``1 / (M + 1)`` when the reference is
    too small for a p-value that low (the smallest one a row can get)."""
    return max(float(alpha), 1.0 / (n_reference + 1.0))


def reference_calibrated_verdict(margins, reference_margins, *, alpha: float):
    """Flag rows whose label margin is implausibly low for a clean row under any probe.

    Args:
        margins: list of (N,) label margins of the data rows, one per probe (each from
            out-of-sample pred_probs, see :func:`screening.probe.label_margin`).
        reference_margins: list of (M,) margins of the trusted reference rows, same probes,
            same order, scored the same way.
        alpha: total target flag rate on clean rows, split evenly over the probes.

    Returns:
        (flagged (N,) bool, p-value (N,) float64 (the smallest over the probes times their
        number, capped at 1: Bonferroni), details dict with per-probe cut-offs and counts).
    """
    n_probes = len(margins)
    n_ref = len(reference_margins[0])
    level = calibrated_level(alpha / n_probes, n_ref)
    flagged = np.zeros(len(margins[0]), dtype=bool)
    pmin = np.ones(len(margins[0]))
    details = []
    for m, mr in zip(margins, reference_margins):
        p = conformal_lower_pvalues(m, mr)
        f = p <= level
        flagged |= f
        pmin = np.minimum(pmin, p)
        k = max(1, int(np.floor(level * (n_ref + 1))))
        details.append({"flagged": int(f.sum()),
                        "margin_cutoff": float(np.sort(mr)[k - 1])})  # flagged: margin < this
    return flagged, np.minimum(1.0, pmin * n_probes), {"p_value_level": level, "probes": details,
                                                       "clean_flag_rate_bound": min(1.0, level * n_probes)}


def combine_verdict(*, labels, config, label_probs, anchored=None, screen_flags: dict,
                    ref_labels=None):
    """Return (flagged (N,) bool, rule description dict with ``name`` and ``text``).

    Args:
        labels: (N,) int class indices.
        config: :class:`screening.ScreenConfig` (``combine``, ``verdict_alpha``).
        label_probs: (N, K) the label screen's pred_probs (used without a reference).
        anchored: :class:`screening.probe.AnchoredProbe` or None.
        screen_flags: per-screen (N,) bool flags (``"label_noise"`` at least).
        ref_labels: (M,) reference labels when ``anchored`` is given.
    """
    rule = config.combine
    if rule == "union":
        flagged = np.zeros(len(labels), dtype=bool)
        for f in screen_flags.values():
            flagged |= f
        return flagged, {"name": "union", "text": "flagged by any screen"}
    if rule == "label_noise":
        return screen_flags["label_noise"].copy(), {
            "name": "label_noise", "text": "cleanlab find_label_issues on the label screen's pred_probs"}
    if anchored is not None:
        from .probe import label_margin

        flagged, pvals, details = reference_calibrated_verdict(
            [label_margin(labels, anchored.pred_probs)],
            [label_margin(ref_labels, anchored.reference_pred_probs)], alpha=config.verdict_alpha)
        details["probes"][0]["probe"] = f"self-trained, reference-anchored (round {len(anchored.kept_per_round)})"
        f0 = conformal_lower_pvalues(anchored.initial_margins, anchored.initial_reference_margins) <= \
            details["p_value_level"]
        details["reference_only_probe_would_flag"] = int(f0.sum())
        level = details["p_value_level"]
        text = ("flagged when the label margin log p(label) - log max_other p, from a reference-anchored probe "
                "that never trained on the row, is lower than the trusted reference rows' own out-of-fold "
                f"margins allow: conformal p-value <= {level:.4g} (margin < "
                f"{details['probes'][0]['margin_cutoff']:.3g}); expected flag rate on clean rows <= "
                f"{details['clean_flag_rate_bound']:.2%} (alpha={config.verdict_alpha}, "
                f"{len(ref_labels)} reference rows)")
        return flagged, {"name": "reference_calibrated", "text": text, "p_values": pvals, **details}
    p = np.asarray(label_probs)
    rejects = p.argmax(axis=1) != np.asarray(labels)
    flagged = screen_flags["label_noise"] & rejects
    text = ("no reference: cleanlab find_label_issues on the cross-validated probe's pred_probs, "
            "where the probe prefers another class (flag rate on clean data not bounded)")
    return flagged, {"name": "cleanlab_cross_validated", "text": text}
