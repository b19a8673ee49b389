"""The combined per-row verdict, and the text a report prints for it.

Rule ``"auto"`` (the default), with a trusted reference, has four parts.

1. Row level. A data row is flagged when the probes that never trained on it reject its
   label more strongly than they reject the labels of all but a fraction ``alpha`` of
   the trusted reference rows.

   The score is the label margin ``log p(label) - log max_{other} p``
   (:func:`screening.probe.label_margin`) under the self-trained, reference-anchored
   probe (:func:`screening.probe.anchored_probe`). Model f of that probe never trained,
   directly or through an admission, on reference fold f. Which models may admit a data
   row is fixed by the fold layout before anything is trained, so for each row there is
   a fixed set S of "judges", the models that could never have trained on it (its own
   fold's model and those whose admission span does not reach its fold; 3 of 5 by
   default). Under a judge f, a clean data row and a reference row of fold f are
   exchangeable. The row's p-value is cross-conformal (Vovk 2015):
   ``p = (1 + sum_{f in S} #{reference rows j of fold f: margin_f(j) <= margin_f(row)})
   / (1 + sum_{f in S} M_f)``. Each judge is compared only with its own held-out
   reference rows. The row is flagged when ``p <= max(alpha, 1 / (1 + M_S))``, with M_S
   the fewest reference rows any row is judged against; the expected flag rate on clean
   rows exchangeable with the reference is then about that level (default 2 %). The
   judges are never chosen by the row's own scores: a row judged by "the models that
   did not admit it" would be judged, when it is a hard clean row, by exactly the models
   that doubted it, and flagged too often.

2. Class excess. Poison aimed at a backdoor lands in one target class; label noise
   spreads. In each class c and at each level t of ``excess_levels``, the number of
   class-c data rows with ``p <= t`` is compared with the class's own reference rows:
   if j_c of the M_c class-c reference rows have a (within-fold) p-value <= t, the
   fraction of clean class-c rows below the cut-off is at most a Beta(j_c + 1, M_c - j_c)
   variable, so the count is at most Beta-Binomial(n_c, j_c + 1, M_c - j_c) on clean
   data. When that count is significant (tail probability times the number of tests <=
   ``excess_delta``, halved when part 3 runs too) and the clean rows it would take are
   few (with F = (j_c + 1) / (M_c + 1) the clean rows' estimated share below t and the
   class's clean rows at most n_c - count + E, the expected clean rows below t are
   E = (n_c - count) F / (1 - F), and E <= ``excess_fdr`` x count: an estimated
   false-discovery rate), the class's rows with ``p <= t`` are flagged, at the largest
   such t. On clean data this fires with
   probability at most ``excess_delta`` over all classes; under a concentrated attack it
   lifts the cut-off to where the poison sits (a blended trigger whose rows the probe
   doubts less than its hardest clean rows, a clean-label trigger that lowers the probe's
   confidence in the target class).

3. Trigger contrast. A backdoor works because a model trained on the data learns its
   trigger. The cross-validated probe trains on the data, the other poisoned rows
   included, so it accepts a poisoned row's label; the anchored probe never learned the
   trigger and rejects it. A hard clean row is doubted by both, a flipped label by both.
   The contrast score ``margin_f(row) - cv_margin(row)`` (anchored margin under judge f
   minus the cross-validated probe's out-of-fold margin) is low where only the anchored
   probe rejects the label. Reference rows get the same score: their cross-validated
   margin comes from a fold model that never trained on them, so under each judge a clean
   data row and a held-out reference row stay exchangeable. The contrast is taken twice:
   with the last self-training round (the strongest anchored probe), and with round 0,
   whose models trained on the reference alone (plain conformal p-values: no model of
   round 0 saw any data row). Round 0 matters when self-training itself learned the
   trigger: a trigger of extreme feature values can push the reference-only probe
   towards the target class on some poisoned rows, which are then admitted and teach
   the next round the trigger. The contrasts' p-values enter the class-excess test of
   part 2 only, never the row level, so the row-level clean flag rate is unchanged.
   Measured on six kinds of data (46 tables, 2 seeds), they caught feature-value and
   embedding triggers that the margin alone placed among the hard clean rows (tabular
   trigger recall 0.62 -> 0.96 and 0.31 -> 0.96, embedding 0.40 -> 0.83 and
   0.55 -> 0.88, weak-probe imbalanced 0.17 -> 0.70) and fired on no clean table.
   ``excess_delta`` is split by Bonferroni: half to the label margin, a quarter to
   each contrast.

4. Trigger expansion (:func:`trigger_expansion`). The label tests miss the poisoned rows
   that even a clean model puts in the target class (the trigger's own values point
   there), and each one left in keeps the attack alive (measured: with 1-2 of 45
   poisoned rows left, a retrained model obeyed the trigger on 15-70 % of test rows). In a
   class where the class excess fired, a logistic regression learns to tell the class's
   flagged data rows from its trusted reference rows, cross-fitted over folds of both;
   the class's other rows that every fold model scores above its held-out reference rows
   (cross-conformal p-value <= ``expansion_level``; a class with fewer than
   ``1 / expansion_level - 1`` reference rows cannot reach it and is not tried, which the
   rule's text says) are flagged. A backdoor's flagged rows
   share the trigger, so the classifier learns it; flipped labels and hard rows share
   nothing, and a clean row exchangeable with the reference rows is flagged with
   probability about the level. Measured on a feature-value trigger (6 seeds), recall
   went from 0.76-1.0 to 1.0 on every seed and attack success after removal from
   0-94 % to 0-5 %, with the clean flag rate up by at most 0.3 points.

No constant is fitted to any data set: every cut-off comes from the trusted reference's
own out-of-fold margins or scores.

What part 2 can detect is bounded by the reference, and the verdict says by how much
(:func:`detectable_attack`, ``detectable_attack`` in the summary): per class, the attack
size below which the class excess cannot flag a concentrated attack, even when every
poisoned row lies below every trusted row of the class. With M_c trusted rows, c rows of
n_c data rows all below them happen by chance with probability
``prod_{i < c} (n_c - i) / (n_c + M_c - i)``, about ``(n_c / (n_c + M_c))^c``. A class with
24 trusted rows and 139 data rows needs 38 (10 classes, the default levels, the label
margin's half of ``excess_delta``). A smaller attack in that class is left to the row
level; more trusted rows are the remedy.

Without a reference there is nothing trusted to calibrate on: the verdict is
cleanlab's ``find_label_issues`` on the cross-validated probe, restricted to rows whose
label the probe rejects (another class is the argmax); the flag rate on clean data then
depends on the probe and is reported, not bounded.

Rule ``"label_noise"`` is cleanlab's ``find_label_issues`` alone; ``"union"`` flags a row
any screen flagged.
"""

from __future__ import annotations

import numpy as np


def conformal_lower_pvalues(scores: np.ndarray, reference_scores: np.ndarray) -> np.ndarray:
    """Conformal p-values for "this score is unusually low" against a clean reference.

    Args:
        scores: (N,) scores of the rows under test (lower = more suspicious).
        reference_scores: (M,) the same score on trusted rows, computed the same way.

    Returns:
        (N,) float64, ``(1 + #{j: reference_scores[j] <= scores[i]}) / (M + 1)``. For a row
        exchangeable with the reference rows, ``P(p <= a) <= a`` for every ``a``.
    """
    ref = np.sort(np.asarray(reference_scores, dtype=np.float64))
    below = np.searchsorted(ref, np.asarray(scores, dtype=np.float64), side="right")
    return (1.0 + below) / (len(ref) + 1.0)


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
        (N,) float64 in (0, 1].
    """
    n_models, n = model_margins.shape
    num = np.ones(n)
    den = np.ones(n)
    for f in range(n_models):
        ref = np.sort(np.asarray(reference_margins, dtype=np.float64)[reference_folds == f])
        use = np.asarray(judges[f], dtype=bool)
        score = model_margins[f, use].astype(np.float64)
        if row_offset is not None:
            score -= np.asarray(row_offset)[use]
        num[use] += np.searchsorted(ref, score, side="right")
        den[use] += len(ref)
    return num / den


def judged_reference_rows(judges, reference_folds) -> int:
    """The fewest reference rows any data row is judged against (``M_S``)."""
    per_fold = np.bincount(np.asarray(reference_folds), minlength=len(judges))[:len(judges)]
    judged = (np.asarray(judges, dtype=bool) * per_fold[:, None]).sum(axis=0)
    return int(judged.min()) if judged.size else 0


def reference_fold_pvalues(reference_margins, reference_folds) -> np.ndarray:
    """(M,) p-value of each reference row among its own fold's reference rows
    (``#{j in fold: margin_j <= margin_i} / M_fold``): how a clean row's p-value falls."""
    rm = np.asarray(reference_margins, dtype=np.float64)
    p = np.ones(len(rm))
    for f in np.unique(reference_folds):
        idx = np.flatnonzero(reference_folds == f)
        p[idx] = np.searchsorted(np.sort(rm[idx]), rm[idx], side="right") / len(idx)
    return p


def excess_tests(labels, levels) -> int:
    """How many tests the class excess makes of one statistic (classes x levels): its
    Bonferroni factor."""
    return max(1, len(np.unique(labels)) * len(levels))


def _excess_holds(count: int, n_c: int, share: float, tail: float, *, n_tests: int, delta: float,
                  fdr: float) -> tuple[bool, float]:
    """Part 2's two conditions for ``count`` of a class's ``n_c`` rows below a level:
    significance (``tail x n_tests <= delta``) and few clean rows taken. The clean rows
    expected below the level are the class's clean rows times their estimated share F
    (``share``) there; the clean rows number n_c minus the poison, and the poison is at
    least count minus those clean ones, hence E = (n_c - count) F / (1 - F), which must be
    at most ``fdr x count``. Returns (both hold, E)."""
    expected = (n_c - count) * share / (1 - share)
    return tail * n_tests <= delta and expected <= fdr * count, expected


def class_excess(p, reference_p, labels, ref_labels, *, fdr: float, delta: float, levels):
    """Classes holding significantly more low p-values than their reference rows allow
    (module docstring, part 2).

    Returns (flagged (N,) bool, per-class list of dicts for the classes that fired:
    ``class`` index, ``level``, ``count``, ``expected_clean``, ``tail_probability``).
    """
    from scipy.stats import betabinom

    p = np.asarray(p)
    labels = np.asarray(labels)
    ref_labels = np.asarray(ref_labels)
    flagged = np.zeros(len(p), dtype=bool)
    classes = np.unique(labels)
    n_tests = excess_tests(labels, levels)
    fired = []
    for c in classes:
        in_c = labels == c
        pc, rc = p[in_c], reference_p[ref_labels == c]
        nc, mc = len(pc), len(rc)
        if mc == 0:
            continue  # nothing trusted to compare this class with
        best = None
        for t in levels:
            count = int((pc <= t).sum())
            jc = int((rc <= t).sum())
            if count == 0 or jc >= mc:
                continue
            tail = float(betabinom.sf(count - 1, nc, jc + 1, mc - jc))
            holds, expected = _excess_holds(count, nc, (jc + 1) / (mc + 1), tail, n_tests=n_tests,
                                            delta=delta, fdr=fdr)
            if holds:
                best = {"class": int(c), "level": float(t), "count": count,
                        "expected_clean": float(expected), "tail_probability": tail}
        if best is not None:
            flagged |= in_c & (p <= best["level"])
            fired.append(best)
    return flagged, fired


def detectable_attack(n_rows: int, n_reference: int, *, n_tests: int, delta: float, fdr: float) -> int | None:
    """The size below which the class excess (part 2) cannot flag an attack concentrated
    on one class, however well the score separates it: a lower bound, not a promise.

    The best case for the test is a level at which no trusted row of the class has a
    p-value (j_c = 0) and every poisoned row has one. ``count`` rows below it, of the
    class's ``n_rows`` data rows, are significant only when the Beta-Binomial tail
    ``P(X >= count)``, X ~ Beta-Binomial(n_rows, 1, n_reference), times ``n_tests`` is at
    most ``delta``, and pass the false-discovery condition only when
    ``(n_rows - count) / n_reference <= fdr x count`` (:func:`_excess_holds` with share
    ``1 / (n_reference + 1)``). Fewer rows are never flagged by the class excess: they
    are left to the row-level test, and with few trusted rows of a class no valid test
    can tell them from a chance excess. As many rows can still be missed, when no fixed
    level separates the class's trusted rows from the poison.

    For a class much larger than its reference, the smallest flaggable share of the
    class is roughly ``max(ln(n_tests / delta) / n_reference, 1 / (1 + fdr n_reference))``:
    it shrinks with the trusted rows, almost whatever the class's size.

    Returns:
        The smallest such count, or None when no count up to ``n_rows`` is enough (or
        the class has no trusted row).
    """
    from scipy.special import gammaln

    n, m = int(n_rows), int(n_reference)

    def enough(count):  # both conditions only get easier as count grows: bisect
        # Beta-Binomial(n, 1, m) tail in closed form (scipy's betabinom.sf sums the pmf,
        # seconds at 10M rows): the chance that the `count` lowest of n + m exchangeable
        # rows are all data rows, prod_{i < count} (n - i) / (n + m - i)
        log_tail = gammaln(n + 1) - gammaln(n - count + 1) + gammaln(n + m - count + 1) - gammaln(n + m + 1)
        return _excess_holds(count, n, 1 / (m + 1), float(np.exp(log_tail)), n_tests=n_tests, delta=delta,
                             fdr=fdr)[0]

    if m < 1 or n < 1 or not enough(n):
        return None
    lo, hi = 0, n  # enough(hi) holds, enough(lo) does not (count 0 never fires)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def power_statement(power: list[dict]) -> str | None:
    """One sentence for the least covered class of a verdict's ``detectable_attack`` list
    (entries with ``class``, ``rows``, ``reference_rows``, ``min_attack_rows``): the class
    where a concentrated backdoor can be largest, as a share of the class, and still go
    unflagged by the class excess. Entries without rows are skipped; None when none is
    left."""
    power = [d for d in power if d.get("rows")]
    if not power:
        return None
    worst = max(power, key=lambda d: float("inf") if d["min_attack_rows"] is None
                else d["min_attack_rows"] / d["rows"])
    c, m, k = worst["class"], worst["reference_rows"], worst["min_attack_rows"]
    if k is None:
        return (f"class {c}: the class-excess test cannot flag a concentrated backdoor of any size "
                f"({m} trusted rows); add trusted rows of the class")
    return (f"the class-excess test cannot flag a backdoor concentrated on class {c} below {k} of its "
            f"{worst['rows']} rows ({k / worst['rows']:.0%}; {m} trusted rows, the least covered class): "
            "smaller ones are left to the row-level test; add trusted rows of the class")


def trigger_expansion(features, labels, reference_features, ref_labels, flagged, fired_classes, *,
                      level: float, n_folds: int = 5, seed: int = 0, batch_size: int = 65536):
    """Part 4 of the verdict: the other rows of a backdoored class that carry what its
    flagged rows carry.

    In each class c where the class excess fired, a logistic regression learns to tell
    the class's flagged data rows from its trusted reference rows (cross-fitted over
    ``n_folds`` folds of both). Every unflagged class-c data row is scored by every fold
    model and ranked against the reference rows that model never trained on
    (cross-conformal, as in part 1, upper tail); rows with p-value <= ``level`` are
    flagged. A backdoor's flagged rows share its trigger, so the model learns the
    trigger and finds the poisoned rows that the label tests missed (those a clean
    model itself puts in the target class). Flipped labels or hard clean rows share
    nothing, and a clean row exchangeable with the reference rows gets p <= level with
    probability about ``level``.

    Args:
        features, reference_features: (N, ...) and (M, ...) float32 (flattened per row).
        labels, ref_labels: (N,) and (M,) class indices.
        flagged: (N,) bool, the verdict so far.
        fired_classes: class indices where the class excess fired.

    Returns:
        (extra (N,) bool: newly flagged rows, list of per-class dicts: ``class`` index,
        ``positives``, ``reference_rows``, ``flagged`` and, when the class was not
        tried, ``skipped``: why).
    """
    from sklearn.linear_model import LogisticRegression

    n, m = len(labels), len(ref_labels)
    F = np.asarray(features).reshape(n, -1)
    R = np.asarray(reference_features).reshape(m, -1)
    extra = np.zeros(n, dtype=bool)
    info = []
    rng = np.random.default_rng(seed)
    for c in sorted({int(c) for c in fired_classes}):
        pos = np.flatnonzero(flagged & (labels == c))
        neg = np.flatnonzero(ref_labels == c)
        cand = np.flatnonzero(~flagged & (labels == c))
        k = min(int(n_folds), len(pos), len(neg))
        row = {"class": int(c), "positives": int(len(pos)), "reference_rows": int(len(neg)), "flagged": 0}
        # the smallest p-value a row can get is 1 / (1 + M_c): with too few trusted rows
        # nothing could be flagged at this level, so nothing is tried
        if 1.0 / (1 + len(neg)) > level:
            info.append({**row, "skipped": f"{len(neg)} trusted rows of the class cannot give a p-value <= {level:g}"})
            continue
        if k < 2 or len(cand) == 0:
            info.append({**row, "skipped": "too few flagged or unflagged rows"})
            continue
        pf = rng.permutation(len(pos)) % k
        nf = rng.permutation(len(neg)) % k
        # negated scores: "scores above the held-out reference rows" is part 1's lower tail
        neg_scores = np.empty((k, len(cand)))
        ref_neg_scores = np.empty(len(neg))
        for f in range(k):
            Xtr = np.concatenate([F[pos[pf != f]], R[neg[nf != f]]]).astype(np.float64)
            ytr = np.r_[np.ones(int((pf != f).sum())), np.zeros(int((nf != f).sum()))]
            model = LogisticRegression(max_iter=2000, class_weight="balanced").fit(Xtr, ytr)
            ref_neg_scores[nf == f] = -model.decision_function(R[neg[nf == f]].astype(np.float64))
            for start in range(0, len(cand), batch_size):  # bounded memory on large classes
                idx = cand[start:start + batch_size]
                neg_scores[f, start:start + len(idx)] = -model.decision_function(F[idx].astype(np.float64))
        p = cross_conformal_pvalues(neg_scores, np.ones((k, len(cand)), dtype=bool), ref_neg_scores, nf)
        hit = cand[p <= level]
        extra[hit] = True
        info.append({**row, "flagged": int(len(hit))})
    return extra, info


def combine_verdict(*, labels, config, label_probs, anchored=None, screen_flags: dict,
                    ref_labels=None, classes=None, cv_margins=None, cv_reference_margins=None,
                    features=None, reference_features=None):
    """Return (flagged (N,) bool, rule description dict with ``name`` and ``text``).

    Args:
        labels: (N,) int class indices.
        config: :class:`screening.ScreenConfig` (``combine``, ``verdict_alpha``).
        label_probs: (N, K) the label screen's pred_probs (used without a reference).
        anchored: :class:`screening.probe.AnchoredProbe` or None.
        screen_flags: per-screen (N,) bool flags (``"label_noise"`` at least).
        ref_labels: (M,) reference labels when ``anchored`` is given.
        classes: class names in index order (for the rule's text and summary).
        cv_margins, cv_reference_margins: (N,) and (M,) label margins of the data and
            reference rows under the cross-validated probe (out-of-fold / never trained
            on); with ``anchored``, they enable the trigger-contrast test (part 3).
        features, reference_features: (N, ...) and (M, ...) the (normalised) features
            of the data and reference rows; with ``anchored``, they enable the trigger
            expansion (part 4, :func:`trigger_expansion`) in classes where the class
            excess fired.
    """
    rule = config.combine
    if rule == "union":
        flagged = np.zeros(len(labels), dtype=bool)
        for f in screen_flags.values():
            flagged |= f
        return flagged, {"name": "union", "text": "flagged by any screen"}
    if rule == "label_noise":
        return screen_flags["label_noise"].copy(), {
            "name": "label_noise", "text": "cleanlab find_label_issues on the label screen's pred_probs"}
    if anchored is not None:
        return _anchored_verdict(labels, config, anchored, ref_labels, classes, cv_margins, cv_reference_margins,
                                 features, reference_features)
    p = np.asarray(label_probs)
    rejects = p.argmax(axis=1) != np.asarray(labels)
    flagged = screen_flags["label_noise"] & rejects
    text = ("no reference: cleanlab find_label_issues on the cross-validated probe's pred_probs, "
            "where the probe prefers another class (flag rate on clean data not bounded)")
    return flagged, {"name": "cleanlab_cross_validated", "text": text}


def _anchored_verdict(labels, config, anchored, ref_labels, classes=None, cv_margins=None,
                      cv_reference_margins=None, features=None, reference_features=None):
    """Rule "auto" with a reference: row-level cross-conformal cut plus class excess on
    the label margin and, given the cross-validated probe's margins, on the trigger
    contrast."""
    from .probe import label_margin

    labels, ref_labels = np.asarray(labels), np.asarray(ref_labels)
    ref_margins = label_margin(ref_labels, anchored.reference_pred_probs)
    m = len(ref_labels)
    judges = ~np.asarray(anchored.eligible, dtype=bool)
    m_judged = judged_reference_rows(judges, anchored.reference_folds)
    level = calibrated_level(config.verdict_alpha, m_judged, config.verdict_confidence)
    upper90 = clean_rate_upper_bound(level, m_judged, 0.9) if m_judged else 1.0
    pvals = cross_conformal_pvalues(anchored.model_margins, judges, ref_margins, anchored.reference_folds)
    ref_p = reference_fold_pvalues(ref_margins, anchored.reference_folds)
    row_flags = pvals <= level
    levels = tuple(config.excess_levels)
    contrast = cv_margins is not None and cv_reference_margins is not None
    delta = config.excess_delta / (2 if contrast else 1)
    # (name, family-wise level, () -> (p-values of the data rows, the reference rows' own)):
    # computed one statistic at a time, so at most one extra (N,) p-value array is held
    statistics = [("label margin", delta, lambda: (pvals, ref_p))]
    if contrast:
        cv_ref = np.asarray(cv_reference_margins, dtype=np.float64)
        ref_c = ref_margins - cv_ref
        ref_c0 = anchored.initial_reference_margins - cv_ref
        statistics += [
            ("trigger contrast", delta / 2, lambda: (
                cross_conformal_pvalues(anchored.model_margins, judges, ref_c, anchored.reference_folds,
                                        row_offset=cv_margins),
                reference_fold_pvalues(ref_c, anchored.reference_folds))),
            ("trigger contrast, reference-only probe", delta / 2, lambda: (
                conformal_lower_pvalues(anchored.initial_margins - cv_margins, ref_c0),
                reference_fold_pvalues(ref_c0, np.zeros(m, dtype=np.int64)))),
        ]
    excess_flags = np.zeros(len(pvals), dtype=bool)
    fired = []
    for name, d, compute in statistics:
        p, rp = compute()
        more, fired_s = class_excess(p, rp, labels, ref_labels, fdr=config.excess_fdr, delta=d, levels=levels)
        excess_flags |= more
        fired += [{**f, "statistic": name} for f in fired_s]
        del p, rp, more
    flagged = row_flags | excess_flags
    expanded = []
    expansion_flags = np.zeros(len(flagged), dtype=bool)
    if fired and features is not None and reference_features is not None and config.expansion_level > 0:
        expansion_flags, expanded = trigger_expansion(
            features, np.asarray(labels), reference_features, ref_labels, flagged, [d["class"] for d in fired],
            level=config.expansion_level, n_folds=config.n_folds, seed=config.seed)
        flagged = flagged | expansion_flags
    # per class, the attack size below which the class excess (label margin) cannot flag:
    # the report's power statement
    n_tests = excess_tests(labels, levels)
    n_per = dict(zip(*np.unique(labels, return_counts=True)))
    m_per = dict(zip(*np.unique(ref_labels, return_counts=True)))
    power = [{"class": c.item(), "rows": int(n_c), "reference_rows": int(m_per.get(c, 0)),
              "min_attack_rows": detectable_attack(n_c, m_per.get(c, 0), n_tests=n_tests, delta=delta,
                                                   fdr=config.excess_fdr)}
             for c, n_c in n_per.items()]
    f0 = conformal_lower_pvalues(anchored.initial_margins, anchored.initial_reference_margins) <= level
    k = max(1, int(np.floor(level * (m + 1))))
    cutoff = float(np.sort(ref_margins)[min(k, m) - 1]) if m else float("nan")
    text = ("flagged when the label margin log p(label) - log max_other p, from the reference-anchored probes "
            "that could never have trained on the row, is lower than the trusted reference rows' own held-out "
            f"margins allow: cross-conformal p-value <= {level:.4g} (expected flag rate on clean rows about "
            f"{level:.2%}, and below {upper90:.2%} for this table with 90 % confidence; "
            f"alpha={config.verdict_alpha}, {m} reference rows, each row judged against at least {m_judged}); "
            "and, in a class holding "
            "significantly more low p-values than its own reference rows allow (Beta-Binomial test, "
            f"family-wise level {config.excess_delta}, estimated false-discovery rate <= {config.excess_fdr}), "
            "every row of that class up to the level where the excess sits")
    if contrast:
        text += ("; the excess is sought in the label margin and in the trigger contrast (the anchored "
                 "probe, last round and reference-only round, rejecting a label that the cross-validated probe, "
                 "trained on the data, accepts: what a learned backdoor trigger does)")
    if classes is not None:
        for d in (*fired, *expanded, *power):  # class names, not indices, in the summary and the text
            name = classes[d["class"]]
            d["class"] = name.item() if hasattr(name, "item") else name
    if fired:
        text += ": " + "; ".join(f"class {d['class']!r} up to p <= {d['level']:g} in the {d['statistic']} "
                                 f"({d['count']} rows, about {d['expected_clean']:.1f} clean expected)"
                                 for d in fired)
    if features is not None and config.expansion_level > 0:
        text += ("; in a class where the excess fired, also every other row that a classifier trained to tell the "
                 "flagged rows from the class's trusted rows scores above them (cross-conformal p-value <= "
                 f"{config.expansion_level:g}: what a backdoor's trigger rows share)")
    if expanded:
        text += ": " + "; ".join(f"class {d['class']!r}, not tried ({d['skipped']})" if "skipped" in d
                                 else f"class {d['class']!r}, {d['flagged']} more rows" for d in expanded)
    details = {"p_value_level": level, "clean_flag_rate_bound": level, "clean_flag_rate_upper_90": upper90,
               "verdict_confidence": config.verdict_confidence,
               "judges_per_row": int(judges.sum(axis=0).min()) if judges.size else 0,
               "judged_reference_rows": m_judged,
               "row_level_flagged": int(row_flags.sum()),
               "class_excess": fired, "class_excess_flagged": int((excess_flags & ~row_flags).sum()),
               "trigger_contrast": bool(contrast),
               "expansion": expanded, "expansion_flagged": int(expansion_flags.sum()),
               "detectable_attack": power,
               "probes": [{"probe": f"self-trained, reference-anchored (round {len(anchored.kept_per_round)})",
                           "flagged": int(row_flags.sum()), "margin_cutoff": cutoff}],
               "reference_only_probe_would_flag": int(f0.sum())}
    return flagged, {"name": "reference_calibrated", "text": text, "p_values": pvals, **details}
