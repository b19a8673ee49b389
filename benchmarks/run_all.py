"""Run every benchmark in turn and let each print its own figures (`make bench`).

    python benchmarks/run_all.py [--quick] [--only NAME[,NAME...]]

Benchmarks are measurements, not tests: they print figures and exit 0 unless they break.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["bench_matrix", "bench_detection", "bench_featurize", "bench_image_speed", "bench_screen_speed",
         "bench_validation", "bench_screen_scale", "bench_scale"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs of each benchmark")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    args = ap.parse_args()
    wanted = [n for n in args.only.split(",") if n] or [n for n in ORDER if (HERE / f"{n}.py").exists()]
    failed = []
    for name in wanted:
        script = HERE / f"{name}.py"
        if not script.exists():
            print(f"== {name}: no such benchmark", file=sys.stderr)
            failed.append(name)
            continue
        print(f"\n== {name} {'(quick)' if args.quick else ''}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script), *(["--quick"] if args.quick else [])])
        print(f"== {name}: exit {code}, {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
