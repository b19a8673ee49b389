"""JSON-able values for what the checks report (observed values, examples, labels)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def python_scalar(v: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else unchanged."""
    return v.item() if isinstance(v, np.generic) else v


def jsonable(v: Any) -> Any:
    """One value as JSON can hold it: numpy scalars as Python ones, NaN and infinities as
    None, bytes decoded (invalid UTF-8 replaced), anything else not a JSON scalar as str."""
    v = python_scalar(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def jsonable_tree(v: Any) -> Any:
    """:func:`jsonable` through dicts (keys as str), lists, tuples and sets."""
    if isinstance(v, dict):
        return {str(k): jsonable_tree(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [jsonable_tree(x) for x in v]
    return jsonable(v)
