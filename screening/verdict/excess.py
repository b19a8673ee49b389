"""The class-excess test (docs/verdict.md, part 2): a class holding significantly more
low p-values than its own trusted rows allow, and the attack size below which it cannot
fire (its power)."""

from __future__ import annotations

import numpy as np


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


def pooled_excess(p, labels, *, fdr: float, delta: float, levels):
    """The class-excess test with the *other* classes' rows as each class's calibration
    set (no trusted reference): ``p`` are p-values against the other classes' pool
    (:func:`screening.screens.backdoor.pooled_upper_pvalues`); for class c the pool's own
    rows, ranked among themselves, play the trusted rows' part in the Beta-Binomial tail
    and the false-discovery estimate of :func:`class_excess`.

    Returns (flagged (N,) bool, per-class list of dicts as :func:`class_excess`)."""
    from scipy.stats import betabinom

    p, labels = np.asarray(p), np.asarray(labels)
    n_tests = excess_tests(labels, levels)
    flagged = np.zeros(len(p), dtype=bool)
    fired = []
    for c in np.unique(labels):
        in_c = labels == c
        pool = np.sort(p[~in_c])
        m, nc = len(pool), int(in_c.sum())
        if m == 0:
            continue
        best = None
        for t in levels:
            count = int((p[in_c] <= t).sum())
            j = int(np.searchsorted(pool, t, side="right"))
            if count == 0 or j >= m:
                continue
            tail = float(betabinom.sf(count - 1, nc, j + 1, m - j))
            holds, expected = _excess_holds(count, nc, (j + 1) / (m + 1), tail, n_tests=n_tests, delta=delta, fdr=fdr)
            if holds:
                best = {"class": int(c), "level": float(t), "count": count, "expected_clean": float(expected),
                        "tail_probability": tail}
        if best is not None:
            flagged |= in_c & (p <= best["level"])
            fired.append(best)
    return flagged, fired
