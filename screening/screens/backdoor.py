"""Reference-free backdoor screen: a group of one class that the model trained on the data
separates from the class's majority, more of them than the other classes hold, and whose
label survives superposition with other rows better than the rest of the class's, and
better than the other classes' far-out rows'.

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
4. superposition gate (:func:`survives_superposition`): the class's candidate rows must
   keep their label through superposition with random other rows (STRIP scores) better
   than the class's other rows, *and*, relative to the rest of their class, better than
   the other classes' rows selected by the same rule do relative to theirs (one-sided
   Mann-Whitney tests at ``excess_delta / 2``, split over the K classes and over the
   classes the excess fired on). Far-out rows keep their label better than their class's
   typical rows in every class, so the first test alone passes a natural sub-population
   by selection; against the other classes' outliers an unusual handwriting is no more
   label-keeping, a trigger is.

A class that passes both has its candidate rows flagged, and the other rows of the class
that a classifier of the group against the class's typical rows scores above every
typical row (expansion: one poisoned row left in keeps an attack alive). What it cannot promise: an
attack spread over several classes, a trigger the model does not separate in its
representation, or fewer rows than the excess test can tell from chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..encoding import jsonable
from .base import ProbeOutputs, Screen, ScreenOutput, class_fit_rows, screen_summary


def class_majorities(representations, labels, *, k: int = 10, steps: int = 10, max_fit_rows: int = 20000,
                     seed: int = 0) -> dict:
    """{class label: (mean, basis, location, precision)}: each class's majority in its top
    ``k`` principal components, for :func:`majority_distances`.

    The majority is found by concentration steps (Rousseeuw and Van Driessen 1999) from a
    deterministic start, the half of the class nearest its coordinate-wise median (as in
    DetMCD, Hubert et al. 2012): FastMCD's random subsets pick the half with the smallest
    determinant, which is the poison when a blended trigger packs a tight cluster into the
    class; the median start picks the majority by count. O(n_c k^2) per step. PCA and the
    steps use at most ``max_fit_rows`` rows of a class (seeded sample), so the fit's memory
    is bounded whatever N; a class with fewer than 10 rows gets no fit."""
    fits = {}
    labels = np.asarray(labels)
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
        fits[labels[idx[0]]] = (mu0, basis, loc, prec)
    return fits


def majority_distances(fits: dict, representations, labels, *, batch_size: int = 65536) -> np.ndarray:
    """(N,) float64: each row's squared robust Mahalanobis distance to its class's majority
    (``fits`` from :func:`class_majorities`, fitted on the data rows: the same fits score a
    trusted reference's rows); 0 for a row of a class without a fit. In batches."""
    labels = np.asarray(labels)
    out = np.zeros(len(labels))
    for c, (mu0, basis, loc, prec) in fits.items():
        idx = np.flatnonzero(labels == c)
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


def rest_percentiles(strip, labels, out) -> np.ndarray:
    """(N,) for each row in ``out``: its STRIP score's mid-rank percentile among the rows of
    its own class outside ``out`` (NaN elsewhere, and where the class has no such row).
    A percentile within the row's own class removes what classes differ in (how well any of
    their rows keeps its label under superposition)."""
    u = np.full(len(labels), np.nan)
    for c in np.unique(labels):
        in_c = labels == c
        rest = np.sort(strip[in_c & ~out])
        idx = np.flatnonzero(in_c & out)
        if len(rest) and len(idx):
            below = np.searchsorted(rest, strip[idx], side="left")
            at_or_below = np.searchsorted(rest, strip[idx], side="right")
            u[idx] = (below + at_or_below) / (2 * len(rest))
    return u


def survives_superposition(strip, labels, p, fired, *, delta: float, n_classes: int) -> tuple[np.ndarray, list, list]:
    """Keep a fired class only when its candidate rows (pooled p <= the class's fired level)
    pass two one-sided Mann-Whitney tests of their STRIP scores, both at ``delta``
    (intersection-union: a class is kept only when both nulls are rejected, so neither
    test's level needs a share of the other's):

    - within the class (``strip_p``): the candidates keep their label better than the
      class's other rows; Bonferroni over the ``n_classes`` classes;
    - against the other classes (``strip_p_calibrated``): relative to the rest of their
      class, better than the *other classes'* rows selected by the same rule do relative
      to theirs: each selected row's STRIP percentile among its own class's unselected
      rows (:func:`rest_percentiles`), the class's candidates against the other classes'
      selected rows. Rows far from their class keep their label better than their class's
      typical rows in every class, poisoned or not (the distance that selects them and the
      STRIP score both grow with how atypical, and how dominant under averaging, a row
      is), so the within-class test passes a natural sub-population by selection alone;
      the other classes calibrate that selection, as they calibrate the distance. The
      comparison rows are chosen by the same rule, so under the null this p-value is
      valid given which classes fired: Bonferroni over the classes the excess fired on.
      With no selected row in another class there is nothing to calibrate on and the
      class is not kept (``strip_p_calibrated`` 1).

    Returns (flags, the kept classes, every tested class with ``strip_p``,
    ``strip_p_calibrated``, ``rows``, ``comparison_rows``, ``strip_auc_calibrated`` (the
    calibrated test's Mann-Whitney effect size, 1/2 under its null) and the two levels)."""
    from scipy.stats import mannwhitneyu

    out = np.zeros(len(labels), dtype=bool)
    level_within, level_calibrated = delta / max(1, n_classes), delta / max(1, len(fired))
    kept, tested = [], []
    for d in fired:
        selected = p <= d["level"]
        in_c = labels == d["class"]
        group, rest = in_c & selected, in_c & ~selected
        p_within = 1.0
        if group.any() and rest.any():
            p_within = float(mannwhitneyu(strip[group], strip[rest], alternative="greater").pvalue)
        u = rest_percentiles(strip, labels, selected)
        mine, others = u[group], u[~in_c & selected]
        mine, others = mine[~np.isnan(mine)], others[~np.isnan(others)]
        p_cal, auc = 1.0, None
        if len(mine) and len(others):
            res = mannwhitneyu(mine, others, alternative="greater")
            p_cal, auc = float(res.pvalue), float(res.statistic) / (len(mine) * len(others))
        d = {**d, "strip_p": p_within, "strip_p_calibrated": p_cal, "rows": int(group.sum()),
             "comparison_rows": int(len(others)), "strip_auc_calibrated": auc, "gate_level": level_within,
             "gate_level_calibrated": level_calibrated}
        tested.append(d)
        if p_within <= level_within and p_cal <= level_calibrated:
            out |= group
            kept.append(d)
    return out, kept, tested


def confirmed_by_reference(scores, labels, p, kept, ref_scores, ref_labels, *, level: float) -> tuple[list, list]:
    """With a trusted reference: keep a class's group only when the data hold a larger
    share of rows as far from the class's majority as the group's nearest row than the
    class's trusted rows do (one-sided Fisher exact test at ``level``). A natural
    sub-population of the class (an unusual handwriting, a customer segment) is in the
    trusted rows too, at about the same share; a trigger is not. It only ever removes a
    group the other classes calibrated, so the screen's chance of flagging a clean class
    does not grow; a class without trusted rows keeps its group (nothing to confirm it
    with). Returns (the kept classes, every tested class with ``reference_rows``,
    ``reference_rows_as_far``, ``reference_p``)."""
    from scipy.stats import fisher_exact

    confirmed, tested = [], []
    for d in kept:
        in_c, ref_c = labels == d["class"], ref_labels == d["class"]
        group = in_c & (p <= d["level"])
        m = int(ref_c.sum())
        if not group.any() or not m:
            confirmed.append({**d, "reference_rows": m, "reference_rows_as_far": None, "reference_p": None})
            continue
        cut = float(scores[group].min())
        g, n, r = int(group.sum()), int(in_c.sum()), int((ref_scores[ref_c] >= cut).sum())
        p_ref = float(fisher_exact([[g, n - g], [r, m - r]], alternative="greater")[1])
        d = {**d, "reference_rows": m, "reference_rows_as_far": r, "reference_p": p_ref}
        tested.append(d)
        if p_ref <= level:
            confirmed.append(d)
    return confirmed, tested


def fit_expansion(representations, labels, p, flagged, kept, *, n_folds: int = 5, seed: int = 0) -> dict:
    """{class: [(scaler, model, bar), one per fold]}: for each kept class, a logistic
    regression of its flagged group against its typical rows (pooled p > 1/2), cross-fitted
    over ``n_folds``, and each fold's bar, the highest score of that fold's held-out
    typical rows. A class with too few rows of either, or no doubtful rest (p <= 1/2) to
    judge, gets none."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    out: dict = {}
    rng = np.random.default_rng(seed)
    for d in kept:
        in_c = labels == d["class"]
        pos = np.flatnonzero(in_c & flagged)
        neg = np.flatnonzero(in_c & (p > 0.5))
        rest = np.flatnonzero(in_c & ~flagged & (p <= 0.5))
        if len(pos) < n_folds or len(neg) < 2 * n_folds or not len(rest):
            continue
        fp, fn = rng.integers(0, n_folds, len(pos)), rng.integers(0, n_folds, len(neg))
        folds = []
        for f in range(n_folds):
            train = np.concatenate([pos[fp != f], neg[fn != f]])
            target = np.r_[np.ones(int((fp != f).sum())), np.zeros(int((fn != f).sum()))]
            scale = StandardScaler().fit(representations[train])
            model = LogisticRegression(max_iter=2000).fit(scale.transform(representations[train]), target)
            held = model.decision_function(scale.transform(representations[neg[fn == f]]))
            folds.append((scale, model, held.max() if len(held) else np.inf))
        out[d["class"]] = folds
    return out


def _expanded(folds, rows) -> np.ndarray:
    """(n,) bool: every fold model scores the row above its fold's bar."""
    win = np.ones(len(rows), dtype=bool)
    for scale, model, bar in folds:
        win &= model.decision_function(scale.transform(rows)) > bar
    return win


@dataclass
class BackdoorRule:
    """The screen's decision on the rows it was fitted on, as a rule for any other row of
    the same table (the sharded screen fits it on its sample and applies it shard by
    shard, :mod:`screening.sharded`): each class's majority (the distances), and for each
    class the screen kept, the other classes' distances its p-values are computed among,
    the group's level and the expansion's fold models. On the rows it was fitted on it
    gives the screen's own scores and flags."""

    fits: dict
    groups: dict  # class -> (sorted distances of the other classes' rows, level, expansion folds)

    def apply(self, representations, labels, scores=None) -> tuple[np.ndarray, np.ndarray]:
        """((n,) distances, (n,) flags) of the rows ``representations`` (n, d) of class
        indices ``labels``: a row of a kept class is flagged when its pooled p-value is
        at most the group's level, or, at most 1/2, when every expansion model wins.
        ``scores``: the rows' distances, where already computed."""
        labels = np.asarray(labels)
        if scores is None:
            scores = majority_distances(self.fits, representations, labels)
        flags = np.zeros(len(labels), dtype=bool)
        for c, (others, level, folds) in self.groups.items():
            idx = np.flatnonzero(labels == c)
            if not len(idx):
                continue
            s = scores[idx]
            p = (1 + len(others) - np.searchsorted(others, s, side="left")) / (1 + len(others))
            core = p <= level
            flags[idx[core]] = True
            rest = idx[~core & (p <= 0.5)]
            if folds and len(rest):
                flags[rest[_expanded(folds, np.asarray(representations[rest]))]] = True
        return scores, flags


def _run(outputs: ProbeOutputs, config) -> ScreenOutput:
    return detect(outputs, config)[0]


def detect(outputs: ProbeOutputs, config) -> tuple[ScreenOutput, BackdoorRule]:
    """The screen's output and its :class:`BackdoorRule`, which gives the flags (on these
    rows, the output's; the sharded screen applies it to every other row of the table)."""
    from ..verdict.excess import pooled_excess

    vc, y = config.verdict, outputs.labels
    R_ref, y_ref = outputs.reference_representations, outputs.reference_labels
    with_ref = R_ref is not None and y_ref is not None and len(y_ref) > 0
    fits = class_majorities(outputs.representations, y, seed=config.seed)
    scores = majority_distances(fits, outputs.representations, y)
    if with_ref:
        y_ref = np.asarray(y_ref)
        ref_scores = majority_distances(fits, R_ref, y_ref)
    p = pooled_upper_pvalues(scores, y)
    _, fired = pooled_excess(p, y, fdr=vc.excess_fdr, delta=vc.excess_delta / 2, levels=tuple(vc.excess_levels))
    # the gate's share of the family-wise budget (each of its two tests gets all of it)
    flagged, kept, gated = survives_superposition(outputs.strip, y, p, fired, delta=vc.excess_delta / 2,
                                                  n_classes=len(outputs.classes))
    unconfirmed: list = []
    if with_ref and kept:  # the class's trusted rows must not be as far out as the group
        confirmed, tested = confirmed_by_reference(scores, y, p, kept, ref_scores, y_ref, level=vc.excess_delta / 2)
        names_kept = {d["class"] for d in confirmed}
        unconfirmed = [d for d in tested if d["class"] not in names_kept]
        kept = confirmed
        flagged = np.isin(y, list(names_kept)) & flagged
    expansion = fit_expansion(outputs.representations, y, p, flagged, kept, n_folds=config.n_folds,
                              seed=config.seed)
    # the kept groups and their expansion, as the rule any other row of the table gets
    rule = BackdoorRule(fits, {d["class"]: (np.sort(scores[y != d["class"]]), d["level"],
                                            expansion.get(d["class"], [])) for d in kept})
    _, flagged = rule.apply(outputs.representations, y, scores=scores)
    summary = screen_summary({"components": 10, "score": "robust Mahalanobis distance (median-start C-steps)",
                              "calibration": "the other classes' rows", "excess_delta": vc.excess_delta / 2,
                              "superposition_level": vc.excess_delta / 2 / max(1, len(outputs.classes)),
                              "superposition_calibrated_level": vc.excess_delta / 2 / max(1, len(fired)),
                              "superposition_calibration": "the other classes' rows at the same level",
                              "reference_confirmation": (f"one-sided Fisher exact test at {vc.excess_delta / 2:g}: "
                                                         "the class's trusted rows as far out" if with_ref
                                                         else None)},
                             flagged, y, outputs.classes)
    names = outputs.classes
    summary["classes_found"] = [{**d, "class": jsonable(names[d["class"]])} for d in kept]
    found = {d["class"] for d in kept}
    summary["classes_rejected_by_gate"] = [{**d, "class": jsonable(names[d["class"]])} for d in gated
                                           if d["class"] not in found and d["class"] not in
                                           {u["class"] for u in unconfirmed}]
    summary["classes_rejected_by_reference"] = [{**d, "class": jsonable(names[d["class"]])} for d in unconfirmed]
    return ScreenOutput(scores, flagged, summary), rule


SCREEN = Screen("backdoor", ("representations", "strip", "reference_representations"), _run,
                "reference-free: a group of one class the data-trained model separates and whose label survives "
                "superposition, calibrated on the other classes",
                settings=("verdict", "seed", "n_folds"), verdict_reads=True, finds="attack", report_order=4)
