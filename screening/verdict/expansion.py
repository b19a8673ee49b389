"""Trigger expansion (docs/verdict.md, part 4): in a class where the excess fired, the
other rows that carry what its flagged rows carry."""

from __future__ import annotations

import numpy as np

from .conformal import cross_conformal_pvalues


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
