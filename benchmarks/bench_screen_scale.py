"""End-to-end scale of ``screen_table``: wall time and peak memory at millions of rows.

    python benchmarks/bench_screen_scale.py --n 1000000 --d 64 [--k 10] [--ref-frac 0.01]
    python benchmarks/bench_screen_scale.py --n 10000000 --d 16

The data are K Gaussian classes in d float32 columns (built in chunks, so the input
itself is the only full-size copy the benchmark makes), with a trusted reference of
``ref_frac * N`` rows (at most 20,000) drawn the same way. Printed: input size, wall
time per stage (from the summary), total wall time, and peak RSS of the process
(``ru_maxrss``, which includes the input table). Goal: < 4 GB peak on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from screening import ScreenConfig, screen_table  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_table(n: int, d: int, k: int, seed: int, centres: np.ndarray) -> pa.Table:
    """K Gaussian classes (float32 columns x0..x{d-1}) and an int32 label, built in chunks."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n).astype(np.int32)
    cols = [np.empty(n, dtype=np.float32) for _ in range(d)]
    for start in range(0, n, 1 << 18):
        yy = y[start:start + (1 << 18)]
        block = centres[yy] + rng.standard_normal((len(yy), d), dtype=np.float32)
        for j in range(d):
            cols[j][start:start + len(yy)] = block[:, j]
    return pa.table({**{f"x{j}": cols[j] for j in range(d)}, "label": y})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ref-frac", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    centres = (rng.standard_normal((args.k, args.d)) * 3.0 / np.sqrt(args.d) * 2).astype(np.float32)
    data = make_table(args.n, args.d, args.k, args.seed + 1, centres)
    ref = make_table(min(20_000, max(100, int(args.ref_frac * args.n))), args.d, args.k, args.seed + 2, centres)
    base = rss_mb()
    print(f"N={args.n:,} d={args.d} K={args.k} reference={ref.num_rows:,} input {data.nbytes / 2**20:.0f} MiB; "
          f"rss after building input {base:.0f} MiB", flush=True)
    t = time.perf_counter()
    res = screen_table(data, label_col="label", reference=ref, config=ScreenConfig(threads=args.threads),
                       progress=True)
    wall = time.perf_counter() - t
    s = res.summary
    stages = {**{f"probe:{k}": v for k, v in s["probe"]["seconds"].items()},
              **{f"screen:{k}": v["seconds"] for k, v in s["screens"].items()}}
    print("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items()))
    print(f"wall {wall:.1f}s | peak RSS {rss_mb():.0f} MiB (input alone {base:.0f} MiB) | "
          f"threads {s['probe']['threads']} | representation dim {s['representation_dim']} | "
          f"flagged {s['combine']['flagged']:,} ({s['combine']['flagged'] / args.n:.3%}) | "
          f"cv acc {s['probe']['cv_accuracy']:.3f}")


if __name__ == "__main__":
    main()
