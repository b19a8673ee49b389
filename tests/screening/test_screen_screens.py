"""Correctness of the array-level screens against independent computations."""

import dataclasses

import numpy as np
import pytest

from screening.probe import influence_scores
from screening.screens.base import top_fraction_per_class
from screening.screens.label_noise import label_noise_flags, label_noise_scores
from screening.screens.spectral import spectral_scores


def _planted(n=400, d=12, n_poison=20, seed=0, offset=np.full(12, 0.0)):
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(n, d)) * np.linspace(1.0, 2.0, d) + offset
    y = np.repeat([0, 1], n // 2)
    direction = np.zeros(d)
    direction[3] = 1.0
    poison = np.flatnonzero(y == 1)[:n_poison]
    R[poison] += 9.0 * direction
    return R.astype(np.float32), y, poison


def test_spectral_matches_paper_algorithm_and_finds_planted_direction():
    R, y, poison = _planted()
    s = spectral_scores(R, y, device="cpu")
    # Algorithm 1 by hand: centre per class, top right singular vector by full SVD
    for c in (0, 1):
        idx = y == c
        Rc = R[idx].astype(np.float64) - R[idx].astype(np.float64).mean(0)
        v = np.linalg.svd(Rc, full_matrices=False)[2][0]
        np.testing.assert_allclose(s[idx], (Rc @ v) ** 2, rtol=1e-4, atol=1e-4)
    flagged = top_fraction_per_class(s, y, 1.5 * len(poison) / (len(y) / 2))
    assert set(poison) <= set(np.flatnonzero(flagged))


def test_centred_differs_from_uncentred_art_score():
    # a large common offset dominates the uncentred top direction, not the centred one
    R, y, poison = _planted(offset=np.full(12, 20.0))
    s = spectral_scores(R, y, device="cpu")
    art = np.zeros(len(y))
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        v = np.linalg.svd(R[idx].astype(np.float64), full_matrices=False)[2][0]
        art[idx] = np.abs(R[idx] @ v)
    cls1 = np.flatnonzero(y == 1)
    top_centred = set(cls1[np.argsort(-s[cls1])[:20]])
    top_art = set(cls1[np.argsort(-art[cls1])[:20]])
    assert len(top_centred & set(poison)) == 20
    assert len(top_art & set(poison)) < 20


def test_robust_spectral_finds_planted_direction():
    R, y, poison = _planted(n_poison=30)
    s = spectral_scores(R, y, method="robust", device="cpu")
    cls1 = np.flatnonzero(y == 1)
    top = set(cls1[np.argsort(-s[cls1])[:45]])
    assert len(top & set(poison)) >= 28


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_centred_class_moments_match_a_float64_reference(monkeypatch, offset):
    # classes of very different sizes (class 3 is absent from the first chunk, which sets
    # the provisional shifts), several chunks, several gathered pieces per class block, the
    # block-triangle Gram (d > 64) and the class-group path
    import torch

    from screening.screens import spectral

    rng = np.random.default_rng(3)
    d, sizes = 150, [1500, 400, 37, 2, 1]
    y = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(y)
    R = (offset + rng.normal(size=(len(y), d)) * np.linspace(0.5, 2.0, d)
         + rng.normal(size=(len(sizes), d))[y]).astype(np.float32)
    monkeypatch.setattr(spectral, "_PIECE_FLOATS", 64 * (d + 1))  # pieces of 64 rows
    monkeypatch.setattr(spectral, "_ACC_BYTES", 2 * 4 * (d + 1) ** 2)  # two classes at a time
    counts, means, covs, _ = spectral._centred_class_moments(R, y, len(sizes), torch.device("cpu"), 700)
    for c, size in enumerate(sizes):
        X = R[y == c].astype(np.float64)
        mean = X.mean(0)
        cov = (X - mean).T @ (X - mean) / len(X)
        assert counts[c] == size
        np.testing.assert_allclose(means[c].numpy(), mean, rtol=0, atol=1e-5)
        np.testing.assert_allclose(covs[c].numpy(), cov, rtol=0, atol=2e-5)
        assert torch.equal(covs[c], covs[c].T)


def test_centred_class_moments_of_data_sorted_by_label():
    """Rows sorted by label, class means far apart and far from the first chunk's: every
    class after the first is shifted by its own first row, so its float32 sums keep the
    precision of the shuffled case."""
    import torch

    from screening.screens import spectral

    rng = np.random.default_rng(4)
    d, sizes = 40, [3000, 2000, 2500]
    y = np.repeat(np.arange(len(sizes)), sizes)
    centres = np.array([0.0, 300.0, -500.0])[:, None] + rng.normal(size=(len(sizes), d))
    R = (centres[y] + rng.normal(size=(len(y), d))).astype(np.float32)
    counts, means, covs, _ = spectral._centred_class_moments(R, y, len(sizes), torch.device("cpu"), 1000)
    for c in range(len(sizes)):
        X = R[y == c].astype(np.float64)
        cov = (X - X.mean(0)).T @ (X - X.mean(0)) / len(X)
        np.testing.assert_allclose(means[c].numpy(), X.mean(0), rtol=0, atol=1e-4)
        np.testing.assert_allclose(covs[c].numpy(), cov, rtol=0, atol=1e-4)


def test_label_noise_matches_cleanlab_directly():
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=300)
    labels = probs.argmax(1)
    labels[:30] = (labels[:30] + 1) % 4
    np.testing.assert_allclose(label_noise_scores(labels, probs), 1 - get_label_quality_scores(labels, probs))
    np.testing.assert_array_equal(label_noise_flags(labels, probs), find_label_issues(labels, probs, n_jobs=1))
    assert label_noise_flags(labels, probs)[:30].mean() > label_noise_flags(labels, probs)[30:].mean()


def test_label_noise_flags_leave_no_copy_of_the_pred_probs_behind():
    """cleanlab keeps a per-class copy of pred_probs in a module global after
    find_label_issues(n_jobs=1); the screen drops it (it would hold N x K floats)."""
    import cleanlab.filter as cleanlab_filter

    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(3), size=200)
    labels = rng.integers(0, 3, 200)
    cleanlab_filter.find_label_issues(labels, probs, n_jobs=1)  # cleanlab 2.9 leaves the copy here
    assert isinstance(getattr(cleanlab_filter, "pred_probs_by_class", None), dict)
    label_noise_flags(labels, probs)
    assert getattr(cleanlab_filter, "pred_probs_by_class", None) is None
    assert getattr(cleanlab_filter, "prune_count_matrix_cols", None) is None


def test_influence_factored_equals_explicit_gradients():
    rng = np.random.default_rng(3)
    C, N, M, K, D = 3, 50, 20, 4, 6
    e, h = rng.normal(size=(C, N, K)), rng.normal(size=(C, N, D))
    re, rh = rng.normal(size=(C, M, K)), rng.normal(size=(C, M, D))
    lrs = np.array([0.3, 0.2, 0.1])
    g = np.einsum("cnk,cnd->cnkd", e, h).reshape(C, N, -1)
    rg = np.einsum("cmk,cmd->cmkd", re, rh).reshape(C, M, -1)
    expected = -np.einsum("c,cnp,cp->n", lrs, g, rg.mean(1))
    got = influence_scores(e, h, lrs=lrs, reference_err=re, reference_rep=rh, device="cpu", batch_size=7)
    np.testing.assert_allclose(got, expected, rtol=1e-8)
    self_inf = influence_scores(e, h, lrs=lrs, device="cpu")
    np.testing.assert_allclose(self_inf, np.einsum("c,cnp->n", lrs, g ** 2), rtol=1e-8)


def test_self_influence_of_the_data_trained_probe_ranks_flipped_rows_high():
    import torch
    from screen_helpers import blobs
    from sklearn.metrics import roc_auc_score

    from screening import ScreenConfig
    from screening.probe import data_trained_probe

    X, y = blobs(n_per_class=80, n_classes=3, seed=4)
    rng = np.random.default_rng(0)
    flip = rng.choice(len(y), 24, replace=False)
    yn = y.copy()
    yn[flip] = (y[flip] + 1) % 3
    cfg = ScreenConfig(target_steps=200, hidden=32, rep_dim=16, n_checkpoints=4)
    probe = data_trained_probe(X.astype(np.float32), yn, kind="tabular", n_classes=3, config=cfg,
                               device=torch.device("cpu"))
    s = probe.self_influence
    assert probe.n_checkpoints == len(probe.snapshot_fractions) and probe.representations.shape == (len(y), cfg.rep_dim)
    assert probe.snapshot_fractions[-1] == 1.0 and np.all(np.diff(probe.snapshot_fractions) > 0)
    truth = np.zeros(len(y), bool)
    truth[flip] = True
    assert roc_auc_score(truth, s) > 0.95


def test_top_fraction_per_class_counts():
    s = np.arange(20, dtype=float)
    y = np.repeat([0, 1], 10)
    f = top_fraction_per_class(s, y, 0.15)
    assert f.sum() == 4 and f[[8, 9, 18, 19]].all()


def test_conformal_verdict_flags_alpha_of_exchangeable_clean_rows_and_catches_outliers():
    from screening.verdict import calibrated_level, conformal_lower_pvalues

    rng = np.random.default_rng(0)
    rates = []
    for _ in range(200):
        ref = rng.standard_t(3, size=300)  # heavy-tailed clean margins
        data = rng.standard_t(3, size=1000)
        data[:30] -= 40.0  # 30 implausibly labelled rows
        flagged = conformal_lower_pvalues(data, ref) <= calibrated_level(0.02, len(ref))
        assert flagged[:30].all()
        rates.append(flagged[30:].mean())
    assert calibrated_level(0.02, 300) == 0.02
    assert abs(np.mean(rates) - 0.02) < 0.004  # expected clean flag rate ~ alpha, not more
    # a tiny reference cannot certify a low rate: the level falls back to 1 / (M + 1)
    assert calibrated_level(0.01, 20) == 1 / 21


def _fold_models(rng, n=1000, m=300, n_folds=5, shift=1.5, span=2):
    """Margins of N clean data rows and M reference rows under F fold models that differ
    in strength (a per-model shift): model f scores every data row and reference fold f.
    Judges as the anchored probe lays them out: a row's own fold's model and every model
    whose admission span (the next ``span`` folds) does not reach the row's fold."""
    shifts = rng.normal(scale=shift, size=n_folds)
    rfolds = np.arange(m) % n_folds
    ref = rng.standard_t(3, size=m) + shifts[rfolds]
    z = rng.standard_t(3, size=n)
    model_margins = z[None, :] + shifts[:, None] + rng.normal(scale=0.3, size=(n_folds, n))
    own = np.arange(n) % n_folds
    ahead = (own[None, :] - np.arange(n_folds)[:, None]) % n_folds
    judges = (ahead == 0) | (ahead > span)
    return model_margins, judges, ref, rfolds, own


def test_cross_conformal_pvalues_keep_the_clean_flag_rate_with_unequal_fold_models():
    from screening.verdict import cross_conformal_pvalues

    rng = np.random.default_rng(0)
    rates = []
    for _ in range(200):
        mm, judges, ref, rfolds, own = _fold_models(rng)
        p = cross_conformal_pvalues(mm, judges, ref, rfolds)
        assert p.min() > 0 and p.max() <= 1
        rates.append((p <= 0.02).mean())
    assert 0.01 < np.mean(rates) < 0.024  # about alpha, never above it by more than noise
    # rows the probe rejects outright are caught whatever fold model scores them
    mm, judges, ref, rfolds, own = _fold_models(rng)
    mm[:, :25] -= 40.0
    assert (cross_conformal_pvalues(mm, judges, ref, rfolds)[:25] <= 0.02).all()


def test_judges_chosen_by_the_rows_own_scores_would_over_flag_clean_rows():
    # why the judges are fixed by the fold layout: judging a row by the models that did
    # not admit it (their previous-round margin was low) selects the models that doubt it.
    # Clean rows, fold models that disagree a lot (model noise twice the rows' spread).
    from screening.verdict import cross_conformal_pvalues

    rng = np.random.default_rng(3)
    fixed, chosen = [], []
    for _ in range(60):
        _, judges, _, rfolds, own = _fold_models(rng, shift=0.0)
        z = rng.standard_t(3, size=len(own))
        mm = z[None, :] + rng.normal(scale=2.0, size=(5, len(own)))
        ref = rng.standard_t(3, size=len(rfolds)) + rng.normal(scale=2.0, size=len(rfolds))
        prev = mm + rng.normal(scale=0.3, size=mm.shape)  # the previous round, correlated
        not_admitted = (prev <= np.quantile(ref, 0.25)) | (own[None, :] == np.arange(5)[:, None])
        fixed.append((cross_conformal_pvalues(mm, judges, ref, rfolds) <= 0.05).mean())
        chosen.append((cross_conformal_pvalues(mm, not_admitted, ref, rfolds) <= 0.05).mean())
    assert np.mean(fixed) <= 0.05
    assert np.mean(chosen) > 1.5 * np.mean(fixed)


def test_cross_conformal_pvalues_use_only_the_rows_judges():
    from screening.verdict import cross_conformal_pvalues, judged_reference_rows

    ref = np.array([0.0, 1.0, 2.0, 3.0])
    rfolds = np.array([0, 0, 1, 1])
    mm = np.array([[0.5, 10.0], [-5.0, 10.0]])  # row 0 looks bad only under model 1
    judges = np.array([[True, True], [False, True]])  # ...which could have trained on it
    p = cross_conformal_pvalues(mm, judges, ref, rfolds)
    assert p[0] == pytest.approx((1 + 1) / (1 + 2))  # model 0 only: one reference row <= 0.5
    assert p[1] == pytest.approx((1 + 2 + 2) / (1 + 4))
    assert judged_reference_rows(judges, rfolds) == 2


def test_row_chunks_give_the_whole_array_results(monkeypatch):
    """The row-wise steps of part 1 run in chunks of ``CHUNK_ROWS`` rows (so their
    temporaries stay bounded at 100M rows): with chunks of 7 rows they equal, bit for bit,
    the whole-array formulas they replace; and the reference-calibrated verdict is the
    same with one-byte labels (the sharded screen's) as with int64 labels."""
    from screening import ScreenConfig
    from screening.probe import AnchoredProbe
    from screening.verdict import conformal, decide, rules

    rng = np.random.default_rng(7)
    mm, judges, ref, rfolds, own = _fold_models(rng, n=500)
    mm = mm.astype(np.float32)
    offset = rng.normal(size=500).astype(np.float32)
    initial = rng.standard_t(3, size=500)
    mm[:, :20] -= 8.0  # some rows the probe rejects, so every part has work
    whole = {"cross": conformal.cross_conformal_pvalues(mm, judges, ref, rfolds),
             "contrast": conformal.cross_conformal_pvalues(mm, judges, ref, rfolds, row_offset=offset),
             "lower": conformal.conformal_lower_pvalues(initial, ref, row_offset=offset),
             "judged": conformal.judged_reference_rows(judges, rfolds)}
    # the formulas before chunking
    num, den = np.ones(500), np.ones(500)
    for f in range(5):
        r = np.sort(ref[rfolds == f])
        num[judges[f]] += np.searchsorted(r, mm[f, judges[f]].astype(np.float64) - offset[judges[f]], side="right")
        den[judges[f]] += len(r)
    np.testing.assert_array_equal(whole["contrast"], num / den)
    np.testing.assert_array_equal(whole["lower"], (1.0 + np.searchsorted(np.sort(ref), initial - offset,
                                                                          side="right")) / (len(ref) + 1.0))
    per_fold = np.bincount(rfolds, minlength=5)
    assert whole["judged"] == int((judges * per_fold[:, None]).sum(axis=0).min())

    labels = own % 3
    ref_labels = rfolds % 3
    probs = rng.dirichlet(np.ones(3), size=len(ref)).astype(np.float32)

    def verdict(y):
        anchored = AnchoredProbe(pred_probs=np.zeros((500, 3), np.float32), reference_pred_probs=probs,
                                 initial_margins=initial, initial_reference_margins=rng_ref.copy(),
                                 kept_per_round=[0], model_margins=mm, admitted=np.zeros((5, 500), bool),
                                 reference_folds=rfolds, eligible=~judges)
        v = decide(ScreenConfig(), labels=y, anchored=anchored, ref_labels=ref_labels,
                   cv_margins=offset, cv_reference_margins=ref)
        return v.flagged, v.p_values, v.summary([0, 1, 2])

    rng_ref = rng.normal(size=len(ref))
    before = verdict(labels.astype(np.int64))
    monkeypatch.setattr(conformal, "CHUNK_ROWS", 7)
    monkeypatch.setattr(rules, "CHUNK_ROWS", 7)
    chunked = {"cross": conformal.cross_conformal_pvalues(mm, judges, ref, rfolds),
               "contrast": conformal.cross_conformal_pvalues(mm, judges, ref, rfolds, row_offset=offset),
               "lower": conformal.conformal_lower_pvalues(initial, ref, row_offset=offset),
               "judged": conformal.judged_reference_rows(judges, rfolds)}
    for key in whole:
        np.testing.assert_array_equal(chunked[key], whole[key], err_msg=key)
    after = verdict(labels.astype(np.int8))
    assert before[0].sum() >= 10  # the verdict flags rows here, so the comparison has content
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2] == before[2]


def test_class_excess_fires_on_a_concentrated_attack_and_rarely_on_clean_rows():
    from screening import ScreenConfig
    from screening.verdict import class_excess

    levels = ScreenConfig().verdict.excess_levels
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(5), 200)
    ref_labels = np.repeat(np.arange(5), 60)
    fired_clean = 0
    for _ in range(100):
        p = rng.random(len(labels))  # clean: uniform p-values...
        ref_p = rng.random(len(ref_labels))  # ...like the reference's own
        flagged, fired = class_excess(p, ref_p, labels, ref_labels, fdr=0.2, delta=0.05, levels=levels)
        fired_clean += bool(fired)
    assert fired_clean <= 10  # family-wise level 0.05 (a little slack for 100 draws)
    p = rng.random(len(labels))
    ref_p = rng.random(len(ref_labels))
    attacked = np.flatnonzero(labels == 3)[:60]
    p[attacked] = rng.uniform(0.012, 0.018, size=60)  # doubted, yet above a 1 % row-level cut
    flagged, fired = class_excess(p, ref_p, labels, ref_labels, fdr=0.2, delta=0.05, levels=levels)
    assert [d["class"] for d in fired] == [3]
    assert flagged[attacked].all() and not flagged[labels != 3].any()


def test_detectable_attack_is_the_smallest_attack_the_class_excess_can_flag():
    """The power statement matches the test it describes: an attack whose every row lies
    below every trusted row of its class is flagged by ``class_excess`` from exactly
    ``detectable_attack`` rows on, never with one row fewer; and it equals a direct scan
    of scipy's Beta-Binomial tail."""
    from scipy.stats import betabinom

    from screening import ScreenConfig
    from screening.verdict import class_excess, detectable_attack

    cfg = ScreenConfig()
    levels = cfg.verdict.excess_levels
    rng = np.random.default_rng(3)
    for n_c, m_c in [(139, 24), (231, 40), (400, 100)]:
        labels = np.r_[np.zeros(n_c, int), np.ones(300, int)]
        ref_labels = np.r_[np.zeros(m_c, int), np.ones(80, int)]
        n_tests = 2 * len(levels)
        k = detectable_attack(n_c, m_c, n_tests=n_tests, delta=0.05, fdr=cfg.verdict.excess_fdr)
        counts = np.arange(1, n_c + 1)
        ok = ((betabinom.sf(counts - 1, n_c, 1, m_c) * n_tests <= 0.05)
              & ((n_c - counts) / m_c <= cfg.verdict.excess_fdr * counts))
        assert k == counts[ok][0]
        ref_p = np.r_[rng.uniform(0.3, 1, m_c), rng.uniform(0, 1, 80)]  # class 0's trusted rows are easy
        for size, fires in [(k, True), (k - 1, False)]:
            p = np.r_[rng.uniform(0.3, 1, n_c), rng.uniform(0.3, 1, 300)]
            p[:size] = 0.005  # below every trusted row of the class, at every level
            _, fired = class_excess(p, ref_p, labels, ref_labels, fdr=cfg.verdict.excess_fdr, delta=0.05, levels=levels)
            assert ([d["class"] for d in fired] == [0]) is fires, (n_c, m_c, size)
    assert detectable_attack(100, 0, n_tests=10, delta=0.05, fdr=0.2) is None  # nothing trusted
    assert detectable_attack(300, 1, n_tests=50, delta=0.05, fdr=0.2) is None  # no size is enough
    # 10M rows: the closed-form tail agrees with scipy's at the answer and one row below it
    k = detectable_attack(10_000_000, 2000, n_tests=50, delta=0.05, fdr=0.2)
    assert betabinom.sf(k - 1, 10_000_000, 1, 2000) * 50 <= 0.05 < betabinom.sf(k - 2, 10_000_000, 1, 2000) * 50


def test_power_statement_names_the_least_covered_class():
    from dataward.reports.verdict_text import power_statement

    power = [{"class": "cat", "rows": 400, "reference_rows": 90, "min_attack_rows": 40},
             {"class": "dog", "rows": 100, "reference_rows": 20, "min_attack_rows": 30},  # 30 % of its rows
             {"class": "eel", "rows": 0, "reference_rows": 5, "min_attack_rows": None}]  # no rows: skipped
    line = power_statement(power)
    assert "class dog below 30 of its 100 rows (30%; 20 trusted rows" in line
    power.append({"class": "fox", "rows": 50, "reference_rows": 1, "min_attack_rows": None})
    assert power_statement(power).startswith("class fox: the class-excess test cannot flag")
    assert power_statement([]) is None and power_statement(power[2:3]) is None


def test_anchored_probe_never_trains_a_model_on_its_own_fold_or_on_reference_twins():
    import torch
    from screen_helpers import blobs

    from screening import ScreenConfig
    from screening.probe import anchored_probe, stratified_folds

    X, y = blobs(n_per_class=60, n_classes=3, seed=5)
    Xr, yr = blobs(n_per_class=20, n_classes=3, seed=5, noise_seed=9)
    X[:3] = Xr[:3]  # three data rows duplicate reference rows
    y[:3] = yr[:3]
    cfg = ScreenConfig(n_folds=3, target_steps=100, hidden=16, rep_dim=8, self_training_rounds=2)
    X_all = np.concatenate([X, Xr]).astype(np.float32)
    a = anchored_probe(X_all, np.concatenate([y, yr]), len(y), kind="tabular", n_classes=3, config=cfg,
                       device=torch.device("cpu"))
    folds = stratified_folds(y, 3, cfg.seed + 1)
    assert a.model_margins.shape == a.admitted.shape == a.eligible.shape == (3, len(y))
    assert not (a.admitted & ~a.eligible).any()  # admissions only where the layout allows
    for f in range(3):
        assert not a.eligible[f, folds == f].any()
        # model f may admit from exactly the next fold (span 1 with 3 folds)
        assert a.eligible[f, folds == (f + 1) % 3].all() and not a.eligible[f, folds == (f + 2) % 3].any()
    assert ((~a.eligible).sum(axis=0) == 2).all()  # every row has two judges
    assert not a.admitted[:, :3].any() and a.n_reference_duplicates == 3
    assert a.admitted.any()  # self-training did admit rows
    np.testing.assert_array_equal(a.reference_folds, stratified_folds(yr, 3, cfg.seed + 2))


def test_self_training_never_admits_rows_the_data_trained_probe_is_far_surer_of():
    """Rows whose round-0 margin falls furthest below the cross-validated probe's (what a
    learned trigger looks like) are kept out of self-training; the judges' layout stays."""
    import torch
    from screen_helpers import blobs

    from screening import ScreenConfig
    from screening.probe import anchored_probe

    X, y = blobs(n_per_class=60, n_classes=3, seed=5)
    Xr, yr = blobs(n_per_class=20, n_classes=3, seed=5, noise_seed=9)
    X_all = np.concatenate([X, Xr]).astype(np.float32)
    y_all = np.concatenate([y, yr])
    cfg = ScreenConfig(n_folds=3, target_steps=100, hidden=16, rep_dim=8, self_training_rounds=2)
    kw = dict(kind="tabular", n_classes=3, config=cfg, device=torch.device("cpu"))
    plain = anchored_probe(X_all, y_all, len(y), **kw)
    sure = np.zeros(len(y))
    planted = np.arange(0, len(y), 15)  # 12 rows (under 10 % of any fold) the data-trained probe is far surer of
    sure[planted] = 1e3
    gated = anchored_probe(X_all, y_all, len(y), cv_margins=sure, **kw)
    assert plain.admitted[:, planted].any()  # clean, easy rows: admitted without the gate
    assert not gated.admitted[:, planted].any()
    np.testing.assert_array_equal(gated.eligible, plain.eligible)
    assert gated.admitted.sum() >= 0.8 * plain.admitted.sum()  # the gate takes about 10 %
    off = anchored_probe(X_all, y_all, len(y), cv_margins=sure,
                         **{**kw, "config": dataclasses.replace(cfg, admit_contrast_quantile=0.0)})
    np.testing.assert_array_equal(off.admitted, plain.admitted)


def test_confident_level_keeps_one_tables_clean_rate_below_alpha_with_that_probability():
    from screening.verdict import calibrated_level, clean_rate_upper_bound

    rng = np.random.default_rng(3)
    m, alpha = 400, 0.02
    level = calibrated_level(alpha, m, confidence=0.9)
    assert 1 / (m + 1) <= level < alpha
    assert clean_rate_upper_bound(level, m, 0.9) <= alpha < clean_rate_upper_bound(alpha, m, 0.9)
    over = 0
    for _ in range(400):  # one reference draw per table; its rate on a large clean table
        ref = np.sort(rng.standard_normal(m))
        cut = ref[int(round(level * (m + 1))) - 1]
        rate = (rng.standard_normal(20000) < cut).mean()
        over += rate > alpha
    assert over / 400 <= 0.1 + 0.05
    assert calibrated_level(alpha, 30, confidence=0.9) == 1 / 31  # too small to certify: the floor


def test_admit_span_leaves_most_models_as_judges_and_more_for_a_small_reference():
    from screening import ScreenConfig
    from screening.probe import admit_span

    assert admit_span(ScreenConfig(), 300) == 2  # 5 folds: 3 judges per row
    assert admit_span(ScreenConfig(n_folds=10), 1000) == 4
    # 40 reference rows: 3 judges see 24 of them, too few for p <= 0.02; 4 judges see 32
    assert admit_span(ScreenConfig(), 40) == 1
    assert admit_span(ScreenConfig(admit_folds=4), 40) == 4
    with pytest.raises(ValueError, match="admit_folds"):
        admit_span(ScreenConfig(admit_folds=5), 300)


def _probs_with_margins(labels, margins, n_classes):
    """(n, K) probabilities whose label margin (``label_margin``) is exactly ``margins``."""
    logits = np.full((len(labels), n_classes), -30.0)
    rows = np.arange(len(labels))
    logits[rows, labels] = margins
    logits[rows, (labels + 1) % n_classes] = 0.0
    p = np.exp(logits - logits.max(1, keepdims=True))
    return (p / p.sum(1, keepdims=True)).astype(np.float64)


def _verdict_case(rng, n_poison, leaked=False, n_per_class=200, m_per_class=60, k=5, n_folds=5):
    """Margins of a table as the probes would give them: each row has a difficulty z; the
    anchored judges and the cross-validated probe both see it (plus their own noise).
    Poisoned rows of class 3 sit among the clean rows for the anchored probe (margins of
    the clean rows' 20-60 % quantiles) while the cross-validated probe, which learned the
    trigger, is sure of their label. ``leaked``: self-training learned the trigger too,
    so the last round is as sure as the cross-validated probe and only round 0 (the
    reference alone) still doubts the poison."""
    from screening.probe import AnchoredProbe

    labels = np.repeat(np.arange(k), n_per_class)
    ref_labels = np.repeat(np.arange(k), m_per_class)
    n, m = len(labels), len(ref_labels)
    z, zr = rng.normal(size=n), rng.normal(size=m)
    poison = np.flatnonzero(labels == 3)[:n_poison]
    z[poison] = rng.uniform(-0.8, 0.25, size=n_poison)
    model_margins = 2.0 + 1.5 * z[None, :] + 0.3 * rng.normal(size=(n_folds, n))
    ref_margins = 2.0 + 1.5 * zr + 0.3 * rng.normal(size=m)
    initial = model_margins[0] - 0.5 + 0.3 * rng.normal(size=n)  # round 0: a weaker probe
    initial_ref = ref_margins - 0.5 + 0.3 * rng.normal(size=m)
    cv_margins = 2.5 + 1.5 * z + 0.3 * rng.normal(size=n)
    cv_margins[poison] = rng.uniform(6.0, 8.0, size=n_poison)
    if leaked:
        model_margins[:, poison] = cv_margins[poison] + 0.3 * rng.normal(size=(n_folds, n_poison))
    cv_ref_margins = 2.5 + 1.5 * zr + 0.3 * rng.normal(size=m)
    folds = np.arange(n) % n_folds
    eligible = np.stack([np.isin((folds - f) % n_folds, (1, 2)) for f in range(n_folds)])
    anchored = AnchoredProbe(
        pred_probs=_probs_with_margins(labels, model_margins[0], k),
        reference_pred_probs=_probs_with_margins(ref_labels, ref_margins, k),
        initial_margins=initial, initial_reference_margins=initial_ref,
        kept_per_round=[0], model_margins=model_margins.astype(np.float32), admitted=np.zeros_like(eligible),
        reference_folds=np.arange(m) % n_folds, eligible=eligible)
    return labels, ref_labels, anchored, cv_margins, cv_ref_margins, poison


@pytest.mark.parametrize("leaked, statistic", [(False, "trigger contrast"),
                                               (True, "trigger contrast, reference-only probe")])
def test_trigger_contrast_finds_a_backdoor_the_label_margin_cannot_and_spares_clean_tables(leaked, statistic):
    from screening import ScreenConfig
    from screening.verdict import decide

    cfg = ScreenConfig()
    rng = np.random.default_rng(7)
    labels, ref_labels, anchored, cvm, cvrm, poison = _verdict_case(rng, n_poison=40, leaked=leaked)
    kw = dict(labels=labels, anchored=anchored, ref_labels=ref_labels)
    v = decide(cfg, **kw)
    flagged, rule = v.flagged, v.details  # the label margin alone: the poison hides among clean rows
    assert not rule.trigger_contrast and rule.class_excess == []
    assert flagged[poison].mean() < 0.2
    v = decide(cfg, **kw, cv_margins=cvm, cv_reference_margins=cvrm)
    flagged, rule = v.flagged, v.details
    assert rule.trigger_contrast
    assert {d["class"] for d in rule.class_excess} == {3}
    assert statistic in {d["statistic"] for d in rule.class_excess}
    assert "label margin" not in {d["statistic"] for d in rule.class_excess}
    assert flagged[poison].all()
    clean = np.ones(len(labels), bool)
    clean[poison] = False
    assert flagged[clean].mean() <= 0.05  # alpha 2 % plus the excess's false-discovery share
    from dataward.reports.verdict_text import rule_text

    assert "trigger contrast" in rule_text(v.summary())
    # the power statement: per class, at the label margin's share of the family-wise level
    from screening.verdict import detectable_attack

    need = detectable_attack(200, 60, n_tests=5 * len(cfg.verdict.excess_levels), delta=cfg.verdict.excess_delta / 2,
                             fdr=cfg.verdict.excess_fdr)
    assert rule.detectable_attack == [{"class": c, "rows": 200, "reference_rows": 60, "min_attack_rows": need}
                                         for c in range(5)]
    # on clean tables the contrasts fire rarely (family-wise 0.05 for the two together)
    fired = 0
    for _ in range(40):
        labels, ref_labels, anchored, cvm, cvrm, _ = _verdict_case(rng, n_poison=0)
        rule = decide(cfg, labels=labels, anchored=anchored, ref_labels=ref_labels, cv_margins=cvm,
                      cv_reference_margins=cvrm).details
        fired += any(d["statistic"].startswith("trigger contrast") for d in rule.class_excess)
    assert fired <= 5


def test_cross_conformal_row_offset_equals_ranking_the_offset_scores():
    from screening.verdict import cross_conformal_pvalues

    rng = np.random.default_rng(3)
    mm = rng.normal(size=(4, 300)).astype(np.float32)
    judges = rng.random((4, 300)) < 0.6
    ref, rf = rng.normal(size=80), np.arange(80) % 4
    off = rng.normal(size=300)
    expect = cross_conformal_pvalues(mm.astype(np.float64) - off[None, :], judges, ref, rf)
    np.testing.assert_allclose(cross_conformal_pvalues(mm, judges, ref, rf, row_offset=off), expect)


def _expansion_class(rng, n_clean=300, n_poison=40, n_ref=150, d=12):
    """One class: clean rows, poisoned rows carrying a three-feature trigger, trusted rows."""
    X = rng.standard_normal((n_clean + n_poison, d)).astype(np.float32)
    X[n_clean:, :3] = [3.0, -3.0, 3.0]  # the trigger (values a clean row rarely has at once)
    R = rng.standard_normal((n_ref, d)).astype(np.float32)
    truth = np.zeros(len(X), bool)
    truth[n_clean:] = True
    return X, R, truth


def test_trigger_expansion_finds_the_rows_that_share_the_flagged_rows_trigger():
    from screening.verdict import trigger_expansion

    rng = np.random.default_rng(0)
    X, R, truth = _expansion_class(rng)
    labels, ref_labels = np.zeros(len(X), int), np.zeros(len(R), int)
    flagged = np.zeros(len(X), bool)
    poison = np.flatnonzero(truth)
    flagged[poison[:30]] = True  # what the class excess caught; 10 poisoned rows left
    flagged[:4] = True  # and a few hard clean rows
    extra, info = trigger_expansion(X, labels, R, ref_labels, flagged, [0], level=0.02, seed=0)
    assert not (extra & flagged).any()
    assert extra[poison[30:]].sum() >= 9
    clean_cand = ~truth & ~flagged
    assert extra[clean_cand].mean() <= 0.05
    assert info == [{"class": 0, "positives": 34, "reference_rows": 150, "flagged": int(extra.sum())}]
    # classes where the excess did not fire are never touched
    extra2, info2 = trigger_expansion(X, labels, R, ref_labels, flagged, [], level=0.02)
    assert not extra2.any() and info2 == []


def test_trigger_expansion_flags_about_level_of_clean_rows_when_the_flags_share_nothing():
    """Flagged rows with nothing in common (label noise, hard rows): a clean row is
    exchangeable with the trusted rows, so it is flagged with probability about the level."""
    from screening.verdict import trigger_expansion

    rates = []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        X, R, truth = _expansion_class(rng, n_poison=0)
        flagged = np.zeros(len(X), bool)
        flagged[rng.choice(len(X), 30, replace=False)] = True
        extra, _ = trigger_expansion(X, np.zeros(len(X), int), R, np.zeros(len(R), int), flagged, [0],
                                     level=0.02, seed=seed)
        rates.append(extra[~flagged].mean())
    assert np.mean(rates) <= 0.03
    # too few trusted rows for a p-value as low as the level: nothing is tried
    X, R, _ = _expansion_class(np.random.default_rng(1), n_ref=30)
    extra, info = trigger_expansion(X, np.zeros(len(X), int), R, np.zeros(len(R), int),
                                    np.arange(len(X)) >= 300, [0], level=0.02)
    assert not extra.any() and len(info) == 1 and "cannot give a p-value" in info[0]["skipped"]
