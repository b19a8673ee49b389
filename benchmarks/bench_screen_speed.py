"""Speed of the screens at scale (printed figures, not a timed test).

    python benchmarks/bench_screen_speed.py [--n 200000] [--d 512] [--quick]

* spectral: time of ``spectral_scores`` (centred, Algorithm 1) divided by the time of
  one ``X^T X`` over all N rows in the same run (goal <= 1.5x);
* label noise: cleanlab scores + find_label_issues on (N, K) pred_probs, rows/s;
* influence: TracIn over C checkpoints, factored last-layer gradients, rows/s;
* peak memory (ru_maxrss for the process, torch's peak for CUDA).
On CPU, and on CUDA when present.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from screening.probe import influence_scores  # noqa: E402
from screening.screens.label_noise import label_noise_flags, label_noise_scores  # noqa: E402
from screening.screens.spectral import spectral_scores  # noqa: E402


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def best_of(fn, repeat, dev):
    best = float("inf")
    for _ in range(repeat):
        _sync(dev)
        t = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    return best


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="N = 20,000 and one repeat")
    ap.add_argument("--robust", action="store_true", help="also time the robust spectral variant")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's own; use 1 on a contended machine)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n = 20_000 if args.quick else args.n
    repeat = 1 if args.quick else 3
    rng = np.random.default_rng(0)
    R = rng.standard_normal((n, args.d), dtype=np.float32)
    y = rng.integers(0, args.k, n)
    probs = rng.dirichlet(np.ones(args.k), size=n)
    C, D, M = 4, 65, 10_000
    e = rng.standard_normal((C, n, args.k), dtype=np.float32)
    h = rng.standard_normal((C, n, D), dtype=np.float32)
    re = rng.standard_normal((C, M, args.k), dtype=np.float32)
    rh = rng.standard_normal((C, M, D), dtype=np.float32)
    lrs = np.full(C, 1e-3)
    print(f"N={n:,} d={args.d} K={args.k} torch threads={torch.get_num_threads()} "
          f"data {R.nbytes / 2**20:.0f} MiB; rss before screens {rss_mb():.0f} MiB")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for dev in devices:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        Xt = torch.from_numpy(R).to(dev)
        t_xtx = best_of(lambda X=Xt: X.T @ X, repeat, dev)
        del Xt
        t_spec = best_of(lambda: spectral_scores(R, y, device=dev), repeat, dev)
        line = (f"[{dev.type}] X^T X {t_xtx:.3f}s | spectral (centred) {t_spec:.3f}s = {t_spec / t_xtx:.2f}x X^T X")
        if args.robust:
            t_rob = best_of(lambda: spectral_scores(R, y, method="robust", device=dev), 1, dev)
            line += f" | robust {t_rob:.3f}s = {t_rob / t_xtx:.2f}x"
        print(line)
        t_ln = best_of(lambda: (label_noise_scores(y, probs), label_noise_flags(y, probs)), repeat, dev)
        print(f"[{dev.type}] label noise (cleanlab, CPU): {t_ln:.3f}s = {n / t_ln:,.0f} rows/s")
        t_ref = best_of(lambda: influence_scores(e, h, lrs=lrs, reference_err=re, reference_rep=rh, device=dev),
                        repeat, dev)
        t_self = best_of(lambda: influence_scores(e, h, lrs=lrs, device=dev), repeat, dev)
        print(f"[{dev.type}] influence (TracIn, C={C}, K={args.k}, d+1={D}): vs reference {n / t_ref:,.0f} rows/s, "
              f"self-influence {n / t_self:,.0f} rows/s")
        mem = f"peak RSS {rss_mb():.0f} MiB"
        if dev.type == "cuda":
            mem += f", CUDA peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
        print(f"[{dev.type}] {mem}")
    print("Cost as N grows: spectral O(N d^2) (one pass of per-class R^T R, batched, O(d^2) memory) "
          "+ O(K d^2) power iterations; label noise O(N K); influence O(C N K d) time, O(C N (K+d)) memory "
          "for the stored gradient factors; the probe (training) is O(epochs N d hidden) and dominates.")


if __name__ == "__main__":
    main()
