"""``screen_table``: the public entry point that runs the probe and every screen on a table."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .config import ScreenConfig
from .encoding import jsonable
from .inputs import prepare_input

log = logging.getLogger("screening")


@dataclass
class ScreenResult:
    """What :func:`screen_table` returns.

    scores: DataFrame, one row per input row in input order; columns ``row_id`` (int64,
        0..N-1), ``spectral``, ``label_noise``, ``influence`` (float64, higher = more
        suspicious), ``flagged`` (bool, the combined verdict), then one float64 column per
        further registered screen (``backdoor``, ``activation_cluster``), ``reason`` (which
        rule flagged the row), with a reference ``label_p_value`` (float64, the verdict's
        conformal p-value: the fraction of trusted rows whose label the probe rejects at
        least as strongly), and ``suggested_label`` (the class cleanlab's probe prefers,
        for rows flagged as label noise outside any class where an attack was found;
        missing elsewhere).
    summary: JSON-serialisable dict (see :func:`screen_table`).
    representations: (N, d) float32, the penultimate layer of the probe trained on all rows
        (d = ``config.rep_dim``, halved for very large N, see ``max_representation_mb``).
    pred_probs: (N, K) float32, the pred_probs the label-noise screen read
        (reference-anchored when a reference was given, else cross-validated).
    cv_pred_probs: (N, K) float32, the cross-validated probe's pred_probs.
    classes: class names in index order.
    """

    scores: pd.DataFrame
    summary: dict[str, Any]
    representations: np.ndarray
    pred_probs: np.ndarray
    cv_pred_probs: np.ndarray
    classes: list = field(default_factory=list)


def screen_table(data, *, label_col: str, reference=None, feature_cols: list[str] | None = None,
                 config: ScreenConfig | None = None, progress: bool = False) -> ScreenResult:
    """Screen a labelled table for poisoned and mislabelled rows.

    Args:
        data: pyarrow.Table or pandas.DataFrame, N rows.
        label_col: name of the class-label column (ints or strings).
        reference: optional trusted table with the same columns; enables the
            reference-anchored probe and the reference-calibrated verdict.
        feature_cols: feature columns; default every numeric column except the label,
            or a single list / fixed-size-list column (embeddings; images when the
            length is a square number or ``config.image_shape`` fits).
        config: :class:`ScreenConfig`; default ``ScreenConfig()``.
        progress: progress messages always go to the ``screening`` logger; a callable
            also receives each one; True prints them to stderr when no logging handler
            is configured.

    Returns:
        :class:`ScreenResult`. ``summary`` holds ``n_rows``, ``n_features``,
        ``input_kind``, ``classes``, ``device``, ``config``, ``screens`` (per screen:
        parameters, flagged, flagged_per_class, seconds), ``probe`` (timings, accuracy,
        threads), ``combine`` (the :class:`~screening.verdict.Verdict` as data: ``name``, the rule's figures;
        ``flagged``, ``flagged_per_class``; with a reference also ``p_value_level``,
        ``clean_flag_rate_bound`` and the margin cut-off) and ``estimated_poison_rate``.

    Runs with ``config.threads`` torch threads (default: 1 for small tables, else up to
    4 usable cores) and restores the caller's thread count afterwards; CUDA when present
    unless ``config.device`` says otherwise; seeded by ``config.seed``.

    Raises:
        ScreeningInputError: the table cannot be screened (message says why).
    """
    from ._torch_utils import pick_device, torch_threads

    config = config or ScreenConfig()
    # the thread count is chosen once the input's size is known (see default_threads) and
    # restored afterwards, whatever happens
    with torch_threads(1):
        return _screen_table(data, label_col=label_col, reference=reference, feature_cols=feature_cols,
                             config=config, progress=progress, pick_device=pick_device)


def _suggested_labels(verdict, y, label_probs, classes) -> pd.Categorical:
    """cleanlab's suggestion for the rows flagged as label noise (outside any class where an
    attack was found): the class the label screen's probe prefers, where it is not the
    given label; missing elsewhere. A categorical of the class names (as text)."""
    names = [str(c) for c in classes]
    suggest = np.full(len(y), -1, dtype=np.int64)
    rows = np.flatnonzero(verdict.label_noise_rows(y))
    if len(rows):
        best = np.asarray(label_probs[rows]).argmax(axis=1)
        keep = best != y[rows]
        suggest[rows[keep]] = best[keep]
    return pd.Categorical.from_codes(suggest, categories=names)


def _progress_sink(progress):
    """Progress messages go to the ``screening`` logger (an Airflow task log, or the CLI's
    progress display); ``progress`` may also be a callable that receives each message, or
    True to print them to stderr when nothing else listens."""
    def say(msg: str) -> None:
        log.info(msg)
        if callable(progress):
            progress(msg)
        elif progress and not log.hasHandlers():
            print(f"[screening] {msg}", file=sys.stderr, flush=True)

    return say


def _fit_rep_dim(config: ScreenConfig, n: int) -> ScreenConfig:
    """Halve ``rep_dim`` (not below 8) until the two N x rep_dim float32 representations
    (final and early, :func:`~screening.probe.data_trained_probe`) fit ``max_representation_mb``."""
    import dataclasses

    r = config.rep_dim
    while r > 8 and 2 * n * r * 4 > config.max_representation_mb * 2 ** 20:
        r //= 2
    return config if r == config.rep_dim else dataclasses.replace(config, rep_dim=r)


def _screen_table(data, *, label_col, reference, feature_cols, config, progress, pick_device):
    """The steps of :func:`screen_table`: featurise, train the probes, the verdict with a
    reference, the screens (and the verdict that reads them), the per-row frame, the summary."""
    say = _progress_sink(progress)
    t_all = time.perf_counter()
    say("featurising: encoding every column")
    prep = prepare_input(data, label_col=label_col, reference=reference, feature_cols=feature_cols, config=config)
    say(f"featurised {len(prep.y)} rows into {prep.n_features} {prep.kind} features; training the probes")
    device = pick_device(config.device)
    import torch

    from ._torch_utils import default_threads

    torch.set_num_threads(int(config.threads) if config.threads else default_threads(prep.X.size))
    torch.manual_seed(config.seed)
    config = _fit_rep_dim(config, len(prep.y))
    n_features = prep.n_features  # read from prep.X, which the probes' step frees
    probes = _train_probes(prep, config, device, say)
    verdict, screens = _verdict_and_screens(probes, prep, config, device, say)
    scores = _scores_frame(verdict, screens, prep.y, probes.label_probs, prep.classes)
    summary = _summary(prep, n_features, probes, verdict, screens, config, device, torch,
                       time.perf_counter() - t_all)
    return ScreenResult(scores=scores, summary=summary, representations=probes.trained.representations,
                        pred_probs=probes.label_probs, cv_pred_probs=probes.cv.pred_probs,
                        classes=list(prep.classes))


@dataclass
class _Probes:
    """What the probes gave :func:`_screen_table`: the cross-validated and data-trained
    probes, the anchored probe's verdict (with a reference, computed while its per-model
    arrays are alive), the label screens' pred_probs and the training times."""

    cv: Any
    trained: Any
    label_probs: np.ndarray
    verdict: Any
    anchored_info: dict | None
    timings: dict


def _train_probes(prep, config, device, say) -> _Probes:
    """Train the cross-validated, anchored (with a reference) and data-trained probes on
    the normalised features; with a reference the verdict runs here, and the anchored
    probe's per-model arrays and the features are freed before the screens run, so they
    are never all held at once."""
    from .probe import anchored_probe, cross_validated_probe, data_trained_probe, label_margin, normalised_rows
    from .verdict import decide

    y, n = prep.y, len(prep.y)
    _, X_all = normalised_rows(prep.X, prep.X_ref, prep.kind, isotropic=prep.projection is not None)
    m = len(X_all) - n
    X, X_ref = X_all[:n], (X_all[n:] if m else None)
    y_all = np.concatenate([y, prep.y_ref]) if m else y
    prep.X = prep.X_ref = None  # the normalised buffer is all that is kept
    kw = dict(kind=prep.kind, n_classes=len(prep.classes), config=config, device=device)
    timings = {}

    t = time.perf_counter()
    cv = cross_validated_probe(X, y, X_ref=X_ref, progress=say, **kw)
    timings["cross_validated_probe"] = time.perf_counter() - t

    anchored = cv_m = None
    if m:
        t = time.perf_counter()
        cv_m = label_margin(y, cv.pred_probs)  # the cross-validated probe's margins: admissions and verdict
        anchored = anchored_probe(X_all, y_all, n, progress=say, cv_margins=cv_m, **kw)
        timings["anchored_probe"] = time.perf_counter() - t

    t = time.perf_counter()
    trained = data_trained_probe(X, y, X_ref=X_ref, **kw)
    timings["data_trained_probe"] = time.perf_counter() - t

    label_probs = anchored.pred_probs if anchored is not None else cv.pred_probs
    anchored_info = None if anchored is None else {
        "kept_per_round": anchored.kept_per_round, "admit_threshold": anchored.admit_threshold,
        "n_reference_duplicates": anchored.n_reference_duplicates}
    verdict = None
    # With a reference the default verdict reads the probes alone (not the screens' flags)
    if anchored is not None and config.verdict.rule not in ("union", "label_noise"):
        verdict = decide(config, labels=y, anchored=anchored, ref_labels=prep.y_ref, cv_margins=cv_m,
                         cv_reference_margins=label_margin(prep.y_ref, cv.reference_pred_probs),
                         features=X, reference_features=X_ref, cv_pred_probs=cv.pred_probs,
                         cv_reference_pred_probs=cv.reference_pred_probs)
    del anchored, cv_m, X_all, X, X_ref  # the screens read the probes' outputs only
    return _Probes(cv, trained, label_probs, verdict, anchored_info, timings)


def _verdict_and_screens(probes: _Probes, prep, config, device, say):
    """Run every registered screen; without a reference (or with the ``union`` or
    ``label_noise`` rule) the verdict reads their flags; with one, it adds the groups of
    the screens that find attacks (:func:`~screening.verdict.with_attack_screens`).
    Returns (verdict, screens)."""
    from .screens import SCREENS, ProbeOutputs
    from .verdict import decide, with_attack_screens

    say("probes trained; running screens")
    y, verdict, trained = prep.y, probes.verdict, probes.trained
    outputs = ProbeOutputs(labels=y, classes=list(prep.classes), representations=trained.representations,
                           early_representations=trained.early_representations,
                           pred_probs=probes.cv.pred_probs, label_probs=probes.label_probs,
                           label_probs_source=("reference-anchored" if probes.anchored_info is not None
                                               else "cross-validated"),
                           influence=trained.self_influence, influence_mode="self-influence",
                           n_checkpoints=trained.n_checkpoints, strip=trained.strip, device=device,
                           poison_rate=None, reference_representations=trained.reference_representations,
                           reference_labels=prep.y_ref)
    screens: dict = {}

    def so_far():
        """The verdict on the screens run so far (those it reads run first)."""
        flags = {k: s.flagged for k, s in screens.items()}
        if verdict is not None and config.verdict.rule != "union":
            return with_attack_screens(verdict, flags, y, config)
        return decide(config, labels=y, label_probs=probes.label_probs, screen_flags=flags)

    for screen in SCREENS:
        if "poison_rate" in screen.reads and outputs.poison_rate is None:
            outputs.poison_rate = so_far().flag_rate
        t = time.perf_counter()
        screens[screen.name] = screen.run(outputs, config)
        screens[screen.name].summary["seconds"] = time.perf_counter() - t
    return so_far(), screens


def _scores_frame(verdict, screens, y, label_probs, classes) -> pd.DataFrame:
    """The ``scores.parquet`` contract: one frame built once, no copies of float64
    columns, and the reason as a categorical (one byte per row, not a Python string)."""
    from .screens import contract_columns

    flagged = verdict.flagged
    columns = {"row_id": np.arange(len(y), dtype=np.int64)}
    for name in contract_columns():
        columns[name] = screens[name].scores.astype(np.float64, copy=False)
    columns["flagged"] = flagged.astype(bool, copy=False)
    for name in screens:
        if name not in columns:
            columns[name] = screens[name].scores.astype(np.float64, copy=False)
    columns["reason"] = pd.Categorical.from_codes(flagged.astype(np.int8), categories=["", verdict.rule])
    if verdict.p_values is not None:
        columns["label_p_value"] = verdict.p_values.astype(np.float64, copy=False)
    columns["suggested_label"] = _suggested_labels(verdict, y, label_probs, classes)
    return pd.DataFrame(columns, copy=False)


def _summary(prep, n_features, probes: _Probes, verdict, screens, config, device, torch,
             seconds) -> dict[str, Any]:
    """``summary.json``: the input, the probes, every screen's summary and the verdict."""
    from .screens.base import per_class_counts

    y, classes, flagged, info = prep.y, prep.classes, verdict.flagged, probes.anchored_info
    return {
        "n_rows": int(len(y)),
        "n_features": int(n_features),
        "input_kind": prep.kind,
        "feature_cols": list(prep.feature_cols),
        "columns": prep.columns,
        "projection": prep.projection,
        "classes": [jsonable(c) for c in classes],
        "class_counts": per_class_counts(np.ones(len(y), bool), y, classes),
        "n_reference_rows": int(len(prep.y_ref)) if prep.y_ref is not None else 0,
        "device": str(device),
        "torch_version": torch.__version__,
        "config": config.to_dict(),
        "representation_dim": int(config.rep_dim),
        "probe": {"seconds": {k: float(v) for k, v in probes.timings.items()},
                  "cv_accuracy": float((probes.cv.pred_probs.argmax(1) == y).mean()),
                  "anchored_kept_per_round": info["kept_per_round"] if info else None,
                  "anchored_admit_threshold": info["admit_threshold"] if info else None,
                  "reference_duplicates_in_data": info["n_reference_duplicates"] if info else None,
                  "threads": torch.get_num_threads()},
        "screens": {k: {kk: jsonable(vv) for kk, vv in s.summary.items()} for k, s in screens.items()},
        "combine": {**{k: jsonable(v) for k, v in verdict.summary(list(classes)).items()},
                    "flagged": int(flagged.sum()), "flagged_per_class": per_class_counts(flagged, y, classes)},
        "estimated_poison_rate": verdict.flag_rate,
        "seconds": seconds,
    }
