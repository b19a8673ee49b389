"""Activation-clustering screen (Chen et al. 2018).

Per class: reduce the representations to at most 10 principal components, split them
into 2 clusters with k-means, and call the smaller cluster poisoned when it holds at
most ``max_fraction`` of the class (the relative-size rule). The per-row score is
``1 - (size of the row's cluster / class size)`` plus a small tie-breaker (the row's
normalised distance margin towards the other cluster), so small clusters rank first.
"""

from __future__ import annotations

import numpy as np

from .base import ProbeOutputs, Screen, ScreenOutput, class_fit_rows, screen_summary


def activation_cluster_scores(representations: np.ndarray, labels: np.ndarray, *, n_components: int = 10,
                              max_fraction: float = 0.35, seed: int = 0, max_fit_rows: int = 20000,
                              batch_size: int = 65536):
    """Returns (scores (N,) float64, flagged (N,) bool).

    Args:
        representations: (N, d) float array; labels: (N,) int class indices.
        n_components: PCA dimensions per class; max_fraction: size rule for "poisoned".
        max_fit_rows: PCA and k-means are fitted on at most this many rows of a class
            (a seeded sample); every row is then assigned in batches, so memory stays
            O(max_fit_rows d + batch d) for any N.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    labels = np.asarray(labels)
    scores = np.zeros(len(labels))
    flagged = np.zeros(len(labels), dtype=bool)
    for idx, fit_idx, Rf in class_fit_rows(representations, labels, min_rows=4, max_fit_rows=max_fit_rows,
                                           seed=seed):
        mu = Rf.mean(0)
        k = max(1, min(n_components, Rf.shape[1], len(fit_idx) - 1))
        pca = PCA(n_components=k, random_state=seed).fit(Rf - mu)
        km = KMeans(n_clusters=2, n_init=4, random_state=seed).fit(pca.transform(Rf - mu))
        lab = np.empty(len(idx), dtype=np.int64)
        margin = np.empty(len(idx))
        for start in range(0, len(idx), batch_size):
            part = idx[start:start + batch_size]
            d = km.transform(pca.transform(np.asarray(representations[part], dtype=np.float64) - mu))
            lb = d.argmin(1)
            own = d[np.arange(len(part)), lb]
            other = d[np.arange(len(part)), 1 - lb]
            lab[start:start + len(part)] = lb
            margin[start:start + len(part)] = (other - own) / (other + own + 1e-12)  # in [0, 1]
        sizes = np.bincount(lab, minlength=2) / len(idx)
        scores[idx] = (1.0 - sizes[lab]) + 1e-3 * margin
        small = int(np.argmin(sizes))
        if sizes[small] <= max_fraction:
            flagged[idx[lab == small]] = True
    return scores, flagged


def _run(outputs: ProbeOutputs, config) -> ScreenOutput:
    scores, flagged = activation_cluster_scores(outputs.representations, outputs.labels,
                                                max_fraction=config.cluster_max_fraction, seed=config.seed)
    return ScreenOutput(scores, flagged, screen_summary(
        {"clusters_per_class": 2, "max_fraction": config.cluster_max_fraction},
        flagged, outputs.labels, outputs.classes))


SCREEN = Screen("activation_cluster", ("representations",), _run,
                "2-means activation clustering of the data-trained probe's representations (Chen et al. 2018)",
                settings=("cluster_max_fraction", "seed"), canary=True, report_order=3,
                evidence=("representation",))
