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
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_types import (
    is_binary,
    is_image_struct,
    is_list,
    is_numeric,
    is_string,
    is_temporal,
    plain_values,
)
from .images import first_bytes, probe_image_shape
from .values import flush_tiny, signed_log, temporal_seconds

log = logging.getLogger("screening.encoding")

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
    col = plain_values(col)
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
            x = temporal_seconds(col)
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
    values = col.cast(pa.float64(), safe=False) if not pa.types.is_floating(col.type) else col
    arr = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)  # half floats too
    finite = flush_tiny(arr[np.isfinite(arr)])
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
    fitted = signed_log(finite) if huge else finite
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
    first = first_bytes(col)
    if first is None:
        enc.reason = "binary column with no bytes"
        return enc
    shape = probe_image_shape(col, config)
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
    biggest = pc.max(pc.abs(flat.cast(pa.float64(), safe=False))).as_py() if len(flat) else 0.0
    enc.params["log"] = bool(biggest is not None and biggest > HUGE)
    enc.encoding, enc.width = "embedding", width
    enc.reason = f"fixed-length numeric arrays of {width} values"
    return enc


# --- encoding -------------------------------------------------------------------------
