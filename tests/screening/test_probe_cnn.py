"""The CNN probe for image columns: its shape rules, its lock-step training and its
memory bound (correctness only; the speed is printed by benchmarks/bench_image_speed.py)."""

import numpy as np
import pyarrow as pa
import pytest
import torch
from screen_helpers import FAST

from screening import ScreenConfig, screen_table
from screening.probe import models as probe
from screening.probe.training import fit_modules


def test_small_images_keep_the_full_resolution_network():
    m = probe.CNN((1, 8, 8), 10, 16)
    assert m.pool == 1
    convs = [layer for layer in m.body if isinstance(layer, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 16, (3, 3), (1, 1)), (16, 32, (3, 3), (1, 1))]


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 30, 30), (3, 32, 32), (1, 28, 41), (3, 17, 64)])
def test_large_images_reach_the_second_convolution_on_a_small_grid_with_every_pixel(shape):
    torch.manual_seed(0)
    m = probe.CNN(shape, 10, 16)
    stem = m.body[:3]
    x = torch.rand(2, *shape, requires_grad=True)
    grid = stem(x).shape[-2:]
    assert max(grid) <= max(probe.CNN_GRID, int(np.ceil(max(shape[1:]) / m.pool)))
    assert min(grid) <= probe.CNN_GRID
    # no pixel is cut off (borders included, where patch triggers sit): each one moves the features
    m.features(x).abs().sum().backward()
    assert (x.grad.abs().sum(0) > 0).all()


def test_cnn_work_per_image_stops_growing_with_resolution():
    f28 = probe.cnn_step_flops((1, 28, 28))
    f8 = probe.cnn_step_flops((1, 8, 8))
    f_old_28 = 28 * 28 * (16 * 9 + 16 * 32 * 9)  # both convolutions at full resolution
    assert f28 < f_old_28 / 8
    assert f28 < 2 * f8


def test_inference_batches_are_bounded_by_image_size():
    cfg = ScreenConfig()
    assert probe.inference_rows("tabular", (784,), cfg) == cfg.inference_batch_size
    for side in (8, 28, 64, 224):
        rows = probe.inference_rows("image", (3, side, side), cfg)
        assert 1 <= rows <= cfg.inference_batch_size
        assert rows * 16 * side * side <= probe.CNN_INFERENCE_FLOATS


def test_lockstep_loop_trains_each_model_as_vmap_does():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 3, 90)
    sets = [np.arange(0, 60), np.arange(30, 90), np.arange(0, 90, 2)]
    cfg = ScreenConfig(target_steps=12, batch_size=16, rep_dim=8)

    def fit(vectorise):
        return fit_modules(lambda: probe.CNN((1, 12, 12), 3, 8), X, y, sets, n_classes=3, config=cfg,
                           seed=5, device=torch.device("cpu"), vectorise=vectorise)[0]

    looped, vmapped = fit(False), fit(True)
    moved = False
    for a, b in zip(looped, vmapped):
        for (name, pa_), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
            torch.testing.assert_close(pa_, pb, rtol=1e-4, atol=1e-5, msg=name)
    torch.manual_seed(5)
    fresh = probe.CNN((1, 12, 12), 3, 8)
    moved = any(not torch.equal(p, q) for p, q in zip(fresh.parameters(), looped[0].parameters()))
    assert moved


def test_each_lockstep_model_learns_only_its_own_rows():
    # the same images with opposite labels in two training sets: each model follows its own
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 1, 10, 10)).astype(np.float32)
    X[:40, :, :5] += 2.0
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    X2 = np.concatenate([X, X])
    y2 = np.concatenate([y, 1 - y])
    sets = [np.arange(80), np.arange(80, 160)]
    cfg = ScreenConfig(target_steps=80, batch_size=32, rep_dim=8)
    models, _, _ = fit_modules(lambda: probe.CNN((1, 10, 10), 2, 8), X2, y2, sets, n_classes=2, config=cfg,
                            seed=0, device=torch.device("cpu"))
    with torch.no_grad():
        a = models[0](torch.from_numpy(X)).argmax(1).numpy()
        b = models[1](torch.from_numpy(X)).argmax(1).numpy()
    assert (a == y).mean() > 0.9 and (b == 1 - y).mean() > 0.9


def _images(n_per_class, side, seed):
    rng = np.random.default_rng(seed)
    imgs = rng.random((2 * n_per_class, side, side)).astype(np.float32)
    imgs[n_per_class:, : side // 3] += 1.0  # class 1 is bright on top
    y = np.repeat([0, 1], n_per_class)
    return imgs.reshape(len(y), -1), y


def test_mnist_size_image_column_is_screened_with_a_patch_trigger_visible():
    X, y = _images(60, 28, 0)
    # a 3 x 3 corner patch on a few class-0 rows relabelled 1: the cross-validated probe
    # must be able to learn it (it reaches the features through the pooled stem)
    poison = np.arange(8)
    X = X.reshape(-1, 28, 28)
    X[poison, -3:, -3:] = 3.0
    y = y.copy()
    y[poison] = 1
    table = pa.table({"img": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), 784), "y": y})
    r = screen_table(table, label_col="y", config=FAST)
    assert r.summary["input_kind"] == "image"
    clean = np.setdiff1d(np.arange(len(y)), poison)
    assert (r.cv_pred_probs.argmax(1)[clean] == y[clean]).mean() > 0.9
    assert len(r.scores) == len(y) and np.isfinite(r.scores["influence"]).all()
