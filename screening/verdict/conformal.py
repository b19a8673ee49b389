"""Conformal p-values against a trusted reference (docs/verdict.md, part 1).

A row exchangeable with the reference rows gets a p-value that is uniform (or
conservative): ``P(p <= a) <= a``. Cross-conformal p-values (Vovk 2015) pool several
held-out comparisons, each model judged only against the reference rows it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rows per chunk of the row-wise steps: their temporaries stay bounded whatever N.
CHUNK_ROWS = 1 << 20


def conformal_lower_pvalues(scores: np.ndarray, reference_scores: np.ndarray, *, row_offset=None) -> np.ndarray:
    """Conformal p-values for "this score is unusually low" against a clean reference.

    Args:
        scores: (N,) scores of the rows under test (lower = more suspicious).
        reference_scores: (M,) the same score on trusted rows, computed the same way.
        row_offset: optional (N,) value subtracted from each score before it is ranked
            (one chunk at a time: no (N,) difference array).

    Returns:
        (N,) float64, ``(1 + #{j: reference_scores[j] <= scores[i]}) / (M + 1)``. For a row
        exchangeable with the reference rows, ``P(p <= a) <= a`` for every ``a``.
    """
    ref = np.sort(np.asarray(reference_scores, dtype=np.float64))
    scores = np.asarray(scores)
    offset = None if row_offset is None else np.asarray(row_offset)
    out = np.empty(len(scores))
    for start in range(0, len(scores), CHUNK_ROWS):  # chunks: no (N,) float64 copy beside the result
        rows = slice(start, start + CHUNK_ROWS)
        score = scores[rows].astype(np.float64) if offset is None else scores[rows] - offset[rows]
        below = np.searchsorted(ref, np.asarray(score, dtype=np.float64), side="right")
        out[rows] = (1.0 + below) / (len(ref) + 1.0)
    return out


def calibrated_level(alpha: float, n_reference: int, confidence: float | None = None) -> float:
    """The p-value level actually used.

    Without ``confidence``: ``alpha``, or ``1 / (M + 1)`` when the reference is too small
    for a p-value that low (the smallest one a row can get); the *expected* clean flag
    rate is then at most that level. With ``confidence`` (e.g. 0.9): the largest level
    ``k / (M + 1)`` at which the clean flag rate of *this* table stays below ``alpha``
    with that probability over the draw of the reference (the rate below the k-th of M
    reference scores is Beta(k, M + 1 - k)); ``1 / (M + 1)`` when even k = 1 cannot.
    """
    m = int(n_reference)
    if confidence is None:
        return max(float(alpha), 1.0 / (m + 1.0))
    from scipy.stats import beta

    k = 1
    while k < m and beta.ppf(confidence, k + 1, m - k) <= alpha:
        k += 1
    return k / (m + 1.0)


def clean_rate_upper_bound(level: float, n_reference: int, confidence: float = 0.9) -> float:
    """The ``confidence`` upper bound of one table's clean flag rate at ``level``: the
    quantile of Beta(k, M + 1 - k), k = floor(level (M + 1))."""
    from scipy.stats import beta

    m = int(n_reference)
    k = max(1, min(m, int(np.floor(level * (m + 1) + 1e-9))))
    return float(beta.ppf(confidence, k, m + 1 - k))


def cross_conformal_pvalues(model_margins, judges, reference_margins, reference_folds, *,
                            row_offset=None) -> np.ndarray:
    """Cross-conformal p-values of the data rows (see the module docstring, part 1).

    Args:
        model_margins: (F, N) margin of every data row under each fold model f.
        judges: (F, N) bool, the models whose score judges each row: models that could
            never have trained on it, fixed before training (never chosen by the row's
            own scores, or the p-values are no longer valid).
        reference_margins: (M,) margin of each reference row under the model of its fold
            (minus its own ``row_offset`` counterpart when one is given).
        reference_folds: (M,) fold of each reference row.
        row_offset: optional (N,) value subtracted from every model's margin of a row
            before it is ranked (the contrast score of part 3), one fold at a time: no
            (F, N) temporary.

    Returns:
        (N,) float64 in (0, 1]. Computed in chunks of rows (:data:`CHUNK_ROWS`): beside
        the result, the temporaries are those of one chunk.
    """
    n_models, n = model_margins.shape
    refs = [np.sort(np.asarray(reference_margins, dtype=np.float64)[reference_folds == f]) for f in range(n_models)]
    offset = None if row_offset is None else np.asarray(row_offset)
    out = np.empty(n)
    for start in range(0, n, CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        num = np.ones(min(CHUNK_ROWS, n - start))
        den = np.ones(len(num))
        for f in range(n_models):
            use = np.asarray(judges[f, rows], dtype=bool)
            score = model_margins[f, rows][use].astype(np.float64)
            if offset is not None:
                score -= offset[rows][use]
            num[use] += np.searchsorted(refs[f], score, side="right")
            den[use] += len(refs[f])
        out[rows] = num / den
    return out


def judged_reference_rows(judges, reference_folds) -> int:
    """The fewest reference rows any data row is judged against (``M_S``)."""
    judges = np.asarray(judges, dtype=bool)
    per_fold = np.bincount(np.asarray(reference_folds), minlength=len(judges))[:len(judges)]
    n = judges.shape[1] if judges.ndim == 2 else 0
    if not judges.size:
        return 0
    fewest = None
    for start in range(0, n, CHUNK_ROWS):  # chunks: no (F, N) integer temporary
        judged = (judges[:, start:start + CHUNK_ROWS] * per_fold[:, None]).sum(axis=0)
        low = int(judged.min())
        fewest = low if fewest is None else min(fewest, low)
    return int(fewest) if fewest is not None else 0


def reference_fold_pvalues(reference_margins, reference_folds) -> np.ndarray:
    """(M,) p-value of each reference row among its own fold's reference rows
    (``#{j in fold: margin_j <= margin_i} / M_fold``): how a clean row's p-value falls."""
    rm = np.asarray(reference_margins, dtype=np.float64)
    p = np.ones(len(rm))
    for f in np.unique(reference_folds):
        idx = np.flatnonzero(reference_folds == f)
        p[idx] = np.searchsorted(np.sort(rm[idx]), rm[idx], side="right") / len(idx)
    return p


#: the fewest reference rows for the tail model (and so for the row-level FDR control)
TAIL_MIN_REFERENCE = 50


def tail_pvalues(pvals, scores, reference_scores, *, tail_share: float = 0.1,
                 min_reference: int = TAIL_MIN_REFERENCE):
    """Conformal p-values refined in the reference's lower tail by a peaks-over-threshold
    model, so a row far below every trusted row can get a p-value below ``1 / (M + 1)``.

    The ``k = tail_share x M`` lowest reference scores (at least 10) lie below the
    threshold ``u``, the (k + 1)-th lowest; their exceedances ``u - s`` are fitted with a
    generalised Pareto distribution (Pickands-Balkema-de Haan: the limit law of
    exceedances over a high threshold). A row with score below ``u`` gets
    ``p = k / (M + 1) x GPD.sf(u - score)``, which equals the empirical tail share at the
    threshold; rows above it keep their conformal p-value. A negative shape is replaced by
    the exponential tail (shape 0, scale the mean exceedance: its maximum-likelihood fit),
    the lightest tail the model allows, so it never declares a finite lower bound that
    would give rows p = 0. With fewer than ``min_reference`` reference rows the
    p-values are returned unchanged. (:func:`fit_tail` then :func:`apply_tail`: the
    model depends on the reference alone, so rows can be refined a chunk at a time.)

    Args:
        pvals: (N,) conformal p-values of the rows.
        scores: (N,) the rows' scores (lower = more suspicious), on the reference's scale.
        reference_scores: (M,) the same score on the trusted rows.
    """
    tail = fit_tail(reference_scores, tail_share=tail_share, min_reference=min_reference)
    if tail is None:
        return np.asarray(pvals, dtype=np.float64)
    return apply_tail(pvals, scores, tail)


@dataclass(frozen=True)
class TailModel:
    """The reference's lower tail (:func:`tail_pvalues`): ``share`` = k / (M + 1) of
    the reference below ``threshold`` u, exceedances GPD(``shape``, ``scale``)."""

    share: float
    threshold: float
    shape: float
    scale: float


def fit_tail(reference_scores, *, tail_share: float = 0.1, min_reference: int = TAIL_MIN_REFERENCE
             ) -> TailModel | None:
    """The tail model of :func:`tail_pvalues`, or None where it leaves p-values unchanged
    (fewer than ``min_reference`` reference rows, or no exceedance)."""
    from scipy.stats import genpareto

    ref = np.sort(np.asarray(reference_scores, dtype=np.float64))
    m = len(ref)
    if m < min_reference:
        return None
    k = max(10, int(round(tail_share * m)))
    u = ref[k]
    exceed = u - ref[:k]
    if not np.any(exceed > 0):
        return None
    shape, _, scale = genpareto.fit(exceed, floc=0)
    if shape < 0:
        # a bounded tail is not declared: the exponential tail (shape 0) refitted, whose
        # maximum-likelihood scale is the mean exceedance (the bounded fit's scale is larger
        # than that, and kept with shape 0 it made the tail far too heavy)
        shape, scale = 0.0, float(exceed.mean())
    return TailModel(k / (m + 1.0), float(u), float(shape), float(scale))


def apply_tail(pvals, scores, tail: TailModel) -> np.ndarray:
    """(N,) float64: ``pvals`` (copied) with the rows whose score lies below the tail's
    threshold given the tail model's p-value."""
    from scipy.stats import genpareto

    scores = np.asarray(scores, dtype=np.float64)
    out = np.asarray(pvals, dtype=np.float64).copy()
    below = scores < tail.threshold
    out[below] = tail.share * genpareto.sf(tail.threshold - scores[below], tail.shape, 0, tail.scale)
    return out
