"""The label-noise floor (screening.verdict.noise): it adds rows only when the table's
disagreement with the cross-validated probe exceeds the reference's beyond its level,
never more than the lower bound it certifies, and nothing where the verdict already
holds the noise."""

import numpy as np

from screening.verdict.noise import noise_floor


def _margins(n, error, rng):
    """(n,) margins with a share ``error`` below 0 (the probe rejects the label)."""
    m = rng.normal(2.0, 1.0, n)
    bad = rng.random(n) < error
    m[bad] = -np.abs(rng.normal(1.0, 1.0, bad.sum())) - 1e-6
    return m


def _labels(n, m, k=4):
    return {"labels": np.arange(n) % k, "ref_labels": np.arange(m) % k}


def test_clean_table_gets_nothing_in_almost_every_draw():
    rng = np.random.default_rng(0)
    fired = 0
    for _ in range(200):
        data, ref = _margins(3000, 0.2, rng), _margins(500, 0.2, rng)
        added, d = noise_floor(data, ref, np.zeros(3000, bool), level=0.01, **_labels(len(data), len(ref)))
        fired += bool(added.any())
        assert d["added"] == int(added.sum())
    assert fired <= 8  # about 1 % of 200 draws; 8 is far in the binomial tail


def test_noisy_table_is_filled_to_the_lower_bound_with_the_lowest_margins():
    rng = np.random.default_rng(1)
    n, clean_err = 3000, 0.2
    data, ref = _margins(n, clean_err, rng), _margins(500, clean_err, rng)
    flipped = rng.random(n) < 0.10
    data[flipped] = -np.abs(rng.normal(2.0, 1.0, flipped.sum()))  # a flipped label: the probe prefers another
    added, d = noise_floor(data, ref, np.zeros(n, bool), level=0.01, **_labels(len(data), len(ref)))
    assert d["p_value"] < 0.01 and d["disagreement"] > d["reference_disagreement"]
    k = d["noise_rows_lower_bound"]
    # the bound is below the true count (a lower confidence bound) but not vacuous
    assert 0.3 * flipped.sum() < k <= flipped.sum() * 1.05
    assert added.sum() == k
    # the rows added are the lowest margins
    assert data[added].max() <= data[~added].min()
    # precision: most added rows are flipped ones
    assert (added & flipped).sum() / added.sum() > 0.6


def test_nothing_added_when_the_verdict_already_holds_the_noise_or_the_floor_is_off():
    rng = np.random.default_rng(2)
    n = 3000
    data, ref = _margins(n, 0.3, rng), _margins(500, 0.1, rng)
    everything_rejected = data < 0
    added, d = noise_floor(data, ref, everything_rejected, level=0.01, **_labels(len(data), len(ref)))
    assert d["found"] == int(everything_rejected.sum()) >= d["noise_rows_lower_bound"] > 0
    assert not added.any()
    added, d = noise_floor(data, ref, np.zeros(n, bool), level=0, **_labels(len(data), len(ref)))
    assert not added.any() and d["disagreement"] is None


def test_partial_verdict_is_topped_up_not_duplicated():
    rng = np.random.default_rng(3)
    n = 2000
    data, ref = _margins(n, 0.35, rng), _margins(400, 0.1, rng)
    flagged = np.zeros(n, bool)
    flagged[np.flatnonzero(data < 0)[:50]] = True
    added, d = noise_floor(data, ref, flagged, level=0.01, **_labels(len(data), len(ref)))
    assert not (added & flagged).any()
    assert d["found"] == 50 and added.sum() == d["noise_rows_lower_bound"] - 50


def test_reference_class_mix_is_reweighted_to_the_data():
    """A balanced reference of one easy and one hard class against data that is mostly
    the easy class: the pooled reference rate would overstate the data's clean error and
    hide the noise; weighted by the data's class shares it does not."""
    rng = np.random.default_rng(4)
    n_easy, n_hard = 2700, 300
    data = np.concatenate([_margins(n_easy, 0.05, rng), _margins(n_hard, 0.5, rng)])
    labels = np.r_[np.zeros(n_easy, int), np.ones(n_hard, int)]
    flipped = rng.random(len(data)) < 0.08
    data[flipped] = -np.abs(rng.normal(2.0, 1.0, flipped.sum()))
    ref = np.concatenate([_margins(250, 0.05, rng), _margins(250, 0.5, rng)])
    ref_labels = np.r_[np.zeros(250, int), np.ones(250, int)]
    added, d = noise_floor(data, ref, np.zeros(len(data), bool), labels=labels, ref_labels=ref_labels, level=0.01)
    assert d["reference_disagreement"] < 0.15 < float((ref < 0).mean())
    assert d["noise_rows_lower_bound"] > 0.3 * flipped.sum()


def _probs_from(margin_sign_bad, labels, k, rng, sharp):
    """(N, K) probabilities: the label's class when the row is 'good', another class when
    bad; ``sharp`` sets how confident."""
    n = len(labels)
    other = (labels + 1 + rng.integers(0, k - 1, n)) % k
    top = np.where(margin_sign_bad, other, labels)
    p = rng.dirichlet(np.ones(k), n) * (1 - sharp)
    p[np.arange(n), top] += sharp
    return p / p.sum(1, keepdims=True)


def test_cleanlab_fallback_only_where_the_verdict_misses_certified_noise():
    from screening.probe import label_margin
    from screening.verdict.noise import cleanlab_fallback

    rng = np.random.default_rng(5)
    k, n, m = 5, 2000, 500
    labels, ref_labels = rng.integers(0, k, n), rng.integers(0, k, m)
    flipped = rng.random(n) < 0.15
    wrong = (rng.random(n) < 0.2) | flipped  # a weak probe: a fifth of clean rows rejected too
    probs = _probs_from(wrong, labels, k, rng, 0.6)
    ref_probs = _probs_from(rng.random(m) < 0.2, ref_labels, k, rng, 0.6)
    margins, ref_margins = label_margin(labels, probs), label_margin(ref_labels, ref_probs)
    nothing = np.zeros(n, bool)
    _, floor = noise_floor(margins, ref_margins, nothing, labels=labels, ref_labels=ref_labels, level=0.01)
    assert floor["p_value"] < 0.01
    # the verdict flagged almost nothing: cleanlab's flags are expected to do better and are used
    peer, d = cleanlab_fallback(labels, ref_labels, probs, ref_probs, nothing, floor, row_fdr=0.1, level=0.01)
    assert d["used"] and peer is not None and peer.sum() > 0.1 * n
    assert d["expected_f1_cleanlab"] > d["expected_f1_verdict"]
    # a verdict that already holds the flipped rows is kept
    peer, d = cleanlab_fallback(labels, ref_labels, probs, ref_probs, flipped, floor, row_fdr=0.1, level=0.01)
    assert not d["used"] and peer is None
    # no certified noise (a clean table): never used
    clean_probs = _probs_from(rng.random(n) < 0.2, labels, k, rng, 0.6)
    _, floor = noise_floor(label_margin(labels, clean_probs), ref_margins, nothing, labels=labels,
                           ref_labels=ref_labels, level=0.01)
    peer, d = cleanlab_fallback(labels, ref_labels, clean_probs, ref_probs, nothing, floor, row_fdr=0.1, level=0.01)
    assert floor["p_value"] > 0.01 and not d["used"] and peer is None


def _weak_probe_margins(n, rng):
    """A weak probe: about a quarter of clean labels rejected, but rarely by much."""
    return rng.logistic(1.2, 1.0, n)


def test_depth_test_finds_noise_the_rejection_rate_cannot_certify():
    """Flipped labels fall far below a zero margin, hard clean rows only just: with a
    small reference the rate of rejected labels certifies no noisy row on most draws,
    while the depth test rejects on almost every one."""
    depth_rejects = bound_positive = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        n, m = 600, 150
        data, ref = _weak_probe_margins(n, rng), _weak_probe_margins(m, rng)
        flipped = rng.random(n) < 0.08
        data[flipped] = -np.abs(rng.normal(4.0, 1.0, flipped.sum()))
        _, d = noise_floor(data, ref, np.zeros(n, bool), level=0.01, seed=seed, **_labels(n, m, k=3))
        depth_rejects += d["p_value"] <= 0.01
        bound_positive += d["noise_rows_lower_bound"] > 0
    assert depth_rejects >= 17
    assert bound_positive <= 10


def test_depth_test_holds_its_level_with_a_small_heavy_tailed_reference():
    """The permutation null is exact: a 40-row reference of heavy-tailed margins (where a
    normal approximation to the skewed statistic rejects too often) from the same law as
    the data rows rejects at 0.01 on about 1 % of draws."""
    from screening.verdict.noise import depth_pvalue

    rng = np.random.default_rng(7)
    fired = 0
    for _ in range(200):
        data, ref = rng.standard_t(2, 400) + 1.0, rng.standard_t(2, 40) + 1.0
        p = depth_pvalue(data, ref, np.arange(400) % 2, np.arange(40) % 2, seed=1)
        assert 0 < p <= 1
        fired += p <= 0.01
    assert fired <= 8


def test_depth_test_samples_large_tables_and_is_seeded():
    from screening.verdict.noise import depth_pvalue

    rng = np.random.default_rng(8)
    n, m = 50_000, 500
    data, ref = _weak_probe_margins(n, rng), _weak_probe_margins(m, rng)
    flipped = rng.random(n) < 0.05
    data[flipped] = -np.abs(rng.normal(4.0, 1.0, flipped.sum()))
    labels, ref_labels = np.arange(n) % 4, np.arange(m) % 4
    p = depth_pvalue(data, ref, labels, ref_labels, seed=3, max_rows=5_000)
    assert p <= 0.01
    assert p == depth_pvalue(data, ref, labels, ref_labels, seed=3, max_rows=5_000)
    # a class the reference lacks is left out; no shared class at all is no evidence
    assert depth_pvalue(data, ref, labels, ref_labels + 10) == 1.0
