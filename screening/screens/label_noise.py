"""Label-noise screen: cleanlab's label-quality score and label-issue filter.

Reads out-of-sample ``pred_probs``. When a trusted reference is given, the screening
stage passes the reference-anchored probe's pred_probs, which never learned a trigger
and so expose dirty-label backdoors as label errors.
"""

from __future__ import annotations

import numpy as np

from .base import ProbeOutputs, Screen, ScreenOutput, screen_summary


def label_noise_scores(labels: np.ndarray, pred_probs: np.ndarray, *, method: str = "self_confidence") -> np.ndarray:
    """``1 - cleanlab.rank.get_label_quality_scores``: (N,) float64, higher = more suspicious.

    Args:
        labels: (N,) int class indices in 0..K-1.
        pred_probs: (N, K) out-of-sample predicted probabilities (rows sum to 1).
        method: cleanlab's label-quality method (``self_confidence``,
            ``normalized_margin``, ``confidence_weighted_entropy``).
    """
    from cleanlab.rank import get_label_quality_scores

    q = get_label_quality_scores(np.asarray(labels), np.asarray(pred_probs), method=method)
    return 1.0 - np.asarray(q, dtype=np.float64)


def label_noise_flags(labels: np.ndarray, pred_probs: np.ndarray, *,
                      filter_by: str = "prune_by_noise_rate") -> np.ndarray:
    """cleanlab ``find_label_issues`` boolean mask (N,).

    With ``n_jobs=1`` cleanlab (2.9) keeps a per-class copy of ``pred_probs`` in the
    module globals ``pred_probs_by_class`` / ``prune_count_matrix_cols`` after it
    returns; they are dropped here, or a copy of the (N, K) input would stay alive for
    the rest of the run (N x K floats)."""
    import cleanlab.filter as cleanlab_filter

    try:
        return np.asarray(cleanlab_filter.find_label_issues(np.asarray(labels), np.asarray(pred_probs),
                                                           filter_by=filter_by, n_jobs=1), dtype=bool)
    finally:
        for name in ("pred_probs_by_class", "prune_count_matrix_cols"):
            if hasattr(cleanlab_filter, name):
                setattr(cleanlab_filter, name, None)


def _run(outputs: ProbeOutputs, config) -> ScreenOutput:
    y, probs = outputs.labels, outputs.label_probs
    method, filter_by = "self_confidence", config.label_noise_filter_by
    scores = label_noise_scores(y, probs, method=method)
    flagged = label_noise_flags(y, probs, filter_by=filter_by)
    return ScreenOutput(scores, flagged, screen_summary(
        {"method": method, "filter_by": filter_by, "pred_probs": outputs.label_probs_source},
        flagged, y, outputs.classes))


SCREEN = Screen("label_noise", ("label_probs",), _run, "cleanlab label quality and find_label_issues",
                settings=("label_noise_filter_by",), verdict_reads=True, finds="label_noise", canary=True,
                report_order=0, contract_column=1, evidence=("availability",))
