"""Feature encoding: every usable column of a table becomes probe features.

Each column is encoded the way the field does it, fitted on the data rows and applied
unchanged to the reference rows:

- numbers: as they are (the probe standardises them); a column whose magnitudes would
  overflow float32 (|x| > 1e30) is first put through a signed log, ``sign(x) log1p(|x|)``;
- booleans: 0 / 1;
- dates and timestamps: seconds since the epoch;
- strings and dictionary columns: one-hot when they have few distinct values
  (``ScreenConfig.max_onehot``), else hashed into ``ScreenConfig.hash_buckets`` signed
  buckets (scikit-learn's ``FeatureHasher``); free text (long, varied strings) is embedded
  with the text featurizer (MiniLM by default);
- fixed-length numeric lists: embeddings, or images when they hold a square number of
  values; encoded image bytes (PNG/JPEG, also the Hugging Face ``datasets`` Image struct
  of ``bytes`` and ``path``) are decoded with Pillow to one fixed probe size;
- a missing value is imputed (the median, the empty category, the empty text) and a
  0/1 missing-indicator feature is added for the column.

Left out, with the reason recorded: identifier-like columns (a distinct value in every
row: strings, or integers that count through a range), constant columns and columns of
a type that carries no feature (nested structs, binary that is not an image).

Every decision is a :class:`ColumnEncoding`; ``describe()`` gives the list the summary and
the report show.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ScreeningInputError

log = logging.getLogger(__name__)

#: |x| above this cannot be standardised in float32 without overflow: signed log first.
HUGE = 1e30
#: Strings of at least this mean length, or of at least this many words, read as free text.
TEXT_MIN_CHARS = 30
TEXT_MIN_WORDS = 4
#: A column with a distinct value in at least this share of rows is an identifier.
ID_DISTINCT_SHARE = 0.95
_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key|index|idx)$", re.IGNORECASE)


@dataclass
class ColumnEncoding:
    """How one column becomes features (or why it does not).

    name, type: the column and its Arrow type (as text).
    encoding: ``numeric``, ``numeric-log``, ``boolean``, ``datetime``, ``onehot``,
        ``hashed``, ``text``, ``embedding``, ``image`` or ``excluded``.
    width: the number of features it produces (image: C*H*W).
    missing: rows with a missing value (a missing-indicator feature is added when > 0).
    reason: why this encoding (or why the column was left out).
    """

    name: str
    type: str
    encoding: str
    width: int = 0
    missing: int = 0
    reason: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def used(self) -> bool:
        return self.encoding != "excluded"

    @property
    def n_features(self) -> int:
        return self.width + (1 if self.missing and self.encoding not in ("image", "embedding") else 0)

    def describe(self) -> dict[str, Any]:
        reason = self.reason
        if self.used and self.missing:
            reason += {"image": "; missing images are blank", "embedding": "; missing arrays are zeros"}.get(
                self.encoding, "; missing values imputed, plus a missing-indicator feature")
        return {"name": self.name, "type": self.type, "encoding": self.encoding,
                "used": self.used, "features": self.n_features if self.used else 0,
                "missing": int(self.missing), "reason": reason}


# --- type tests -----------------------------------------------------------------------

def is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def is_string(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    view = getattr(pa.types, "is_string_view", lambda _: False)(t)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or view


def _plain(col):
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


# --- planning -------------------------------------------------------------------------

def plan_columns(table: pa.Table, label_col: str, feature_cols: list[str] | None, config) -> list[ColumnEncoding]:
    """Decide, for every column but the label, how it is encoded (fitted on ``table``)."""
    names = list(feature_cols) if feature_cols is not None else [c for c in table.column_names if c != label_col]
    plans = [_plan_one(table.column(c), c, table.num_rows, config, chosen=feature_cols is not None)
             for c in names]
    images = [p for p in plans if p.encoding == "image"]
    if images:  # an image dataset is screened on its image: the CNN probe reads one image
        keep = images[0]
        for p in plans:
            if p is not keep and p.used:
                p.encoding, p.width = "excluded", 0
                p.reason = f"the rows are screened on the image column '{keep.name}'"
    return plans


def _plan_one(col: pa.ChunkedArray, name: str, n: int, config, *, chosen: bool) -> ColumnEncoding:
    enc = ColumnEncoding(name=name, type=str(col.type), encoding="excluded", missing=int(col.null_count))
    col = _plain(col)
    t = col.type
    missing = enc.missing
    if missing == n:
        enc.reason = "every value is missing"
        return enc
    if pa.types.is_null(t):
        enc.reason = "every value is missing"
        return enc
    if pa.types.is_boolean(t):
        return _constant_or(enc, col, "boolean", 1, "true / false as 1 / 0")
    if is_numeric(t):
        return _plan_numeric(enc, col, name, n, chosen)
    if is_temporal(t):
        enc = _constant_or(enc, col, "datetime", 1, "seconds from the column's median time")
        if enc.used:
            x = _temporal_seconds(col)
            enc.params["origin"] = float(np.median(x[np.isfinite(x)]))
        return enc
    if is_string(t):
        return _plan_string(enc, col, n, config, chosen)
    if is_image_struct(t) or is_binary(t):
        return _plan_image(enc, col, config)
    if is_list(t):
        return _plan_list(enc, col, config)
    enc.reason = f"type {t} carries no feature the probe can read"
    return enc


def _constant_or(enc: ColumnEncoding, col, encoding: str, width: int, why: str) -> ColumnEncoding:
    distinct = pc.count_distinct(col).as_py()
    if distinct <= 1 and not enc.missing:
        enc.reason = "constant: the same value in every row"
        return enc
    enc.encoding, enc.width, enc.reason = encoding, width, why
    return enc


def _plan_numeric(enc, col, name, n, chosen) -> ColumnEncoding:
    values = col.cast(pa.float64()) if not pa.types.is_floating(col.type) else col
    arr = values.to_numpy(zero_copy_only=False)
    finite = _flush_tiny(arr[np.isfinite(arr)])
    if not len(finite):
        enc.reason = "no finite value"
        return enc
    if finite.min() == finite.max() and not enc.missing:
        enc.reason = "constant: the same value in every row"
        return enc
    non_finite = int((~np.isfinite(arr)).sum()) - enc.missing  # NaN/inf stored as numbers
    enc.missing += max(non_finite, 0)
    if not chosen and pa.types.is_integer(col.type) and _counts_through(finite, n, name):
        enc.reason = "identifier: a distinct integer in every row"
        return enc
    huge = bool(np.abs(finite).max() > HUGE)
    enc.encoding = "numeric-log" if huge else "numeric"
    enc.width = 1
    fitted = _signed_log(finite) if huge else finite
    enc.params["median"] = float(np.median(fitted))
    enc.params["range"] = _clip_range(fitted)
    enc.reason = ("signed log, then standardised: magnitudes up to "
                  f"{np.abs(finite).max():.3g} overflow float32" if huge else "standardised")
    return enc


def _clip_range(fitted: np.ndarray) -> list[float]:
    """Bounds for values encoded with this plan: the data's range widened ten times its
    span on each side. Data rows never reach them; a reference outlier (1e37 where the
    data stays below 1) is held there instead of overflowing the standardisation."""
    lo, hi = float(fitted.min()), float(fitted.max())
    span = max(hi - lo, abs(hi), abs(lo), 1.0)
    return [max(lo - 10 * span, -3e38), min(hi + 10 * span, 3e38)]


def _counts_through(finite: np.ndarray, n: int, name: str) -> bool:
    """An integer column that is a row counter or key: distinct in (nearly) every row
    (copied rows, such as planted canaries, repeat a few), and either named like an
    identifier or filling a contiguous range."""
    if len(finite) != n or n < 3:
        return False
    uniq = np.unique(finite)
    if len(uniq) < ID_DISTINCT_SHARE * n:
        return False
    return bool(_ID_NAME.search(name)) or (uniq[-1] - uniq[0] + 1 <= n / ID_DISTINCT_SHARE)


def _plan_string(enc, col, n, config, chosen) -> ColumnEncoding:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    present = col.drop_null()
    distinct = pc.count_distinct(present).as_py()
    if distinct <= 1 and not enc.missing:
        enc.reason = "constant: the same value in every row"
        return enc
    sample = present.slice(0, 2000).to_pylist()
    mean_chars = float(np.mean([len(s) for s in sample])) if sample else 0.0
    mean_words = float(np.mean([len(s.split()) for s in sample])) if sample else 0.0
    texty = mean_chars >= TEXT_MIN_CHARS or mean_words >= TEXT_MIN_WORDS
    if distinct <= config.max_onehot and not (texty and distinct > 0.5 * len(present)):
        values = pc.value_counts(present).field("values").to_pylist()
        enc.encoding, enc.width = "onehot", len(values)
        enc.params["categories"] = sorted(values)
        enc.reason = f"one-hot: {distinct} distinct values"
        return enc
    if texty:
        enc.encoding, enc.width = "text", 0  # width known once embedded
        enc.reason = (f"free text (mean {mean_chars:.0f} characters, {mean_words:.1f} words): "
                      f"embedded with the '{config.text_featurizer}' text featurizer")
        return enc
    if not chosen and distinct >= ID_DISTINCT_SHARE * n:
        enc.reason = "identifier: a distinct value in (nearly) every row"
        return enc
    enc.encoding, enc.width = "hashed", int(config.hash_buckets)
    enc.reason = f"hashed into {config.hash_buckets} buckets: {distinct} distinct values"
    return enc


def _plan_image(enc, col, config) -> ColumnEncoding:
    first = _first_bytes(col)
    if first is None:
        enc.reason = "binary column with no bytes"
        return enc
    shape = _probe_image_shape(col, config)
    if shape is None:
        enc.reason = "binary values that are not images Pillow can decode"
        return enc
    enc.encoding, enc.width = "image", int(np.prod(shape))
    enc.params["shape"] = list(shape)
    enc.reason = f"encoded images decoded with Pillow to {shape[0]} x {shape[1]} x {shape[2]} (H x W x C)"
    return enc


def _plan_list(enc, col, config) -> ColumnEncoding:
    present = col.drop_null()  # rows without an array are imputed with zeros (see _list_matrix)
    inner = present.type.value_type
    while is_list(inner):
        inner = inner.value_type
    if not (is_numeric(inner) or pa.types.is_boolean(inner)):
        enc.reason = f"a list of {inner}, not of numbers"
        return enc
    lengths = pc.list_value_length(present)
    if is_list(present.type.value_type):  # nested (2-D image rows)
        first = present.slice(0, 1).to_pylist()[0]
        try:
            shape = np.asarray(first, dtype=np.float64).shape
        except (ValueError, TypeError):
            enc.reason = "nested arrays of uneven lengths: not an image or a fixed-length embedding"
            return enc
        enc.params["shape"] = list(shape)
        width = int(np.prod(shape))
    else:
        mn, mx = pc.min_max(lengths).values()
        if mn.as_py() != mx.as_py():
            enc.reason = f"arrays of different lengths ({mn.as_py()} to {mx.as_py()}): not a fixed-length embedding"
            return enc
        width = int(mx.as_py())
    if width == 0:
        enc.reason = "empty arrays"
        return enc
    flat = present.chunks[0] if present.num_chunks == 1 else pa.concat_arrays(present.chunks)
    while is_list(flat.type):
        flat = flat.flatten()
    biggest = pc.max(pc.abs(flat.cast(pa.float64()))).as_py() if len(flat) else 0.0
    enc.params["log"] = bool(biggest is not None and biggest > HUGE)
    enc.encoding, enc.width = "embedding", width
    enc.reason = f"fixed-length numeric arrays of {width} values"
    return enc


def _first_bytes(col) -> bytes | None:
    for chunk in col.chunks:
        for v in chunk:
            b = _bytes_of(v.as_py())
            if b:
                return b
    return None


def _bytes_of(v) -> bytes | None:
    if isinstance(v, dict):
        v = v.get("bytes")
    return bytes(v) if isinstance(v, (bytes, bytearray)) else None


def _probe_image_shape(col, config) -> tuple[int, int, int] | None:
    """(H, W, C) every image of the column is decoded to: the common size when all
    sampled images share one no larger than ``config.image_size``, else
    ``image_size`` square; grey when every sampled image is grey, else RGB."""
    from PIL import Image, UnidentifiedImageError
    import io

    sizes, modes = set(), set()
    seen = 0
    for chunk in col.chunks:
        for v in chunk:
            b = _bytes_of(v.as_py())
            if not b:
                continue
            try:
                with Image.open(io.BytesIO(b)) as im:
                    sizes.add(im.size)
                    modes.add(im.mode)
            except (UnidentifiedImageError, OSError, ValueError):
                return None
            seen += 1
            if seen >= 64:
                break
        if seen >= 64:
            break
    if not sizes:
        return None
    grey = all(m in ("L", "1", "I", "I;16", "F", "LA") for m in modes)
    c = 1 if grey else 3
    if len(sizes) == 1:
        w, h = next(iter(sizes))
        if max(w, h) <= config.image_size:
            return (h, w, c)
    s = int(config.image_size)
    return (s, s, c)


# --- encoding -------------------------------------------------------------------------

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
        shape = _image_shape(arr, config)
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
                          else (~np.isfinite(_as_float(table.column(p.name)))).astype(np.float32).reshape(-1, 1))
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


def _as_float(col) -> np.ndarray:
    if pa.types.is_decimal(col.type) or pa.types.is_integer(col.type):
        col = col.cast(pa.float64())
    return col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _flush_tiny(x: np.ndarray) -> np.ndarray:
    """Subnormal and near-subnormal magnitudes to 0: below 1e-30 they only underflow."""
    return np.where(np.abs(x) < 1e-30, 0.0, x)


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _encode_one(col, p: ColumnEncoding, what: str, config, text_cache) -> np.ndarray:
    col = _plain(col)
    n = len(col)
    if p.encoding in ("numeric", "numeric-log"):
        x = _as_float(col)
        ok = np.isfinite(x)
        x = _flush_tiny(np.where(ok, x, 0.0))
        if p.encoding == "numeric-log":
            x = np.where(ok, _signed_log(np.where(ok, x, 0.0)), 0.0)
        out = np.where(ok, x, p.params["median"])
        lo, hi = p.params.get("range", (-3e38, 3e38))
        return np.clip(out, lo, hi).astype(np.float32).reshape(-1, 1)
    if p.encoding == "boolean":  # also when another file stored the flag as 0 / 1
        return pc.fill_null(col.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False) \
            .astype(np.float32).reshape(-1, 1)
    if p.encoding == "datetime":
        x = _temporal_seconds(col) - p.params["origin"]  # float64: epoch seconds lose float32 precision
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


def _temporal_seconds(col) -> np.ndarray:
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


def _embed_text(col, p: ColumnEncoding, config, text_cache) -> np.ndarray:
    from .featurizers import get_text_featurizer

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
            values = _signed_log(values)
        values = np.clip(values, -3e38, 3e38)
        block = np.zeros((len(chunk), width), dtype=np.float32)
        block[valid] = values.reshape(m, width)
        out[at:at + len(chunk)] = block
        at += len(chunk)
    return out.reshape((n,) + shape) if len(shape) > 1 else out


def _image_shape(arr: np.ndarray, config) -> tuple[int, ...] | None:
    if arr.ndim == 3:  # nested rows: (H, W)
        return (1,) + arr.shape[1:]
    length = arr.shape[1]
    if config.image_shape is not None:
        shape = tuple(int(s) for s in config.image_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        return shape if int(np.prod(shape)) == length else None
    side = math.isqrt(length)
    return (1, side, side) if side * side == length and side >= 4 else None


def image_pixels(im, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as float32 (H, W[, 3]) in [0, 1]: 8-bit modes through Pillow's
    conversion; 16-bit and 32-bit grey scaled by their own range first (``convert("L")``
    would clip them to white)."""
    from PIL import Image

    if im.mode.startswith(("I;16", "I", "F")) and im.mode not in ("IA",):
        a = np.asarray(im, dtype=np.float32)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        a = np.asarray(Image.fromarray(a / top, mode="F").resize(size, Image.BILINEAR), dtype=np.float32)
        return np.repeat(a[..., None], 3, axis=2) if mode == "RGB" else a
    im = im.convert(mode)
    if im.size != size:
        im = im.resize(size, Image.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 255.0


def decode_images(col, shape: tuple[int, int, int], what: str, *, batch: int = 1024) -> np.ndarray:
    """Encoded images (bytes, or the ``datasets`` Image struct) -> float32 (N, C, H, W) in
    [0, 1], every image converted to the plan's mode and resized to its (H, W)."""
    import io

    from PIL import Image, UnidentifiedImageError

    h, w, c = shape
    mode = "L" if c == 1 else "RGB"
    n = len(col)
    out = np.zeros((n, c, h, w), dtype=np.float32)
    row = 0
    for chunk in col.chunks:
        for v in chunk:
            b = _bytes_of(v.as_py())
            if b is None:  # a missing image: an all-zero one, like a missing number's median
                row += 1
                continue
            try:
                with Image.open(io.BytesIO(b)) as im:
                    a = image_pixels(im, mode, (w, h))
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise ScreeningInputError(
                    f"{what} image column row {row} cannot be decoded: {type(exc).__name__}") from None
            out[row] = a.reshape(h, w, c).transpose(2, 0, 1)
            row += 1
    return out
