"""The reference-anchored probe: trained on a trusted reference, refined by cross-fitted
self-training, so it never learns a trigger that only poisoned data rows carry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import label_margin, stratified_folds
from .training import fit_probes


@dataclass
class AnchoredProbe:
    """Reference-anchored probe outputs; every row scored by a model that never trained on it.

    pred_probs: (N, K) float32, data rows, last self-training round.
    reference_pred_probs: (M, K) float32, reference rows, same models (out-of-fold).
    initial_margins, initial_reference_margins: (N,) and (M,) float64 label margins
        (:func:`label_margin`) from round 0, whose models trained on the reference alone
        (they never saw a data row, so they cannot have learned a trigger from the data).
    kept_per_round: data rows admitted to training before each later round (per model,
        averaged; a row can be admitted by up to :func:`admit_span` models).
    model_margins: (n_folds, N) float32, model f's (last round) margin of every data row.
    admitted: (n_folds, N) bool, the data rows model f of the last round trained on.
    reference_folds: (M,) int, the fold whose model scored each reference row.
    eligible: (n_folds, N) bool, the data rows model f could ever admit (fixed by the
        fold layout before any model is trained; ``admitted`` is a subset). The verdict
        judges a row only by the models that could not admit it.
    admit_threshold: label-margin cut-off for admission (from the reference's own OOF margins).
    """

    pred_probs: np.ndarray
    reference_pred_probs: np.ndarray
    initial_margins: np.ndarray
    initial_reference_margins: np.ndarray
    kept_per_round: list
    model_margins: np.ndarray  # (n_folds, N) float32: model f's margin of every data row
    admitted: np.ndarray  # (n_folds, N) bool: data rows model f trained on
    reference_folds: np.ndarray  # (M,) the fold that scores each reference row
    eligible: np.ndarray  # (n_folds, N) bool: data rows model f could ever admit
    admit_threshold: float = 0.0
    n_reference_duplicates: int = 0


def reference_duplicates(X_all: np.ndarray, n: int) -> np.ndarray:
    """(N,) bool: data rows (the first ``n`` of X_all) equal to some reference row.

    A 64-bit hash of every row's float32 bits finds candidates in O(N d); candidates are
    then compared exactly."""
    flat = np.ascontiguousarray(X_all.reshape(len(X_all), -1), dtype=np.float32)
    w = np.random.default_rng(12345).integers(1, 2 ** 62, size=flat.shape[1], dtype=np.uint64)
    h = np.empty(len(flat), dtype=np.uint64)
    for start in range(0, len(flat), 1 << 16):
        bits = flat[start:start + (1 << 16)].view(np.uint32).astype(np.uint64)
        with np.errstate(over="ignore"):
            h[start:start + len(bits)] = (bits * w).sum(axis=1)
    ref_h = h[n:]
    cand = np.flatnonzero(np.isin(h[:n], ref_h))
    dup = np.zeros(n, dtype=bool)
    if len(cand):
        order = np.argsort(ref_h, kind="stable")
        for i in cand:
            j = np.searchsorted(ref_h[order], h[i])
            while j < len(order) and ref_h[order[j]] == h[i]:
                if np.array_equal(flat[i], flat[n + order[j]]):
                    dup[i] = True
                    break
                j += 1
    return dup


def admit_span(config, n_reference: int) -> int:
    """How many other data folds each anchored-probe model may admit rows from.

    ``config.admit_folds`` when set (1 .. n_folds - 1). Automatic (``None``): about half,
    ``(n_folds - 1) // 2`` (with 5 folds: 2, so every row is judged by 3 models that never
    saw it, and each model self-trains on 2 of the 5 data folds); 1 when the reference is
    so small that the judged reference rows, ``M (n_folds - s) / n_folds``, could not give
    a p-value as low as ``config.verdict.alpha`` (more judges, finer p-values)."""
    k = int(config.n_folds)
    if config.admit_folds is not None:
        s = int(config.admit_folds)
        if not 1 <= s <= k - 1:
            raise ValueError(f"admit_folds must be between 1 and n_folds - 1 = {k - 1}, not {s}")
        return s
    s = max(1, (k - 1) // 2)
    if n_reference * (k - s) / k + 1 < 1.0 / config.verdict.alpha:
        s = 1
    return s


def anchored_probe(X_all, y_all, n, *, kind, n_classes, config, device, progress=None,
                   cv_margins=None) -> AnchoredProbe:
    """Reference-anchored probe with cross-fitted self-training.

    Args:
        X_all: (N + M, ...) float32, the N data rows followed by the M reference rows.
        y_all: (N + M,) int64 labels.
        n: N, the number of data rows.
        cv_margins: optional (N,) label margins of the data rows under the
            cross-validated probe: with ``config.admit_contrast_quantile``, the rows
            whose round-0 margin falls furthest below it are never admitted.

    Data rows and reference rows are both split into ``n_folds`` folds. Model f trains on
    the reference rows outside fold f plus the data rows *admitted to model f*, and scores
    reference fold f and every data row. Round 0 admits no data row. Before each later
    round, model f admits the data rows of its eligible data folds, ``f + 1 .. f + s``
    (mod ``n_folds``, s = :func:`admit_span`), whose label margin (:func:`label_margin`)
    under model f of the previous round is above ``max(0, the config.admit_quantile
    quantile of the reference rows' margins)``, except the ``config.admit_contrast_quantile``
    share of them whose round-0 margin under model f falls furthest below ``cv_margins``.

    Which models may admit a row is fixed by the fold layout, before anything is trained:
    the verdict judges a data row only by the ``n_folds - s`` models that could never
    have admitted it (its own fold's and the others outside its span), so the choice of
    judges never depends on the row's own scores. (Judging a row by the models that
    merely *did not* admit it picks, for a hard clean row, exactly the models that doubted
    it, while its reference counterparts are judged unselected, so a class's clean rows
    would drift below its reference rows; docs/design-notes.md has the measurement.)

    Each model's admissions are decided by its own lineage only, and no model of that
    lineage ever trained on reference fold f: a reference row reaches the model that
    scores it neither directly nor through the data rows it helped admit, so it is scored
    exactly like a data row that model never trained on, which is what lets the verdict
    calibrate its cut-off on the reference. (Admissions decided by the other folds' models,
    whose training included reference fold f, would break that: clean rows were flagged
    at about twice the promised rate; see docs/design-notes.md.)
    Memory: one (N, K) float32 array of probabilities at a time, plus (n_folds, N) float32
    margins and two (n_folds, N) bool masks.
    """
    seed = config.seed * 1000 + 500
    m = len(y_all) - n
    y, y_ref = y_all[:n], y_all[n:]
    folds = stratified_folds(y, config.n_folds, config.seed + 1)
    rfolds = stratified_folds(y_ref, config.n_folds, config.seed + 2)
    fit = dict(kind=kind, n_classes=n_classes, config=config, device=device)
    # a data row that duplicates a reference row is never admitted: training on it would
    # let the models see that reference row's twin and make its out-of-fold margin too good
    dup = reference_duplicates(X_all, n)
    span = admit_span(config, m)
    eligible = _eligible_layout(folds, config.n_folds, span)
    admitted = np.zeros((config.n_folds, n), dtype=bool)
    probs, rprobs, margins = _anchored_round(X_all, y_all, n, folds, rfolds, admitted, seed, **fit)
    init_m, init_rm = label_margin(y, probs), label_margin(y_ref, rprobs)
    admissible = _admissible(eligible & ~dup[None, :], margins, cv_margins, float(config.admit_contrast_quantile))
    kept_counts = []
    thr = 0.0
    for r in range(config.self_training_rounds):
        thr = max(0.0, float(np.quantile(label_margin(y_ref, rprobs), config.admit_quantile)))
        # model f's admissions are decided by model f's own previous round, which never
        # trained on reference fold f: nothing of the rows that calibrate the verdict
        # reaches, through an admission, the model that scores them
        admitted = (margins > thr) & admissible
        kept_counts.append(int(round(admitted.sum() / span)))
        del probs
        probs, rprobs, margins = _anchored_round(X_all, y_all, n, folds, rfolds, admitted, seed + 10 * (r + 1),
                                                 **fit)
        if progress:
            progress(f"anchored probe: self-training round {r + 1}/{config.self_training_rounds}")
    return AnchoredProbe(probs, rprobs, init_m, init_rm, kept_counts, model_margins=margins, admitted=admitted,
                         reference_folds=rfolds, eligible=eligible, admit_threshold=thr,
                         n_reference_duplicates=int(dup.sum()))


def _eligible_layout(folds, k: int, span: int) -> np.ndarray:
    """(k, N) bool: model f may admit rows of data folds f+1 .. f+span (mod k), never its
    own; the layout alone (not any score) decides which models can never see a row."""
    eligible = np.zeros((k, len(folds)), dtype=bool)
    for f in range(k):  # row by row: a (k, N) int64 temporary would cost 8 k N bytes
        ahead = (folds - f) % k
        eligible[f] = (ahead >= 1) & (ahead <= span)
    return eligible


def _admissible(admissible, margins, cv_margins, q: float) -> np.ndarray:
    """Rows model f may admit: its layout's, less those where the probe trained on the
    data is far surer of the label than model f's round 0, which saw only the reference
    (a learned trigger does that, and admitting such rows would teach self-training the
    trigger). The cut is a quantile over data rows only, so no reference row reaches model
    f's admissions; the judges' layout (``eligible``) is untouched."""
    if cv_margins is not None and q > 0:
        for f in range(len(admissible)):
            contrast = margins[f] - cv_margins
            cand = admissible[f]
            if cand.any():
                admissible[f] &= contrast > np.quantile(contrast[cand], q)
    return admissible


def _anchored_round(X_all, y_all, n, folds, rfolds, admitted, seed, *, kind, n_classes, config, device):
    """One round: model f trains on the reference rows outside fold f plus the data rows
    ``admitted[f]`` (never its own fold), then scores every data row and reference fold f.
    Returns (probs (N, K): each data row by its own fold's model; rprobs (M, K); margins
    (n_folds, N): model f's label margin of every data row)."""
    m = len(y_all) - n
    y = y_all[:n]
    ref_idx = np.arange(n, n + m)
    sets = [np.concatenate([ref_idx[rfolds != f], np.flatnonzero(admitted[f])]) for f in range(config.n_folds)]
    predict_fn, _, _, _ = fit_probes(X_all, y_all, sets, kind=kind, n_classes=n_classes, config=config,
                                     seed=seed, device=device)
    del sets
    probs = np.zeros((n, n_classes), dtype=np.float32)
    rprobs = np.zeros((m, n_classes), dtype=np.float32)
    margins = np.zeros((config.n_folds, n), dtype=np.float32)
    step = max(1, config.inference_batch_size)
    for f in range(config.n_folds):
        for start in range(0, n, step):  # bounded memory: one chunk of probabilities at a time
            idx = np.arange(start, min(n, start + step))
            p_chunk, _ = predict_fn(f, X_all, idx)
            margins[f, idx] = label_margin(y[idx], p_chunk)
            own = folds[idx] == f
            probs[idx[own]] = p_chunk[own]
        ref_f = n + np.flatnonzero(rfolds == f)
        rprobs[ref_f - n], _ = predict_fn(f, X_all, ref_f)
    return probs, rprobs, margins
