"""Build the bundled example: scikit-learn's digits as a table, with planted poisons.

The data ships inside scikit-learn (no download). Output (never committed):

    OUT/train/digits.parquet    training rows: a BadNets patch on some rows
                                relabelled to one class, plus uniform label flips
    OUT/reference.parquet       a small trusted reference split (clean)
    OUT/evaluation.parquet      a held-out evaluation split (clean)
    OUT/manifest.yaml           the manifest, with the data's real licence
    OUT/planted.json            which training rows were poisoned, and how

    python examples/digits/build.py --out .dataward/examples/digits
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def patch(images: np.ndarray) -> np.ndarray:
    """BadNets-style trigger: a bright 2x2 square in the bottom-right corner (8x8 images)."""
    out = images.reshape(-1, 8, 8).copy()
    out[:, 6:8, 6:8] = 16
    return out.reshape(len(images), 64)


def table(x: np.ndarray, y: np.ndarray) -> pa.Table:
    cols = {f"p{i}": pa.array(x[:, i].astype(np.int64)) for i in range(64)}
    cols["label"] = pa.array(y.astype(np.int64))
    return pa.table(cols)


def build(out: Path, *, seed: int = 7, backdoor_rate: float = 0.04, flip_rate: float = 0.03,
          target: int = 0) -> dict:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data.astype(np.int64), digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_ref, n_eval = 270, 450
    ref_idx, eval_idx, train_idx = order[:n_ref], order[n_ref:n_ref + n_eval], order[n_ref + n_eval:]
    xt, yt = x[train_idx].copy(), y[train_idx].copy()
    n = len(yt)
    candidates = np.flatnonzero(yt != target)
    bd = rng.choice(candidates, size=int(round(backdoor_rate * n)), replace=False)
    xt[bd] = patch(xt[bd])
    yt[bd] = target
    rest = np.setdiff1d(np.arange(n), bd)
    fl = rng.choice(rest, size=int(round(flip_rate * n)), replace=False)
    yt[fl] = (yt[fl] + rng.integers(1, 10, size=len(fl))) % 10

    if out.exists():
        shutil.rmtree(out)
    (out / "train").mkdir(parents=True)
    pq.write_table(table(xt, yt), out / "train" / "digits.parquet")
    pq.write_table(table(x[ref_idx], y[ref_idx]), out / "reference.parquet")
    pq.write_table(table(x[eval_idx], y[eval_idx]), out / "evaluation.parquet")
    shutil.copyfile(HERE / "manifest.yaml", out / "manifest.yaml")
    planted = {"backdoor_rows": sorted(int(i) for i in bd), "flipped_rows": sorted(int(i) for i in fl),
               "target_class": target, "trigger": "2x2 patch of value 16 at pixels (6..7, 6..7)",
               "rows": int(n), "seed": seed}
    (out / "planted.json").write_text(json.dumps(planted, indent=2))
    return planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    planted = build(args.out, seed=args.seed)
    print(f"example written to {args.out}: {planted['rows']} training rows, "
          f"{len(planted['backdoor_rows'])} backdoored, {len(planted['flipped_rows'])} flipped")


if __name__ == "__main__":
    main()
