"""End-to-end scale of ``screen_table``: wall time and peak memory at millions of rows.

    python benchmarks/bench_screen_scale.py --n 1000000 --d 64 [--k 10] [--ref-frac 0.01]
    python benchmarks/bench_screen_scale.py --n 10000000 --d 16
    python benchmarks/bench_screen_scale.py --engine ray --workers 2 --n 1000000 --d 64 [--address HOST:PORT]
    python benchmarks/bench_screen_scale.py --engine sharded --n 1000000 --d 64
    python benchmarks/bench_screen_scale.py --engine sharded --n 1000000 --d 64 --poison 0.03

``--engine sharded`` and ``--engine ray`` run the sharded screen (``screening/sharded.py``)
on a Parquet file written chunk by chunk (the benchmark never holds the whole input):
in this process, or on a Ray cluster (``--address``, default: a local one that
``ray.init`` starts with ``--workers`` CPUs), with ``--workers`` actors per step; they print
wall time, rows/s and the peak RSS of the driver and of each worker process.

The data are K Gaussian classes in d float32 columns (built in chunks, so the input
itself is the only full-size copy the benchmark makes), with a trusted reference of
``ref_frac * N`` rows (at most 20,000) drawn the same way. Printed: input size, wall
time per stage (from the summary), total wall time, and peak RSS of the process
(``ru_maxrss``, which includes the input table). Goal: < 4 GB peak on a 2-core machine.

``--poison FRAC`` plants a backdoor: that share of the rows, drawn from the other
classes, get a trigger (``x0..x2`` set to ``--trigger``, default 8: the class centres'
coordinates are about N(0, 1.5^2) at d = 16, the noise N(0, 1)) and class 0's label; then the
backdoor's recall and the clean rows' flag rate are printed too (on the sharded path
the backdoor screen runs on the sample and its rule flags every row).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from screening import ScreenConfig, screen_table  # noqa: E402
from screening.sharded import peak_rss_mb  # noqa: E402

#: the planted trigger's value in x0..x2 (``--poison``; ``--trigger`` sets it)
TRIGGER = 8.0


def make_table(n: int, d: int, k: int, seed: int, centres: np.ndarray, poison: float = 0.0,
               trigger: float = TRIGGER) -> pa.Table:
    """K Gaussian classes (float32 columns x0..x{d-1}) and an int32 label, built in chunks;
    with ``poison``, that share of rows of classes 1..K-1 carry the trigger and label 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n).astype(np.int32)
    cols = [np.empty(n, dtype=np.float32) for _ in range(d)]
    for start in range(0, n, 1 << 18):
        yy = y[start:start + (1 << 18)]
        block = centres[yy] + rng.standard_normal((len(yy), d), dtype=np.float32)
        if poison:
            hit = (rng.random(len(yy)) < poison * k / (k - 1)) & (yy != 0)
            block[hit, :3] = trigger
            yy[hit] = 0  # a view of y: the label changes in place
        for j in range(d):
            cols[j][start:start + len(yy)] = block[:, j]
    return pa.table({**{f"x{j}": cols[j] for j in range(d)}, "label": y})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ref-frac", type=float, default=0.01, help="the reference's share of N; 0: none")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine", choices=("in-process", "sharded", "ray"), default="in-process")
    ap.add_argument("--workers", type=int, default=2, help="Ray actors per step (--engine ray)")
    ap.add_argument("--address", default=None, help="Ray cluster (default: a local one)")
    ap.add_argument("--sample-rows", type=int, default=20_000)
    ap.add_argument("--dir", default=None, help="where the Parquet input is written (default: a temp dir)")
    ap.add_argument("--poison", type=float, default=0.0, help="share of rows given a trigger and class 0's label")
    ap.add_argument("--trigger", type=float, default=TRIGGER, help="the trigger's value in x0..x2 (--poison)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    centres = (rng.standard_normal((args.k, args.d)) * 3.0 / np.sqrt(args.d) * 2).astype(np.float32)
    if args.engine != "in-process":
        return sharded(args, centres)
    data = make_table(args.n, args.d, args.k, args.seed + 1, centres, args.poison, args.trigger)
    ref = _reference(args, centres)
    base = peak_rss_mb()
    print(f"N={args.n:,} d={args.d} K={args.k} reference={0 if ref is None else ref.num_rows:,} "
          f"input {data.nbytes / 2**20:.0f} MiB; "
          f"rss after building input {base:.0f} MiB", flush=True)
    t = time.perf_counter()
    res = screen_table(data, label_col="label", reference=ref, config=ScreenConfig(threads=args.threads),
                       progress=True)
    wall = time.perf_counter() - t
    s = res.summary
    stages = {**{f"probe:{k}": v for k, v in s["probe"]["seconds"].items()},
              **{f"screen:{k}": v["seconds"] for k, v in s["screens"].items()}}
    print("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items()))
    print(f"wall {wall:.1f}s | peak RSS {peak_rss_mb():.0f} MiB (input alone {base:.0f} MiB) | "
          f"threads {s['probe']['threads']} | representation dim {s['representation_dim']} | "
          f"flagged {s['combine']['flagged']:,} ({s['combine']['flagged'] / args.n:.3%}) | "
          f"cv acc {s['probe']['cv_accuracy']:.3f}")
    if args.poison:
        flagged = res.scores["flagged"].to_numpy()
        poisoned = _triggered(data, args.trigger)
        _print_detection(flagged, poisoned, s)


def _reference(args, centres: np.ndarray) -> pa.Table | None:
    """The trusted reference: ``ref_frac * N`` rows (100 to 20,000), none at ``--ref-frac 0``."""
    if args.ref_frac <= 0:
        return None
    return make_table(min(20_000, max(100, int(args.ref_frac * args.n))), args.d, args.k, args.seed + 2, centres)


def _triggered(table: pa.Table, trigger: float) -> np.ndarray:
    """(n,) bool: the rows that carry the trigger."""
    return np.logical_and.reduce([table.column(f"x{j}").to_numpy() == np.float32(trigger) for j in range(3)])


def _print_detection(flagged: np.ndarray, poisoned: np.ndarray, summary: dict) -> None:
    backdoor = (summary.get("screens") or {}).get("backdoor") or {}
    recall = (flagged & poisoned).sum() / max(1, poisoned.sum())
    print(f"backdoor: {int(poisoned.sum()):,} rows with the trigger; recall {recall:.3f}"
          f" | clean rows flagged {(flagged & ~poisoned).sum() / max(1, (~poisoned).sum()):.3%}"
          f" | backdoor screen: classes {[c['class'] for c in backdoor.get('classes_found') or []]}, "
          f"{backdoor.get('flagged', 0):,} rows flagged"
          + (f" ({backdoor['sample_flagged']:,} of them in the sample)" if "sample_flagged" in backdoor else ""))


def _write_parquet(path, args, centres) -> None:
    import pyarrow.parquet as pq

    chunk = 1 << 20
    with pq.ParquetWriter(path.with_suffix(".tmp"), make_table(1, args.d, args.k, 0, centres).schema) as w:
        for i, start in enumerate(range(0, args.n, chunk)):
            w.write_table(make_table(min(chunk, args.n - start), args.d, args.k, args.seed + 1 + 1000 * i, centres,
                                     args.poison, args.trigger), row_group_size=chunk)
    path.with_suffix(".tmp").rename(path)


def sharded(args, centres) -> None:
    """The sharded screen on a Parquet file of the same table, in-process or on Ray."""
    import tempfile
    from pathlib import Path


    root = Path(args.dir or tempfile.mkdtemp(prefix="dw-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    path = root / (f"data-{args.n}x{args.d}" + (f"-poison{args.poison:g}-{args.trigger:g}" if args.poison else "")
                   + ".parquet")
    if not path.exists():  # written by a child process: the driver's peak RSS is the screen's own
        import multiprocessing

        child = multiprocessing.get_context("fork").Process(target=_write_parquet, args=(path, args, centres))
        child.start()
        child.join()
        if child.exitcode:
            raise SystemExit(f"writing {path} failed")
    ref = _reference(args, centres)
    from dataward.ray_engine import screen_parquet

    address = None
    if args.engine == "ray":
        import ray

        if args.address:
            address = args.address
            ray.init(address=address, log_to_driver=False)
        else:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster: no token file
            ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
            address = "local"
    base = peak_rss_mb()
    print(f"N={args.n:,} d={args.d} K={args.k} reference={0 if ref is None else ref.num_rows:,} "
          f"engine {args.engine} "
          f"workers {args.workers if args.engine == 'ray' else 1}; input {path.stat().st_size / 2**20:.0f} MiB "
          f"Parquet; driver rss before {base:.0f} MiB", flush=True)
    t = time.perf_counter()
    res = screen_parquet([path], label_col="label", reference=ref, out_dir=root / f"out-{args.engine}",
                         sample_rows=args.sample_rows, address=address or "", workers=args.workers,
                         progress=lambda m: print(f"[{time.perf_counter() - t:6.1f}s] {m}", flush=True))
    wall = time.perf_counter() - t
    s = res.summary
    print("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in s["seconds"].items()))
    workers = s.get("workers", {}).get("peak_rss_mb", {})
    peaks = s.get("peak_rss_mb", {})
    print("driver peak RSS after each step (MiB): " + ", ".join(
        f"{k.removeprefix('driver_after_')} {v:.0f}" for k, v in peaks.items() if k.startswith("driver_after_")))
    print(f"fit task peak RSS {peaks.get('fit', 0):.0f} MiB | verdict task peak RSS {peaks.get('verdict', 0):.0f} MiB"
          + (" (in the driver: no cluster)" if args.engine != "ray" else " (Ray workers)"))
    print(f"wall {wall:.1f}s | {args.n / wall:,.0f} rows/s | driver peak RSS {peak_rss_mb():.0f} MiB | "
          f"worker peak RSS (MiB, by pid) {', '.join(f'{v:.0f}' for v in workers.values()) or '-'} | "
          f"flagged {s['flagged']:,} ({s['flagged'] / args.n:.3%}) | sample {s['sample']['sample_rows']:,} rows")
    if args.poison:
        import pyarrow.parquet as pq

        flagged = pq.read_table(res.scores_path, columns=["flagged"]).column("flagged").to_numpy()
        poisoned = np.concatenate([_triggered(pa.Table.from_batches([b]), args.trigger) for b in
                                   pq.ParquetFile(path).iter_batches(columns=["x0", "x1", "x2"])])
        _print_detection(flagged, poisoned, s)


if __name__ == "__main__":
    main()
