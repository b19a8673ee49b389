"""The combined per-row verdict.

Rule ``"auto"`` (the default):

1. Label consistency. With a trusted reference, the reference-anchored probe (which
   never trained on the row, nor on any row it disagreed with) reads the labels; a row
   is flagged when cleanlab's ``find_label_issues`` (per-class thresholds, so it adapts
   to the probe's calibration and to the estimated noise rate) calls it a label issue,
   or when the probe gives its label a probability below ``label_prob_cutoff`` while
   preferring another class (a fixed, scale-free floor that catches what the noise-rate
   estimate under-counts). Without a reference, cleanlab's ``find_label_issues`` on the
   cross-validated probe decides.
2. The estimated poison rate is the fraction flagged by step 1.

Rule ``"label_noise"`` is step 1 alone; ``"union"`` flags a row any screen flagged.
"""

from __future__ import annotations

import numpy as np

from .label_noise import implausible_labels


def combine_verdict(*, labels, config, label_probs, anchored: bool, screen_flags: dict):
    """Return (flagged (N,) bool, rule description dict)."""
    rule = config.combine
    if rule == "union":
        flagged = np.zeros(len(labels), dtype=bool)
        for f in screen_flags.values():
            flagged |= f
        return flagged, {"name": "union", "text": "flagged by any screen"}
    if anchored:
        flagged = screen_flags["label_noise"] | implausible_labels(labels, label_probs,
                                                                   cutoff=config.label_prob_cutoff)
        text = ("on the reference-anchored probe's pred_probs: cleanlab find_label_issues, or label "
                f"probability < {config.label_prob_cutoff} while another class is preferred")
    else:
        flagged = screen_flags["label_noise"].copy()
        text = "cleanlab find_label_issues on the cross-validated probe's pred_probs"
    return flagged, {"name": rule, "text": text}
