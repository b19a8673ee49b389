"""Arrow type tests the checks share (which columns are numbers, and in which sense)."""

from __future__ import annotations

import pyarrow as pa


def is_number_like(t: pa.DataType) -> bool:
    """Integers, floats and booleans: columns compared and hashed by their float64 value."""
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def is_numeric(t: pa.DataType) -> bool:
    """Number-like or decimal: columns with a mean and a standard deviation."""
    return is_number_like(t) or pa.types.is_decimal(t)


def is_ordered_number(t: pa.DataType) -> bool:
    """Integers, floats and decimals (not booleans): columns a min/max range describes."""
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
