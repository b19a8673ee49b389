"""Influence screen: the TracIn score of every row (:func:`screening.probe.tracin_influence`,
exact last-layer gradients over the probe's checkpoints), flagged where it is a robust-z
outlier (reported; not part of the default verdict).

Against a trusted reference the score is ``-sum_c lr_c * e_ic^T G_c h_ic`` with ``G_c``
the mean reference gradient (positive: a step on the row raises the reference loss);
without one, self-influence ``sum_c lr_c * |e_ic|^2 |h_ic|^2`` (Pruthi et al. 2020).
"""

from __future__ import annotations

from .base import ProbeOutputs, Screen, ScreenOutput, robust_z, screen_summary


def _run(outputs: ProbeOutputs, config) -> ScreenOutput:
    scores = outputs.influence
    flagged = robust_z(scores) > config.outlier_z
    return ScreenOutput(scores, flagged, screen_summary(
        {"mode": outputs.influence_mode, "checkpoints": int(outputs.n_checkpoints), "outlier_z": config.outlier_z},
        flagged, outputs.labels, outputs.classes))


SCREEN = Screen("influence", ("influence",), _run, "TracIn influence of the probe trained on all rows")
