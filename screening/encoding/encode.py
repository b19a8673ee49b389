"""Encoding: apply the planned :class:`~screening.encoding.plan.ColumnEncoding` of every
column to a table (data or reference rows alike), giving the probe's feature matrix."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ScreeningInputError
from .arrow_types import is_list, plain_values
from .images import decode_images, image_shape
from .plan import ColumnEncoding
from .values import as_float, flush_tiny, signed_log, temporal_seconds

log = logging.getLogger("screening.encoding")


def encode_columns(table: pa.Table, plans: list[ColumnEncoding], what: str, config,
                   text_cache: dict | None = None) -> tuple[np.ndarray, str]:
    """Features of ``table`` as the plans say: (X float32, kind).

    kind is ``image`` (X: N x C x H x W) when the plans hold an image column,
    ``embedding`` for one embedding column alone, ``text`` when free text is the only
    feature, else ``tabular`` (X: N x D).
    """
    used = [p for p in plans if p.used]
    if not used:
        raise ScreeningInputError(_no_features_message(table, plans))
    present = set(table.column_names)  # a list built on every access: once, not per column
    missing_cols = [p.name for p in used if p.name not in present]
    if missing_cols:
        raise ScreeningInputError(f"{what} lacks the feature column(s) {', '.join(missing_cols)}")
    image = [p for p in used if p.encoding == "image"]
    if image:
        return decode_images(table.column(image[0].name), tuple(image[0].params["shape"]), what), "image"
    if len(used) == 1 and used[0].encoding == "embedding":
        arr = _list_matrix(table.column(used[0].name), used[0], what)
        shape = image_shape(arr, config)
        if config.input_kind == "image" or (config.input_kind == "auto" and shape is not None):
            if shape is None:
                raise ScreeningInputError(
                    f"image column '{used[0].name}' has arrays of length {arr[0].size}, which is not a "
                    "square number; give ScreenConfig(image_shape=...)")
            return arr.reshape(len(arr), *shape).astype(np.float32, copy=False), "image"
        return arr.reshape(len(arr), -1).astype(np.float32, copy=False), "embedding"
    blocks: list[np.ndarray] = []
    for p in used:
        blocks.append(_encode_one(table.column(p.name), p, what, config, text_cache))
        if p.missing and p.encoding != "embedding":
            blocks.append(table.column(p.name).is_null().to_numpy(zero_copy_only=False)
                          .astype(np.float32).reshape(-1, 1) if p.encoding not in ("numeric", "numeric-log")
                          else (~np.isfinite(as_float(table.column(p.name)))).astype(np.float32).reshape(-1, 1))
    X = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    only_text = all(p.encoding == "text" for p in used)
    if only_text:
        return X, "text"
    if config.input_kind == "embedding":
        return X, "embedding"
    return X, "tabular"


def _no_features_message(table, plans) -> str:
    why = "; ".join(f"{p.name}: {p.reason}" for p in plans[:6])
    more = f" (and {len(plans) - 6} more)" if len(plans) > 6 else ""
    if not plans:
        return f"no feature columns: the table has only the label (columns: {', '.join(table.column_names)})"
    return f"no usable feature column: {why}{more}"


def _encode_one(col, p: ColumnEncoding, what: str, config, text_cache) -> np.ndarray:
    col = plain_values(col)
    n = len(col)
    if p.encoding in ("numeric", "numeric-log"):
        x = as_float(col)
        ok = np.isfinite(x)
        x = flush_tiny(np.where(ok, x, 0.0))
        if p.encoding == "numeric-log":
            x = np.where(ok, signed_log(np.where(ok, x, 0.0)), 0.0)
        out = np.where(ok, x, p.params["median"])
        lo, hi = p.params.get("range", (-3e38, 3e38))
        return np.clip(out, lo, hi).astype(np.float32).reshape(-1, 1)
    if p.encoding == "boolean":  # also when another file stored the flag as 0 / 1
        return pc.fill_null(col.cast(pa.float64(), safe=False), 0.0).to_numpy(zero_copy_only=False) \
            .astype(np.float32).reshape(-1, 1)
    if p.encoding == "datetime":
        x = temporal_seconds(col) - p.params["origin"]  # float64: epoch seconds lose float32 precision
        return np.where(np.isfinite(x), x, 0.0).astype(np.float32).reshape(-1, 1)
    if p.encoding == "onehot":
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        cats = p.params["categories"]
        idx = pc.index_in(col, value_set=pa.array(cats, type=col.type)).to_numpy(zero_copy_only=False)
        out = np.zeros((n, len(cats)), dtype=np.float32)
        rows = np.flatnonzero(~np.isnan(idx.astype(np.float64)))
        out[rows, idx[rows].astype(np.int64)] = 1.0
        return out
    if p.encoding == "hashed":
        from sklearn.feature_extraction import FeatureHasher

        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        values = [[v] if v is not None else [] for v in col.to_pylist()]
        hasher = FeatureHasher(n_features=int(config.hash_buckets), input_type="string")
        return hasher.transform(values).toarray().astype(np.float32)
    if p.encoding == "text":
        return _embed_text(col, p, config, text_cache)
    if p.encoding == "embedding":
        return _list_matrix(col, p, what).reshape(n, -1).astype(np.float32, copy=False)
    raise ScreeningInputError(f"{what} column '{p.name}': no encoder for {p.encoding}")  # pragma: no cover


def _embed_text(col, p: ColumnEncoding, config, text_cache) -> np.ndarray:
    from ..featurizers import get_text_featurizer

    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    texts = ["" if v is None else v for v in col.to_pylist()]
    featurize = get_text_featurizer(config.text_featurizer)
    log.info("embedding %d texts of column '%s'", len(texts), p.name)
    X = np.asarray(featurize(texts), dtype=np.float32)
    if X.ndim != 2 or len(X) != len(texts):
        raise ScreeningInputError(f"the text featurizer returned shape {X.shape} for {len(texts)} texts")
    p.width = X.shape[1]
    return X


def _list_matrix(col, p: ColumnEncoding, what: str) -> np.ndarray:
    """A fixed-length numeric list column as a float32 array (N, L...) without Python objects."""
    n = len(col)
    shape = tuple(p.params.get("shape") or (p.width,))
    width = int(np.prod(shape))
    out = np.zeros((n, width), dtype=np.float32)
    at = 0
    for chunk in col.chunks:
        flat = chunk
        while is_list(flat.type):
            flat = flat.flatten()
        values = flat.to_numpy(zero_copy_only=False).astype(np.float64)
        valid = ~chunk.is_null().to_numpy(zero_copy_only=False)
        m = int(valid.sum())
        if values.size != m * width:
            raise ScreeningInputError(f"{what} column '{p.name}' holds arrays of different lengths")
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values.reshape(m, width))).any(axis=1).sum())
            raise ScreeningInputError(f"{what} column '{p.name}' has {bad} row(s) with NaN or infinite values")
        if p.params.get("log"):  # decided once for the column by the plan, not per chunk
            values = signed_log(values)
        values = np.clip(values, -3e38, 3e38)
        block = np.zeros((len(chunk), width), dtype=np.float32)
        block[valid] = values.reshape(m, width)
        out[at:at + len(chunk)] = block
        at += len(chunk)
    return out.reshape((n,) + shape) if len(shape) > 1 else out
