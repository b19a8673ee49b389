"""Reference-free backdoor screen: a group of one class that the model trained on the data
separates from the class's majority, more of them than the other classes hold, and whose
label survives superposition with other rows better than the rest of the class's.

A dirty-label backdoor puts all its rows in one target class. In the representation of a
model trained on the data (``ProbeOutputs.representations``) the trigger separates them
from the class's real rows (Tran et al. 2018, Chen et al. 2018), and the trigger keeps
their label when they are averaged with other rows (STRIP, Gao et al. 2019). With no
trusted reference, the *other* classes calibrate each class:

1. score: the robust Mahalanobis distance of each row to its class's majority, in the
   class's top ``k`` principal components (k = 10, activation clustering's dimension),
   with the location and scatter of the minimum covariance determinant (MCD, 50 %
   breakdown: the poison cannot pull them towards itself);
2. p-value: the row's upper-tail conformal p-value among the rows of all *other* classes;
3. class excess (``screening.verdict.excess.pooled_excess``): a class holding
   significantly more low p-values than the other classes' own rows (Beta-Binomial tail,
   family-wise ``excess_delta``, estimated false-discovery rate ``excess_fdr``);
4. superposition gate: the class's candidate rows must keep their label through
   superposition with random other rows better than the class's other rows (STRIP
   scores, one-sided Mann-Whitney test at ``excess_delta / 2``): a natural
   sub-population (an unusual handwriting) loses its label like any real row, a
   trigger keeps it.

A class that passes both has its candidate rows flagged. What it cannot promise: an
attack spread over several classes, a trigger the model does not separate in its
representation, or fewer rows than the excess test can tell from chance.
"""

from __future__ import annotations

import numpy as np

from .base import ProbeOutputs, Screen, ScreenOutput, screen_summary


def robust_distances(representations, labels, *, k: int = 10, seed: int = 0, max_fit_rows: int = 20000,
                     batch_size: int = 65536) -> np.ndarray:
    """(N,) float64: each row's squared robust (MCD) Mahalanobis distance to its class in
    the class's top ``k`` principal components. MCD and PCA are fitted on at most
    ``max_fit_rows`` rows of a class (seeded sample); every row is scored in batches."""
    from sklearn.covariance import MinCovDet

    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels))
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 10:
            continue
        fit = idx if len(idx) <= max_fit_rows else np.sort(rng.choice(idx, max_fit_rows, replace=False))
        R = np.asarray(representations[fit], dtype=np.float64)
        mu = R.mean(0)
        _, sv, vt = np.linalg.svd(R - mu, full_matrices=False)
        kk = int(max(1, min(k, len(fit) // 5, (sv > 1e-9 * max(sv[0], 1e-12)).sum())))
        basis = vt[:kk].T
        try:
            mcd = MinCovDet(random_state=seed).fit((R - mu) @ basis)
            loc, prec = mcd.location_, mcd.get_precision()
        except (ValueError, np.linalg.LinAlgError):  # degenerate class: a plain covariance
            Z = (R - mu) @ basis
            loc, prec = Z.mean(0), np.linalg.pinv(np.cov(Z, rowvar=False).reshape(kk, kk))
        for start in range(0, len(idx), batch_size):
            part = idx[start:start + batch_size]
            Z = (np.asarray(representations[part], dtype=np.float64) - mu) @ basis - loc
            out[part] = np.einsum("ij,jk,ik->i", Z, prec, Z)
    return out


def pooled_upper_pvalues(scores, labels) -> np.ndarray:
    """(N,) upper-tail conformal p-value of each row among the rows of the other classes:
    ``(1 + #{j not in class(i): s_j >= s_i}) / (1 + #{j not in class(i)})``."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    order = np.sort(scores)
    p = np.ones(len(scores))
    for c in np.unique(labels):
        own = np.flatnonzero(labels == c)
        mine = np.sort(scores[own])
        # rows of the other classes at or above s: all rows at or above s minus the class's own
        ge_all = len(order) - np.searchsorted(order, scores[own], side="left")
        ge_own = len(mine) - np.searchsorted(mine, scores[own], side="left")
        m = len(scores) - len(own)
        p[own] = (1 + ge_all - ge_own) / (1 + m)
    return p


def survives_superposition(strip, labels, flagged, fired, *, level: float) -> tuple[np.ndarray, list, list]:
    """Keep a fired class only when its flagged rows keep their label through superposition
    with random other rows better than the class's other rows do (STRIP scores, one-sided
    Mann-Whitney p <= ``level``). Returns (flags, the kept classes, every tested class with
    its ``strip_p``)."""
    from scipy.stats import mannwhitneyu

    out = np.zeros(len(labels), dtype=bool)
    kept, tested = [], []
    for d in fired:
        in_c = labels == d["class"]
        group, rest = in_c & flagged, in_c & ~flagged
        p = 1.0
        if group.any() and rest.any():
            p = float(mannwhitneyu(strip[group], strip[rest], alternative="greater").pvalue)
        d = {**d, "strip_p": p, "rows": int(group.sum())}
        tested.append(d)
        if p <= level:
            out |= group
            kept.append(d)
    return out, kept, tested


def _run(outputs: ProbeOutputs, config) -> ScreenOutput:
    from ..verdict.excess import pooled_excess

    vc, y = config.verdict, outputs.labels
    scores = robust_distances(outputs.representations, y, seed=config.seed)
    p = pooled_upper_pvalues(scores, y)
    candidates, fired = pooled_excess(p, y, fdr=vc.excess_fdr, delta=vc.excess_delta / 2,
                                      levels=tuple(vc.excess_levels))
    flagged, kept, gated = survives_superposition(outputs.strip, y, candidates, fired, level=vc.excess_delta / 2)
    summary = screen_summary({"components": 10, "score": "robust (MCD) Mahalanobis distance",
                              "calibration": "the other classes' rows", "excess_delta": vc.excess_delta / 2,
                              "superposition_level": vc.excess_delta / 2}, flagged, y, outputs.classes)
    names = outputs.classes
    summary["classes_found"] = [{**d, "class": _name(names[d["class"]])} for d in kept]
    found = {d["class"] for d in kept}
    summary["classes_rejected_by_gate"] = [{**d, "class": _name(names[d["class"]])} for d in gated
                                           if d["class"] not in found]
    return ScreenOutput(scores, flagged, summary)


def _name(v):
    return v.item() if hasattr(v, "item") else v


SCREEN = Screen("backdoor", ("representations", "strip"), _run,
                "reference-free: a group of one class the data-trained model separates and whose label survives "
                "superposition, calibrated on the other classes")
