"""Arrow type predicates and JSON conversion shared by the featurising and the canaries."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def is_string(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    view = getattr(pa.types, "is_string_view", lambda _: False)(t)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or view


def plain_values(col):
    """A dictionary column as its values (a pandas categorical of ints, say), a string
    view as a string column: the encoders read plain Arrow types."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if getattr(pa.types, "is_string_view", lambda _: False)(t):
        col = col.cast(pa.large_string())
    return col


def is_temporal(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_duration(t)


def is_image_struct(t: pa.DataType) -> bool:
    """The ``datasets`` Image layout: struct<bytes: binary, path: string>."""
    return pa.types.is_struct(t) and t.get_field_index("bytes") >= 0 and \
        (pa.types.is_binary(t.field("bytes").type) or pa.types.is_large_binary(t.field("bytes").type))


def is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def jsonable(v):
    """A numpy scalar as the matching Python value (for JSON); anything else unchanged."""
    if isinstance(v, np.generic):
        return v.item()
    return v
