"""Knobs of the screening stage, in one frozen dataclass.

Every default is scale-free (a probability, a fraction, a robust z-score, a count of
folds) rather than a value fitted to one data set; see ``screening/verdict/`` for the rule
that turns the probes' and screens' outputs into the per-row verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class VerdictConfig:
    """The per-row verdict's settings (docs/verdict.md; ``screening.verdict``).

    rule: ``"auto"`` (with a trusted reference the reference-calibrated rule, else
        cleanlab on the cross-validated probe), ``"reference_calibrated"`` (the same),
        ``"label_noise"`` (cleanlab's flags alone) or ``"union"`` (any screen's flags).
    alpha: target flag rate on clean rows for the reference-calibrated verdict (the
        conformal p-value level; the expected flag rate on clean rows is at most
        ``max(alpha, 1 / (M + 1))`` for M judged reference rows).
    confidence: ``None`` (default): ``alpha`` bounds the *expected* clean flag rate. A
        probability such as 0.9: the level is lowered until the clean flag rate of this
        very table stays below ``alpha`` with that probability (needs a larger reference
        to flag anything; fewer flags).
    excess_fdr, excess_delta, excess_levels: the class-excess test: the largest estimated
        share of clean rows among a class's extra flags, the family-wise chance of it
        firing on a clean table (split by Bonferroni over its statistics), and the
        p-value levels it may lift a class's cut-off to.
    expansion_level: the trigger expansion: in a class where the class excess fired, a
        row is also flagged when a classifier of the class's flagged rows against its
        trusted rows scores it above them at this cross-conformal p-value level. 0 turns
        it off.
    row_fdr: the false discovery rate the row-level test controls (default 0.1): a row is
        flagged when the Benjamini-Hochberg procedure at this rate rejects its
        tail-refined conformal p-value (Bates et al. 2023), or, inside a class where the
        class-excess test found contamination, when its p-value is at most the ``alpha``
        level. A clean table yields almost no flags. With fewer than
        ``TAIL_MIN_REFERENCE`` (50) reference rows, or ``None``: every row at p <= level
        is flagged, whatever the table (about ``alpha`` of any clean table;
        docs/verdict.md, docs/benchmarks.md).
    noise_floor_level: the label-noise floor (with a reference; ``screening.verdict.noise``):
        when the data rows disagree with the cross-validated probe more often than the
        reference rows do, beyond this one-sided confidence level, the verdict holds at
        least the lower bound on the noisy rows that follows, adding the unflagged rows
        with the lowest cross-validated margin. 0 turns it off.
    attack_screens: with a reference, also flag the groups that the screens which find
        attacks without a reference (the reference-free backdoor screen) flag, and count
        their classes as attacked (part 6 of docs/verdict.md). Those screens calibrate a
        class on the other classes' rows, thousands where the reference holds tens per
        class, and see a trigger the data-trained model learned that the reference's
        class-excess test is too small to certify. False turns it off.
    """

    rule: str = "auto"
    alpha: float = 0.02
    confidence: float | None = None
    excess_fdr: float = 0.2
    excess_delta: float = 0.1
    excess_levels: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)
    expansion_level: float = 0.02
    row_fdr: float | None = 0.1
    noise_floor_level: float = 0.01
    attack_screens: bool = True

    def __post_init__(self):
        if self.rule not in ("auto", "reference_calibrated", "label_noise", "union"):
            raise ValueError("verdict rule must be auto, reference_calibrated, label_noise or union, "
                             f"not {self.rule!r}")
        object.__setattr__(self, "excess_levels", tuple(float(t) for t in self.excess_levels))


@dataclass(frozen=True)
class ScreenConfig:
    """Configuration of :func:`screening.screen_table`.

    Probe (the model whose outputs every screen reads)
        n_folds: folds of the cross-validated probe; every class needs at least this
            many rows.
        seed: seeds fold assignment, initialisation and batch order.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        hidden, rep_dim: widths of the probe's hidden layer and of its penultimate
            layer (the representation the spectral screen reads).
        epochs: passes over the data; ``None`` picks enough passes for about
            ``target_steps`` optimiser steps, capped by ``max_epochs``.
        batch_size, lr, weight_decay: AdamW settings.
        n_checkpoints: checkpoints per probe fit kept for TracIn.
        self_training_rounds: rounds of reference-anchored self-training (used only
            when a trusted reference is given).
        input_kind: ``"auto"``, ``"tabular"``, ``"embedding"``, ``"image"`` or ``"text"``.
        image_shape: (height, width) or (channels, height, width) for image columns
            whose length is not a perfect square.
        text_featurizer: name of the featurizer for free-text feature columns.
        max_onehot: a string column with at most this many distinct values is one-hot
            encoded; above it, hashed (or embedded, when it reads as free text).
        hash_buckets: signed hash buckets for a high-cardinality string column.
        max_features, max_probe_input_mb: a tabular input wider than ``max_features``,
            or whose normalised float32 copy would exceed ``max_probe_input_mb``, is
            projected onto its top principal components before the probe, as many as fit
            (``screening.inputs.projection_width``).
        image_size: encoded images larger than this (or of mixed sizes) are resized to
            this square size for the CNN probe.
        max_batch_size: the largest training batch; large tables train ``target_steps``
            steps on random batches up to this size instead of whole epochs.
        inference_batch_size: rows per forward pass when scoring.
        threads: torch CPU threads inside ``screen_table`` (restored afterwards);
            ``None``: 1 for small tables, else the usable cores up to 4.
        max_representation_mb: memory cap for the two (N, rep_dim) float32
            representations (the data-trained probe's final and early layer); above it
            rep_dim is halved (down to 8) so 10M-row tables stay in memory (at the
            default 1024 MiB, from about 2.1M rows on).
        admit_quantile: self-training admits a data row only when its label margin is
            above this quantile of the reference rows' out-of-fold margins (and above 0):
            a row the probe is less sure of than of 3 in 4 trusted rows stays out, so a
            half-believed poisoned row cannot teach the next round its trigger (measured
            on a blended trigger, see docs/design-notes.md).
        admit_contrast_quantile: self-training never admits the data rows whose round-0
            label margin (the reference-only model's) falls furthest below the
            cross-validated probe's, this share of each model's admissible rows: where
            the probe trained on the data is much surer of a label than the probe that
            never saw the data, the row may carry a trigger, and admitting it would teach
            the trigger to the next round. 0 turns it off.
        admit_folds: from how many other data folds each self-training model may admit
            rows; a row is judged only by the other ``n_folds - admit_folds`` models.
            ``None``: ``(n_folds - 1) // 2``, or 1 for a small reference
            (:func:`screening.probe.admit_span`).

    Screens
        spectral_method: ``"centred"`` (Tran, Li, Madry 2018, Algorithm 1) or
            ``"robust"`` (whitened with a robust covariance, after SPECTRE).
        spectral_eps: assumed poison fraction for the spectral budget
            (removes ``1.5 * eps`` rows per class); ``None`` uses the estimated rate.
        label_noise_filter_by: cleanlab ``filter_by`` for ``find_label_issues``.
        outlier_z: robust z-score (median / MAD) above which the influence score is an
            outlier (its own flags; not part of the default verdict).
        cluster_max_fraction: the largest fraction of a class a suspicious
            sub-population may have (activation-clustering size rule).

    verdict: :class:`VerdictConfig`, the rule that turns the probes and screens into
        the per-row verdict.
    """
    n_folds: int = 5
    seed: int = 0
    device: str = "auto"
    hidden: int = 128
    rep_dim: int = 64
    epochs: int | None = None
    target_steps: int = 800
    max_epochs: int = 1000
    batch_size: int = 128
    max_batch_size: int = 4096
    lr: float = 2e-3
    weight_decay: float = 1e-4
    n_checkpoints: int = 4
    self_training_rounds: int = 2
    admit_quantile: float = 0.25
    admit_contrast_quantile: float = 0.1
    admit_folds: int | None = None
    input_kind: str = "auto"
    image_shape: tuple[int, ...] | None = None
    text_featurizer: str = "minilm"
    max_onehot: int = 32
    hash_buckets: int = 32
    max_features: int = 2048
    max_probe_input_mb: int = 1024
    image_size: int = 32
    inference_batch_size: int = 8192
    threads: int | None = None
    max_representation_mb: int = 1024

    spectral_method: str = "centred"
    spectral_eps: float | None = None
    label_noise_filter_by: str = "prune_by_noise_rate"
    outlier_z: float = 3.5
    cluster_max_fraction: float = 0.35

    verdict: VerdictConfig = field(default_factory=VerdictConfig)

    def __post_init__(self):
        if isinstance(self.verdict, dict):  # from to_dict() / JSON
            object.__setattr__(self, "verdict", VerdictConfig(**self.verdict))
        if self.image_shape is not None and not isinstance(self.image_shape, tuple):
            object.__setattr__(self, "image_shape", tuple(self.image_shape))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists for tuples, the verdict's settings as a nested dict."""
        d = asdict(self)
        d["verdict"]["excess_levels"] = list(d["verdict"]["excess_levels"])
        if d["image_shape"] is not None:
            d["image_shape"] = list(d["image_shape"])
        return d
