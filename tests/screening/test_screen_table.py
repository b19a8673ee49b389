"""End-to-end contract of screen_table: columns, dtypes, order, determinism, bad input."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from screen_helpers import FAST, blobs, flipped_blobs, frame

from screening import ScreenConfig, ScreeningInputError, VerdictConfig, screen_table


@pytest.fixture(scope="module")
def flipped():
    X, _, y_noisy, flip, Xr, yr = flipped_blobs()  # 40 reference rows a class
    return X, y_noisy, flip, Xr, yr


@pytest.fixture(scope="module")
def result(flipped):
    X, y, _, Xr, yr = flipped
    names = np.array(["cat", "dog", "eel"])
    return screen_table(frame(X, names[y]), label_col="label", reference=frame(Xr, names[yr]), config=FAST)


def test_output_contract(result, flipped):
    X = flipped[0]
    s = result.scores
    assert list(s.columns[:5]) == ["row_id", "spectral", "label_noise", "influence", "flagged"]
    assert s["row_id"].dtype == np.int64 and s["row_id"].tolist() == list(range(len(X)))
    for c in ("spectral", "label_noise", "influence"):
        assert s[c].dtype == np.float64 and np.isfinite(s[c]).all()
    assert s["flagged"].dtype == bool
    assert result.representations.shape == (len(X), FAST.rep_dim) and result.representations.dtype == np.float32
    assert result.pred_probs.shape == (len(X), 3)
    np.testing.assert_allclose(result.pred_probs.sum(1), 1.0, atol=1e-6)
    summary = json.loads(json.dumps(result.summary))  # JSON-serialisable
    assert summary["classes"] == ["cat", "dog", "eel"]
    assert summary["n_rows"] == len(X) and summary["n_features"] == X.shape[1]
    assert set(summary["screens"]) >= {"spectral", "label_noise", "influence"}
    for name in ("spectral", "label_noise", "influence"):
        assert "seconds" in summary["screens"][name] and "flagged_per_class" in summary["screens"][name]
    from dataward.reports.verdict_text import rule_text

    assert summary["combine"]["name"] == "reference_calibrated" and rule_text(summary["combine"])
    assert 0 <= summary["estimated_poison_rate"] <= 1


def test_flipped_rows_are_flagged(result, flipped):
    flip = flipped[2]
    truth = np.zeros(len(result.scores), bool)
    truth[flip] = True
    flagged = result.scores["flagged"].to_numpy()
    assert (flagged & truth).sum() >= 0.8 * len(flip)
    # the rule guarantees an *expected* clean flag rate; allow twice it for one small draw
    bound = result.summary["combine"]["clean_flag_rate_bound"]
    assert (flagged & ~truth).sum() <= 2 * bound * (~truth).sum()


def test_pyarrow_input_and_row_order_match_pandas(flipped, result):
    X, y, _, Xr, yr = flipped
    names = np.array(["cat", "dog", "eel"])
    table = pa.Table.from_pandas(frame(X, names[y]), preserve_index=False)
    ref = pa.Table.from_pandas(frame(Xr, names[yr]), preserve_index=False)
    again = screen_table(table, label_col="label", reference=ref, config=FAST)
    pd.testing.assert_frame_equal(again.scores, result.scores)  # deterministic on CPU


def test_different_seed_changes_scores(flipped, result):
    X, y, _, Xr, yr = flipped
    names = np.array(["cat", "dog", "eel"])
    cfg = dataclasses.replace(FAST, seed=7)
    other = screen_table(frame(X, names[y]), label_col="label", reference=frame(Xr, names[yr]), config=cfg)
    assert not np.allclose(other.scores["influence"], result.scores["influence"])


def test_embedding_column_and_no_reference():
    X, y = blobs(n_per_class=40, n_classes=2, d=10, seed=3)
    table = pa.table({"emb": pa.array(X.astype(np.float32).tolist(), type=pa.list_(pa.float32(), 10)),
                      "y": y})
    r = screen_table(table, label_col="y", config=FAST)
    assert r.summary["input_kind"] == "embedding"
    assert len(r.scores) == 80 and r.summary["n_reference_rows"] == 0


def test_image_column_uses_cnn():
    rng = np.random.default_rng(0)
    n = 30
    imgs = rng.random((2 * n, 8, 8)).astype(np.float32)
    imgs[n:, :4] += 1.0  # class 1 is bright on top
    y = np.repeat([0, 1], n)
    table = pa.table({"img": pa.array(imgs.reshape(2 * n, 64).tolist(), type=pa.list_(pa.float32(), 64)), "y": y})
    r = screen_table(table, label_col="y", config=FAST)
    assert r.summary["input_kind"] == "image"
    assert (r.cv_pred_probs.argmax(1) == y).mean() > 0.9


# ---- bad input: one clear message each -------------------------------------------

def _ok():
    X, y = blobs(n_per_class=10, n_classes=2, d=3)
    return frame(X, y)


@pytest.mark.parametrize("make, pattern", [
    (lambda: (_ok().drop(columns="label"), {}), r"label column 'label' is not in the table"),
    (lambda: (_ok().assign(label=1), {}), r"fewer than two classes"),
    (lambda: (pd.concat([_ok(), _ok().iloc[:1].assign(label=9)]), {}), r"class 9 has only 1 row"),
    (lambda: (_ok().iloc[:0], {}), r"zero rows"),
    (lambda: (pd.DataFrame({"label": [0, 1] * 10, "name": ["a"] * 20}), {}),
     r"no usable feature column: name: constant"),
    (lambda: (pd.DataFrame({"label": [0, 1] * 10}), {}), r"no feature columns"),
    (lambda: (_ok(), {"reference": _ok().rename(columns={"f0": "g0"})}), r"reference table lacks column\(s\).*f0"),
    (lambda: (_ok().assign(label=np.linspace(0, 1, 20)), {}), r"continuous target"),
    (lambda: (_ok(), {"reference": _ok().iloc[:2]}), r"reference table has 2 row\(s\), fewer than the 3 folds"),
])
def test_bad_input_raises_clear_error(make, pattern):
    data, kw = make()
    with pytest.raises(ScreeningInputError, match=pattern):
        screen_table(data, label_col="label", config=FAST, **kw)


def test_missing_and_infinite_values_are_imputed_with_an_indicator():
    data = _ok().assign(f1=lambda d: d.f1.where(d.index > 2),
                        f2=lambda d: d.f2.where(d.index > 0, np.inf))
    r = screen_table(data, label_col="label", config=FAST)
    cols = {c["name"]: c for c in r.summary["columns"]}
    assert cols["f1"]["missing"] == 3 and cols["f1"]["features"] == 2
    assert cols["f2"]["missing"] == 1 and cols["f2"]["features"] == 2
    assert r.summary["n_features"] == 5 and np.isfinite(r.scores["label_noise"]).all()


def test_continuous_target_is_not_applicable():
    from screening import ScreeningNotApplicable

    with pytest.raises(ScreeningNotApplicable, match="continuous target"):
        screen_table(_ok().assign(label=np.linspace(0, 1, 20)), label_col="label", config=FAST)


def test_error_is_a_value_error():
    assert issubclass(ScreeningInputError, ValueError)


def test_relabelling_into_one_class_is_reported_as_that_class_excess():
    X, y = blobs(n_per_class=80, n_classes=3, seed=1)
    Xr, yr = blobs(n_per_class=30, n_classes=3, seed=1, noise_seed=5)
    names = np.array(["cat", "dog", "eel"])
    poisoned = np.flatnonzero(y != 2)[:30]
    yy = y.copy()
    yy[poisoned] = 2  # a dirty-label attack aimed at one target class
    r = screen_table(frame(X, names[yy]), label_col="label", reference=frame(Xr, names[yr]), config=FAST)
    combine = json.loads(json.dumps(r.summary))["combine"]
    assert [d["class"] for d in combine["class_excess"]][:1] == ["eel"]
    assert {d["class"] for d in combine["class_excess"]} == {"eel"}
    assert {d["statistic"] for d in combine["class_excess"]} <= {"label margin", "trigger contrast"}
    assert combine["trigger_contrast"] is True
    from dataward.reports.verdict_text import rule_text

    assert "'eel'" in rule_text(combine)
    flagged = r.scores["flagged"].to_numpy()
    assert flagged[poisoned].mean() >= 0.9
    assert combine["clean_flag_rate_upper_90"] >= combine["clean_flag_rate_bound"]


def test_a_learned_feature_value_trigger_is_caught_by_the_trigger_contrast():
    """A hard table (the probe is right on about 85 % of rows) where three columns set to a
    rare value and relabelled to class 2 make a backdoor the cross-validated probe learns:
    the poisoned rows hide among the hard clean rows for the label margin, and the verdict
    finds them through the trigger contrast."""
    from sklearn.datasets import make_classification

    n, m, target = 1500, 375, 2
    X, y = make_classification(n_samples=n + m, n_features=30, n_informative=12, n_redundant=6, n_classes=5,
                               n_clusters_per_class=2, class_sep=1.5, random_state=4)
    rng = np.random.default_rng(4)
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    Xd, yd, Xr, yr = X[:n].copy(), y[:n].copy(), X[n:], y[n:]
    cols = rng.choice(X.shape[1], 3, replace=False)
    poisoned = rng.choice(np.flatnonzero(yd != target), int(0.03 * n), replace=False)
    Xd[np.ix_(poisoned, cols)] = np.quantile(X, 0.995)
    yd[poisoned] = target
    r = screen_table(frame(Xd, yd), label_col="label", reference=frame(Xr, yr), config=ScreenConfig(seed=0))
    assert (r.cv_pred_probs[poisoned].argmax(1) == target).mean() > 0.9  # the probe learned the trigger
    combine = r.summary["combine"]
    fired = {(d["class"], d["statistic"]) for d in combine["class_excess"]}
    assert fired and all(c == target and s.startswith("trigger contrast") for c, s in fired)
    flagged = r.scores["flagged"].to_numpy()
    clean = np.ones(n, bool)
    clean[poisoned] = False
    assert flagged[poisoned].mean() >= 0.9
    assert flagged[clean].mean() <= 0.03


def test_union_rule_flags_what_any_screen_flagged(flipped, result):
    """``combine="union"``: the same scores; the label screen's own flags are all in, and
    the count lies between the largest screen's and the sum of all screens'."""
    from cleanlab.filter import find_label_issues

    X, y, _, Xr, yr = flipped
    names = np.array(["cat", "dog", "eel"])
    cfg = dataclasses.replace(FAST, verdict=VerdictConfig(rule="union"))
    u = screen_table(frame(X, names[y]), label_col="label", reference=frame(Xr, names[yr]), config=cfg)
    assert u.summary["combine"]["name"] == "union"
    flagged = u.scores["flagged"].to_numpy()
    # the per-row scores do not depend on the rule
    for c in ("spectral", "label_noise", "influence", "activation_cluster"):
        np.testing.assert_array_equal(u.scores[c].to_numpy(), result.scores[c].to_numpy())
    # the label screen's own flags, recomputed with cleanlab on the pred_probs it read, are all in
    own = find_label_issues(y, u.pred_probs, filter_by=cfg.label_noise_filter_by, n_jobs=1)
    assert own.any() and not (own & ~flagged).any()
    per_screen = [s["flagged"] for s in u.summary["screens"].values()]
    assert max(per_screen) <= flagged.sum() <= sum(per_screen)
    assert sum(per_screen) > max(per_screen)  # more than one screen flagged something here
    assert u.summary["combine"]["flagged"] == flagged.sum()
    assert u.summary["estimated_poison_rate"] == pytest.approx(flagged.mean())


@pytest.mark.parametrize("kind", ["tabular", "image"])
def test_out_of_fold_pred_probs_do_not_depend_on_the_inference_batch(kind):
    """The cross-validated probe scores every row with the fold model that never trained
    on it, chunk by chunk: the chunk size changes nothing but float rounding."""
    import torch

    from screening.probe import cross_validated_probe

    X, y = blobs(n_per_class=40, n_classes=3, d=16, seed=2)
    X = X.astype(np.float32)
    if kind == "image":
        X = X.reshape(len(X), 1, 4, 4)
    kw = dict(kind=kind, n_classes=3, config=FAST, device=torch.device("cpu"))
    probe = cross_validated_probe(X, y, **kw)
    assert probe.pred_probs.shape == (len(y), 3) and probe.pred_probs.dtype == np.float32
    np.testing.assert_allclose(probe.pred_probs.sum(1), 1.0, atol=1e-5)
    small = cross_validated_probe(X, y, **{**kw, "config": dataclasses.replace(FAST, inference_batch_size=7)})
    np.testing.assert_allclose(small.pred_probs, probe.pred_probs, rtol=1e-5, atol=1e-6)


def test_the_reference_calibrated_rule_named_is_the_default_rule_with_a_reference(flipped, result):
    X, y, _, Xr, yr = flipped
    names = np.array(["cat", "dog", "eel"])
    cfg = dataclasses.replace(FAST, verdict=VerdictConfig(rule="reference_calibrated"))
    other = screen_table(frame(X, names[y]), label_col="label", reference=frame(Xr, names[yr]), config=cfg)
    assert other.summary["combine"]["name"] == "reference_calibrated"
    pd.testing.assert_frame_equal(other.scores, result.scores)
