"""Wide numeric tables (issue 25): a 784-column pixel table lost every flag when wide
tables began to be projected by PCA and each component was standardised on its own
(whitening). These tests fail on that code: the probe must read a few thousand rows of
784 pixels raw, keep the components' relative scales where it does project, and the
verdict must remove a patch backdoor planted in such a table.

The pixel tables come from benchmarks/matrix.py: scikit-learn's digits drawn at 28 x 28
(a tuning data set) and, for the probe's accuracy only, ten letters drawn with the font
that ships inside Pillow (held out from choosing methods; here it only checks that a
projection keeps the probe as accurate as the raw columns).
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from screening import ScreenConfig, screen_table
from screening.inputs import prepare_input, projection_width
from screening.probe import Normaliser, cross_validated_probe

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import matrix as M  # noqa: E402


def test_projection_width_reads_ordinary_wide_tables_raw():
    cfg = ScreenConfig()
    assert projection_width(3_500, 784, cfg) == 784
    assert projection_width(1_000_000, 784, cfg) == 268  # 1 GiB of float32 input at most
    assert projection_width(1_000, 100_000, cfg) == cfg.max_features
    assert projection_width(100_000_000, 64, cfg) == 64  # never below 64 components


def test_isotropic_normaliser_keeps_relative_scales():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3)) * np.array([10.0, 1.0, 0.1]) + 5
    iso = Normaliser.fit(X.astype(np.float32), "tabular", isotropic=True)
    Z = iso(X.astype(np.float32))
    assert np.allclose(Z.mean(0), 0, atol=1e-4)
    sd = Z.std(0)
    assert sd[0] / sd[1] == pytest.approx(10, rel=0.15) and sd[1] / sd[2] == pytest.approx(10, rel=0.15)
    assert np.mean(sd ** 2) == pytest.approx(1, rel=1e-3)


@pytest.fixture(scope="module")
def letters():
    X, y = M._letters(n_per_class=200)
    return X, y


def _frame(X, y):
    return M._pixels_arrow(X, y)


def _probe_accuracy(X, y, config):
    prep = prepare_input(_frame(X, y), label_col="label", config=config)
    norm = Normaliser.fit(prep.X, prep.kind, isotropic=prep.projection is not None)
    cv = cross_validated_probe(norm(prep.X), prep.y, X_ref=None, kind=prep.kind, n_classes=len(prep.classes),
                               config=config, device="cpu")
    return float((cv.pred_probs.argmax(1) == prep.y).mean()), prep.projection


def test_projection_keeps_the_probe_accurate(letters):
    X, y = letters
    cfg = ScreenConfig(threads=1, seed=0)
    raw_acc, proj = _probe_accuracy(X, y, cfg)
    assert proj is None  # 2,000 x 784 is read raw
    small = ScreenConfig(threads=1, seed=0, max_probe_input_mb=1)  # forces a projection
    proj_acc, proj = _probe_accuracy(X, y, small)
    assert proj is not None and proj["to_features"] < 784
    assert proj_acc >= raw_acc - 0.08, (proj_acc, raw_acc)


def test_patch_backdoor_in_a_784_column_pixel_table_is_flagged():
    """scikit-learn's digits drawn at 28 x 28 (784 pixel columns, the border constant or
    nearly so), a 3 % patch backdoor, a 270-row trusted reference: the projected probe
    flagged 0.75 of the planted rows and left 8 % attack success; read raw, all of them."""
    case = M.build_case(M.load_source("digits28", 0), "trigger-3%", 0)["given"]
    res = screen_table(case.train, label_col="label", reference=case.reference,
                       config=ScreenConfig(threads=1, seed=0))
    flagged = res.scores["flagged"].to_numpy()
    assert res.summary["projection"] is None
    assert flagged[case.truth].mean() >= 0.9, f"recall {flagged[case.truth].mean():.2f}"
    assert flagged[~case.truth].mean() <= 0.02
