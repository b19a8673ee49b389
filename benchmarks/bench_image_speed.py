"""Image screening speed: ``screen_table`` on N images stored as one fixed-size list column
(printed figures, not a timed test).

    python benchmarks/bench_image_speed.py [--sizes 1000,3500,10000] [--side 28]
                                           [--reference-share 0.2] [--no-reference]
                                           [--device auto|cpu|cuda] [--quick]

The images are scikit-learn's 8 x 8 digits upscaled (bilinear) to ``side x side`` with a
random sub-pixel shift and a little noise per row, so any N can be drawn from them;
with ``--patch-rate`` a share of rows carries a trigger (``--trigger``: a 3 x 3
checkerboard in the bottom-right corner, or a blended pattern) relabelled to class 0 (recall
and clean flag rate of the verdict are printed).

Per N, per device (CPU always, CUDA when present): wall-clock seconds, CPU seconds of
this process (``time.process_time``; wall-clock alone is noisy on a shared machine),
images/s (N / wall seconds), and the probe's stages (cross-validated, anchored,
TracIn) as ``screen_table`` times them. The cost model is printed at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_images(n, side, seed, patch_rate=0.0, target=0, trigger="patch"):
    """(X (n, side*side) float32 in [0, 16], y (n,), truth (n,) bool); ``patch_rate`` of
    the rows (not of class ``target``) carry ``trigger`` and are relabelled ``target``:
    ``patch`` a 3 x 3 checkerboard in the bottom-right corner, ``blend`` 20 % of a fixed
    random pattern over the whole image (Chen et al. 2017)."""
    import torch
    from sklearn.datasets import load_digits

    X8, y8 = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(y8), n)
    base = torch.from_numpy(X8[pick].reshape(n, 1, 8, 8).astype(np.float32))
    # upscale with a random affine shift of up to one source pixel: every row differs
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = torch.from_numpy(rng.uniform(-0.12, 0.12, (n, 2)).astype(np.float32))
    grid = torch.nn.functional.affine_grid(theta, (n, 1, side, side), align_corners=False)
    X = torch.nn.functional.grid_sample(base, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    X = X.reshape(n, side, side).numpy()
    X = np.clip(X + rng.normal(0, 0.3, X.shape).astype(np.float32), 0, 16)
    y = y8[pick].copy()
    truth = np.zeros(n, bool)
    if patch_rate > 0:
        cand = np.flatnonzero(y != target)
        idx = rng.choice(cand, int(round(patch_rate * n)), replace=False)
        if trigger == "blend":
            pattern = np.random.default_rng(123).uniform(0, 16, (side, side)).astype(np.float32)
            X[idx] = 0.8 * X[idx] + 0.2 * pattern
        else:
            board = (np.indices((3, 3)).sum(0) % 2 == 0)
            X[np.ix_(idx, np.arange(side - 3, side), np.arange(side - 3, side))] = np.where(board, 16.0, 0.0)
        y[idx] = target
        truth[idx] = True
    return X.reshape(n, side * side).astype(np.float32), y, truth


def as_table(X, y, columns=False):
    """One fixed-size list column of pixels (an image column), or one numeric column per pixel."""
    import pyarrow as pa

    if columns:
        return pa.table({**{f"p{i}": pa.array(X[:, i]) for i in range(X.shape[1])}, "label": pa.array(y)})
    col = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1])
    return pa.table({"img": col, "label": pa.array(y)})


def work_counts(n, m, side, config):
    """(training image-steps, scoring forward passes, conv multiply-adds per image) of one
    screen of n images with m reference rows (see the cost model printed by main)."""
    from screening.probe import admit_span, cnn_step_flops
    from screening.probe.training import _schedule

    k, rounds, c = config.n_folds, config.self_training_rounds, config.n_checkpoints
    fold = n * (k - 1) // k
    train = k * _schedule([fold], config)[2] * min(config.batch_size, fold)  # cross-validated
    scored = n + (n if m else 0) + m  # its out-of-fold probabilities, representations, reference
    if m:
        per = m * (k - 1) // k + n * admit_span(config, m) // k // 2  # reference + about half its admissible rows
        train += k * (1 + rounds) * _schedule([per], config)[2] * min(config.batch_size, per)
        scored += (1 + rounds) * (k * n + m)  # every model scores every data row and its reference fold
    train += _schedule([n], config)[2] * min(config.batch_size, n)  # TracIn's fit on all rows
    scored += c * (n + m)
    return train, scored, cnn_step_flops((1, side, side))


def run_one(n, side, *, device, reference_share, seed, patch_rate, threads, trigger="patch", columns=False):
    from screening import ScreenConfig, screen_table

    m = int(round(reference_share * n))
    X, y, truth = make_images(n + m, side, seed, patch_rate=0.0)
    Xp, yp, truth = make_images(n, side, seed + 1, patch_rate=patch_rate, trigger=trigger)
    ref = as_table(X[n:], y[n:], columns) if m else None
    config = ScreenConfig(device=device, seed=seed, threads=threads)
    t, c = time.perf_counter(), time.process_time()
    res = screen_table(as_table(Xp, yp, columns), label_col="label", reference=ref, config=config)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    s = res.summary
    flagged = res.scores["flagged"].to_numpy()
    det = ""
    if truth.any():
        det = (f" | recall {(flagged & truth).sum() / truth.sum():.2f} "
               f"clean flag rate {100 * flagged[~truth].mean():.1f}%")
    stages = " ".join(f"{k.replace('_probe', '').replace('cross_validated', 'cv')} {v:.1f}s"
                      for k, v in s["probe"]["seconds"].items())
    train, scored, macs = work_counts(n, m, side, config)
    shape = f"{side}x{side}{' as columns' if columns else ''}"
    print(f"[{s['device']}] N={n:,} ({shape}) ref={m:,} threads={s['probe']['threads']}: "
          f"{wall:.1f}s wall, {cpu:.1f}s CPU, {n / wall:,.1f} images/s | {stages}{det}\n"
          f"    work: {train / 1e6:.2f}M training row-steps, {scored / 1e3:.0f}k scoring passes"
          + ("" if columns else f", {macs / 1e3:.0f}k conv multiply-adds per image pass"), flush=True)
    return wall, cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,3500,10000")
    ap.add_argument("--side", type=int, default=28)
    ap.add_argument("--reference-share", type=float, default=0.2,
                    help="trusted reference rows as a share of N (0: no reference)")
    ap.add_argument("--no-reference", action="store_true", help="same as --reference-share 0")
    ap.add_argument("--patch-rate", type=float, default=0.0, help="share of rows with a planted backdoor")
    ap.add_argument("--trigger", default="patch", choices=["patch", "blend"], help="the planted backdoor's trigger")
    ap.add_argument("--columns", action="store_true",
                    help="store the pixels as numeric columns (the MLP probe) instead of one image column")
    ap.add_argument("--device", default="auto", help="auto: CPU, then CUDA when present; or cpu / cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: screen_table's choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="N = 1000 and 3500 only")
    args = ap.parse_args(argv)
    import torch

    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [s for s in sizes if s <= 3500] or [1000]
    share = 0.0 if args.no_reference else args.reference_share
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "auto" else [args.device]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, devices {devices}")
    for dev in devices:
        for n in sizes:
            run_one(n, args.side, device=dev, reference_share=share, seed=args.seed, patch_rate=args.patch_rate,
                    threads=args.threads, trigger=args.trigger, columns=args.columns)
    print("Cost as N grows: each probe fit trains a fixed number of optimiser steps (target_steps batches; "
          "whole epochs below about target_steps x batch_size rows per fold, random batches above), so "
          "training is O(1) in N; scoring is one forward pass per fit over the rows it judges, O(N). "
          "Fits: n_folds (cross-validated) + n_folds x (1 + self_training_rounds) (anchored, with a "
          "reference) + 1 (TracIn, scored at n_checkpoints checkpoints). Memory: the normalised images "
          "(N x pixels float32) plus O(batch) per step.")


if __name__ == "__main__":
    main()
