"""Helpers shared by the validation tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def write_suite_json(root: Path, kind: str, expectations: list[dict]) -> Path:
    """Write a hand-made suite as GX would store it (the reviewed-JSON path)."""
    path = root / "gx" / "expectations" / f"{kind}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": kind, "expectations": expectations, "meta": {}}, indent=2))
    return path


def exp(etype: str, **kwargs) -> dict:
    return {"type": etype, "kwargs": kwargs}


def digits_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A digits-shaped table: p0..p63 integers 0..16, label 0..9 (every class present)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.integers(0, 17, size=(n, 64)), columns=[f"p{i}" for i in range(64)])
    df["label"] = np.arange(n) % 10
    return df
