"""Activation-clustering screen (Chen et al. 2018).

Per class: reduce the representations to at most 10 principal components, split them
into 2 clusters with k-means, and call the smaller cluster poisoned when it holds at
most ``max_fraction`` of the class (the relative-size rule). The per-row score is
``1 - (size of the row's cluster / class size)`` plus a small tie-breaker (the row's
normalised distance margin towards the other cluster), so small clusters rank first.
"""

from __future__ import annotations

import numpy as np

from .base import ScreenOutput, per_class_counts


def activation_cluster_scores(representations: np.ndarray, labels: np.ndarray, *, n_components: int = 10,
                              max_fraction: float = 0.35, seed: int = 0):
    """Returns (scores (N,) float64, flagged (N,) bool)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    R = np.asarray(representations, dtype=np.float64)
    labels = np.asarray(labels)
    scores = np.zeros(len(R))
    flagged = np.zeros(len(R), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 4:
            continue
        Rc = R[idx] - R[idx].mean(0)
        k = max(1, min(n_components, Rc.shape[1], len(idx) - 1))
        Z = PCA(n_components=k, random_state=seed).fit_transform(Rc)
        km = KMeans(n_clusters=2, n_init=4, random_state=seed).fit(Z)
        lab = km.labels_
        sizes = np.bincount(lab, minlength=2) / len(idx)
        d = km.transform(Z)  # (n_c, 2) distances to both centroids
        own = d[np.arange(len(idx)), lab]
        other = d[np.arange(len(idx)), 1 - lab]
        margin = (other - own) / (other + own + 1e-12)  # in [0, 1]
        scores[idx] = (1.0 - sizes[lab]) + 1e-3 * margin
        small = int(np.argmin(sizes))
        if sizes[small] <= max_fraction:
            flagged[idx[lab == small]] = True
    return scores, flagged


def activation_cluster_screen(representations, labels, *, classes, max_fraction=0.35, seed=0) -> ScreenOutput:
    scores, flagged = activation_cluster_scores(representations, labels, max_fraction=max_fraction, seed=seed)
    return ScreenOutput(scores, flagged, {
        "parameters": {"clusters_per_class": 2, "max_fraction": max_fraction},
        "flagged": int(flagged.sum()),
        "flagged_per_class": per_class_counts(flagged, labels, classes),
    })
