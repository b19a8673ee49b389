"""Influence screen: the TracIn self-influence of every row under the probe trained on all
data rows (:func:`screening.probe.data_trained_probe`; exact last-layer gradients over
its checkpoints, ``sum_c lr_c |e_ic|^2 |h_ic|^2``, Pruthi et al. 2020): a mislabelled row
keeps a large gradient because the model cannot fit it without memorising it. Flagged
where it is a robust-z outlier (reported; not part of the default verdict).
"""

from __future__ import annotations

from .base import ProbeOutputs, Screen, ScreenOutput, robust_z, screen_summary


def _run(outputs: ProbeOutputs, config) -> ScreenOutput:
    scores = outputs.influence
    flagged = robust_z(scores) > config.outlier_z
    return ScreenOutput(scores, flagged, screen_summary(
        {"mode": outputs.influence_mode, "checkpoints": int(outputs.n_checkpoints), "outlier_z": config.outlier_z},
        flagged, outputs.labels, outputs.classes))


SCREEN = Screen("influence", ("influence",), _run, "TracIn influence of the probe trained on all rows",
                settings=("outlier_z",), canary=True, report_order=2, contract_column=2, evidence=("targeted",))
