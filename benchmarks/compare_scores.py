"""Compare two ``bench_detection.py --dump`` folders row for row.

    python benchmarks/compare_scores.py BEFORE_DIR AFTER_DIR [--atol 1e-9]

For every case present in both: the ``flagged`` column must be identical, and every
score column must agree within ``--atol`` (NaNs equal). Prints one line per case and
exits 1 when any case differs, so a refactor that claims "behaviour unchanged" can
show it.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np
import pandas as pd


def compare(before: pd.DataFrame, after: pd.DataFrame, atol: float) -> list[str]:
    """Differences between two score frames, as readable lines (empty: identical)."""
    problems = []
    if len(before) != len(after):
        return [f"rows {len(before)} != {len(after)}"]
    for col in sorted(set(before.columns) | set(after.columns)):
        if col not in before or col not in after:
            problems.append(f"column {col!r} only in {'after' if col in after else 'before'}")
            continue
        a, b = before[col], after[col]
        if a.dtype.kind in "fc" and b.dtype.kind in "fc":
            close = np.isclose(a.to_numpy(), b.to_numpy(), atol=atol, rtol=0, equal_nan=True)
            if not close.all():
                diff = np.nanmax(np.abs(a.to_numpy() - b.to_numpy()))
                problems.append(f"{col}: {int((~close).sum())} rows differ (max |diff| {diff:.3g})")
        else:  # text, categories: missing values (None, NaN) compare equal to each other
            differ = int((a.astype(object).fillna("\0").astype(str).to_numpy()
                          != b.astype(object).fillna("\0").astype(str).to_numpy()).sum())
            if differ:
                problems.append(f"{col}: {differ} rows differ")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--atol", type=float, default=1e-9)
    args = ap.parse_args(argv)
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(args.before, "*.parquet")))
    failed = 0
    for name in names:
        other = os.path.join(args.after, name)
        if not os.path.exists(other):
            print(f"{name}: missing in {args.after}")
            failed += 1
            continue
        problems = compare(pd.read_parquet(os.path.join(args.before, name)), pd.read_parquet(other), args.atol)
        flagged = int(pd.read_parquet(other)["flagged"].sum())
        print(f"{name}: {'identical' if not problems else '; '.join(problems)} ({flagged} flagged)")
        failed += bool(problems)
    print(f"{len(names) - failed} of {len(names)} cases identical")
    return 1 if failed or not names else 0


if __name__ == "__main__":
    sys.exit(main())
