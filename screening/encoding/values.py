"""Numeric conversions shared by the planning and the encoding of columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import ScreeningInputError


def as_float(col) -> np.ndarray:
    if pa.types.is_decimal(col.type) or pa.types.is_integer(col.type):
        col = col.cast(pa.float64(), safe=False)  # int64 beyond 2**53: rounded, not refused
    return col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def flush_tiny(x: np.ndarray) -> np.ndarray:
    """Subnormal and near-subnormal magnitudes to 0: below 1e-30 they only underflow."""
    return np.where(np.abs(x) < 1e-30, 0.0, x)


def signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def temporal_seconds(col) -> np.ndarray:
    """Seconds since the epoch as float64 (NaN where missing)."""
    t = col.type
    if pa.types.is_date(t):
        col = col.cast(pa.timestamp("s"))
        t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            col = col.cast(pa.timestamp(t.unit))
        ints = col.cast(pa.int64())
        scale = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[col.type.unit]
    elif pa.types.is_time(t) or pa.types.is_duration(t):
        ints = col.cast(pa.int32()).cast(pa.int64()) if pa.types.is_time32(t) else col.cast(pa.int64())
        scale = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
    else:  # pragma: no cover - is_temporal covers the rest
        raise ScreeningInputError(f"unsupported temporal type {t}")
    return ints.to_numpy(zero_copy_only=False).astype(np.float64) / scale  # NaN where missing
