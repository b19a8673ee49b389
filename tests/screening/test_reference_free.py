"""The reference-free backdoor screen, the false-discovery-controlled row level and the
suggested labels: each against an independent computation or a planted truth."""

import dataclasses

import numpy as np
import pytest
from screen_helpers import FAST, flipped_blobs, frame

from screening import ScreenConfig, VerdictConfig, screen_table
from screening.screens.backdoor import pooled_upper_pvalues
from screening.verdict.conformal import conformal_lower_pvalues, tail_pvalues
from screening.verdict.excess import pooled_excess


def test_pooled_pvalues_rank_each_row_among_the_other_classes_only():
    rng = np.random.default_rng(0)
    s = rng.normal(size=300)
    y = rng.integers(0, 4, 300)
    p = pooled_upper_pvalues(s, y)
    for i in range(0, 300, 17):
        other = s[y != y[i]]
        assert p[i] == pytest.approx((1 + (other >= s[i]).sum()) / (1 + len(other)))


def test_pooled_excess_fires_on_a_concentrated_group_and_rarely_on_exchangeable_scores():
    rng = np.random.default_rng(1)
    levels = (0.01, 0.02, 0.05, 0.1, 0.2)
    fired_clean = 0
    for _ in range(40):
        y = rng.integers(0, 5, 1000)
        _, fired = pooled_excess(pooled_upper_pvalues(rng.normal(size=1000), y), y, fdr=0.2, delta=0.05,
                                 levels=levels)
        fired_clean += bool(fired)
    assert fired_clean <= 5  # family-wise 0.05 per table
    y = rng.integers(0, 5, 1000)
    s = rng.normal(size=1000)
    group = np.flatnonzero(y == 2)[:30]
    s[group] += 6  # 30 rows of class 2 far out
    flags, fired = pooled_excess(pooled_upper_pvalues(s, y), y, fdr=0.2, delta=0.05, levels=levels)
    assert [d["class"] for d in fired] == [2]
    assert flags[group].all() and flags.sum() <= 40


def test_tail_pvalues_keep_the_conformal_value_above_the_threshold_and_go_below_its_floor():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=200)
    scores = np.r_[rng.normal(size=50), [-6.0, -8.0]]
    p = conformal_lower_pvalues(scores, ref)
    t = tail_pvalues(p, scores, ref)
    u = np.sort(ref)[20]
    np.testing.assert_array_equal(t[scores >= u], p[scores >= u])
    assert (t[scores < u] <= 21 / 201 + 1e-12).all()
    assert t[-1] < t[-2] < 1 / 201  # far below every trusted row: below the conformal floor
    np.testing.assert_array_equal(tail_pvalues(p, scores, ref[:20]), p)  # too few trusted rows: unchanged


@pytest.fixture(scope="module")
def flipped():
    return flipped_blobs()


def test_fdr_row_level_flags_no_more_than_the_per_row_level_and_suggests_the_true_class(flipped):
    X, y, yn, flip, Xr, yr = flipped
    names = np.array(["cat", "dog", "eel"])
    fdr = screen_table(frame(X, names[yn]), label_col="label", reference=frame(Xr, names[yr]),
                       config=dataclasses.replace(FAST, verdict=VerdictConfig(row_fdr=0.1)))
    per_row = screen_table(frame(X, names[yn]), label_col="label", reference=frame(Xr, names[yr]),
                           config=dataclasses.replace(FAST, verdict=VerdictConfig(row_fdr=None)))
    f, g = fdr.scores["flagged"].to_numpy(), per_row.scores["flagged"].to_numpy()
    assert fdr.summary["combine"]["row_fdr"] == 0.1 and per_row.summary["combine"]["row_fdr"] is None
    assert f.sum() <= g.sum()
    assert f[flip].mean() >= 0.8  # far-off flipped rows pass Benjamini-Hochberg on the tail p-values
    suggested = fdr.scores["suggested_label"]
    hit = flip[f[flip]]
    assert (suggested.iloc[hit].astype(str).to_numpy() == names[y[hit]]).mean() >= 0.9
    assert suggested[~f].isna().all()  # only flagged rows get a suggestion


@pytest.mark.slow
def test_reference_free_screen_finds_a_blended_backdoor_and_spares_clean_digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X[:1000].astype(float)
    y = y[:1000]
    config = ScreenConfig(seed=0, threads=1)
    clean = screen_table(frame(X, y), label_col="label", config=config)
    assert clean.summary["screens"]["backdoor"]["classes_found"] == []
    assert clean.scores["backdoor"].notna().all()
    rng = np.random.default_rng(3)
    pattern = rng.uniform(0, 16, 64)
    poison = rng.choice(np.flatnonzero(y != 0), 30, replace=False)
    Xp, yp = X.copy(), y.copy()
    Xp[poison] = 0.8 * X[poison] + 0.2 * pattern
    yp[poison] = 0
    res = screen_table(frame(Xp, yp), label_col="label", config=config)
    flagged = res.scores["flagged"].to_numpy()
    assert [d["class"] for d in res.summary["screens"]["backdoor"]["classes_found"]] == [0]
    assert flagged[poison].mean() >= 0.9
    clean_rows = np.setdiff1d(np.arange(len(y)), poison)
    assert flagged[clean_rows].mean() <= 0.02
    assert res.summary["combine"]["name"] == "cleanlab_cross_validated"
