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
   the majority found by concentration steps from the class's median (the poison cannot
   pull the location and scatter towards itself);
2. p-value: the row's upper-tail conformal p-value among the rows of all *other* classes;
3. class excess (``screening.verdict.excess.pooled_excess``): a class holding
   significantly more low p-values than the other classes' own rows (Beta-Binomial tail,
   family-wise ``excess_delta``, estimated false-discovery rate ``excess_fdr``);
4. superposition gate: the class's candidate rows must keep their label through
   superposition with random other rows better than the class's other rows (STRIP
   scores, one-sided Mann-Whitney test at ``excess_delta / 2`` split over the K classes
   by Bonferroni): a natural
   sub-population (an unusual handwriting) loses its label like any real row, a
   trigger keeps it.

A class that passes both has its candidate rows flagged, and the other rows of the class
that a classifier of the group against the class's typical rows scores above every
typical row (expansion: one poisoned row left in keeps an attack alive). What it cannot promise: an
attack spread over several classes, a trigger the model does not separate in its
representation, or fewer rows than the excess test can tell from chance.
"""

from __future__ import annotations

import numpy as np

from ..encoding import jsonable
from .base import ProbeOutputs, Screen, ScreenOutput, class_fit_rows, screen_summary


def robust_distances(representations, labels, *, k: int = 10, steps: int = 10, max_fit_rows: int = 20000,
                     seed: int = 0, batch_size: int = 65536) -> np.ndarray:
    """(N,) float64: each row's squared robust Mahalanobis distance to its class's majority
    in the class's top ``k`` principal components.

    The majority is found by concentration steps (Rousseeuw and Van Driessen 1999) from a
    deterministic start, the half of the class nearest its coordinate-wise median (as in
    DetMCD, Hubert et al. 2012): FastMCD's random subsets pick the half with the smallest
    determinant, which is the poison when a blended trigger packs a tight cluster into the
    class; the median start picks the majority by count. O(n_c k^2) per step. PCA and the
    steps use at most ``max_fit_rows`` rows of a class (seeded sample); every row is then
    scored in batches."""
    labels = np.asarray(labels)
    out = np.zeros(len(labels))
    for idx, fit, R in class_fit_rows(representations, labels, min_rows=10, max_fit_rows=max_fit_rows, seed=seed):
        mu0 = R.mean(0)
        _, sv, vt = np.linalg.svd(R - mu0, full_matrices=False)
        kk = int(max(1, min(k, len(fit) // 5, (sv > 1e-9 * max(sv[0], 1e-12)).sum())))
        basis = vt[:kk].T
        Z = (R - mu0) @ basis
        h = min(len(Z), len(Z) // 2 + kk + 1)
        keep = np.argsort(((Z - np.median(Z, 0)) ** 2).sum(1), kind="stable")[:h]
        for _ in range(steps):
            loc = Z[keep].mean(0)
            prec = np.linalg.pinv(np.atleast_2d(np.cov(Z[keep], rowvar=False)) + 1e-9 * np.eye(kk))
            d2 = np.einsum("ij,jk,ik->i", Z - loc, prec, Z - loc)
            new = np.argsort(d2, kind="stable")[:h]
            if np.array_equal(np.sort(new), np.sort(keep)):
                break
            keep = new
        for start in range(0, len(idx), batch_size):
            part = idx[start:start + batch_size]
            D = (np.asarray(representations[part], dtype=np.float64) - mu0) @ basis - loc
            out[part] = np.einsum("ij,jk,ik->i", D, prec, D)
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


def expand_group(representations, labels, p, flagged, kept, *, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """In each kept class, the other rows that carry what its flagged group carries: a
    logistic regression of the group against the class's typical rows (pooled p > 1/2),
    cross-fitted over ``n_folds``; a row of the class's doubtful rest (p <= 1/2) is added
    when every fold model scores it above all of that fold's held-out typical rows. A
    backdoor's rows share the trigger, so the classifier learns it; one poisoned row left
    in keeps an attack alive."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    out = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    for d in kept:
        in_c = labels == d["class"]
        pos = np.flatnonzero(in_c & flagged)
        neg = np.flatnonzero(in_c & (p > 0.5))
        rest = np.flatnonzero(in_c & ~flagged & (p <= 0.5))
        if len(pos) < n_folds or len(neg) < 2 * n_folds or not len(rest):
            continue
        fp, fn = rng.integers(0, n_folds, len(pos)), rng.integers(0, n_folds, len(neg))
        win = np.ones(len(rest), dtype=bool)
        for f in range(n_folds):
            train = np.concatenate([pos[fp != f], neg[fn != f]])
            target = np.r_[np.ones(int((fp != f).sum())), np.zeros(int((fn != f).sum()))]
            scale = StandardScaler().fit(representations[train])
            model = LogisticRegression(max_iter=2000).fit(scale.transform(representations[train]), target)
            held = model.decision_function(scale.transform(representations[neg[fn == f]]))
            bar = held.max() if len(held) else np.inf
            win &= model.decision_function(scale.transform(representations[rest])) > bar
        out[rest[win]] = True
    return out


def _run(outputs: ProbeOutputs, config) -> ScreenOutput:
    from ..verdict.excess import pooled_excess

    vc, y = config.verdict, outputs.labels
    scores = robust_distances(outputs.representations, y, seed=config.seed)
    p = pooled_upper_pvalues(scores, y)
    candidates, fired = pooled_excess(p, y, fdr=vc.excess_fdr, delta=vc.excess_delta / 2,
                                      levels=tuple(vc.excess_levels))
    # the gate's share of the family-wise budget, split over the classes it may test
    gate_level = vc.excess_delta / 2 / max(1, len(outputs.classes))
    flagged, kept, gated = survives_superposition(outputs.strip, y, candidates, fired, level=gate_level)
    flagged |= expand_group(outputs.representations, y, p, flagged, kept, n_folds=config.n_folds, seed=config.seed)
    summary = screen_summary({"components": 10, "score": "robust Mahalanobis distance (median-start C-steps)",
                              "calibration": "the other classes' rows", "excess_delta": vc.excess_delta / 2,
                              "superposition_level": gate_level}, flagged, y, outputs.classes)
    names = outputs.classes
    summary["classes_found"] = [{**d, "class": jsonable(names[d["class"]])} for d in kept]
    found = {d["class"] for d in kept}
    summary["classes_rejected_by_gate"] = [{**d, "class": jsonable(names[d["class"]])} for d in gated
                                           if d["class"] not in found]
    return ScreenOutput(scores, flagged, summary)


SCREEN = Screen("backdoor", ("representations", "strip"), _run,
                "reference-free: a group of one class the data-trained model separates and whose label survives "
                "superposition, calibrated on the other classes",
                settings=("verdict", "seed", "n_folds"), verdict_reads=True, finds="attack", report_order=4)
