"""Turn a table (pyarrow or pandas) into the arrays the probe reads, or refuse it.

Every refusal is a :class:`ScreeningInputError` with one readable message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .errors import ScreeningInputError


@dataclass
class PreparedInput:
    """Arrays ready for the probe.

    X: float32, shape (N, D) for tabular/embedding/text input, (N, C, H, W) for images.
    y: int64, shape (N,), class indices into ``classes``.
    X_ref, y_ref: the same for the trusted reference, or None.
    kind: "tabular", "embedding", "image" or "text".
    """

    X: np.ndarray
    y: np.ndarray
    classes: list
    kind: str
    feature_cols: list[str]
    X_ref: np.ndarray | None = None
    y_ref: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return int(np.prod(self.X.shape[1:]))


def _to_arrow(data, what: str) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ScreeningInputError(f"{what} cannot be read as a table: {exc}") from exc
    raise ScreeningInputError(
        f"{what} must be a pyarrow.Table or a pandas.DataFrame, not {type(data).__name__}"
    )


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _list_to_matrix(col: pa.ChunkedArray, name: str, what: str) -> np.ndarray:
    """A list column (possibly nested once, for 2-D images) -> float array (N, L...)."""
    if col.null_count:
        raise ScreeningInputError(f"{what} column '{name}' has {col.null_count} missing values")
    rows = col.to_pylist()
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        lengths = sorted({len(r) for r in rows})[:5]
        raise ScreeningInputError(
            f"{what} column '{name}' holds arrays of different lengths (e.g. {lengths}); "
            "an embedding or image column needs one fixed length"
        ) from exc
    if arr.ndim < 2 or arr.dtype == object:
        raise ScreeningInputError(f"{what} column '{name}' must hold fixed-length numeric arrays")
    return arr


def _check_finite(arr: np.ndarray, name: str, what: str) -> None:
    flat = arr.reshape(arr.shape[0], -1)
    bad = ~np.isfinite(flat)
    if bad.any():
        n_nan = int(np.isnan(flat).any(axis=1).sum())
        n_inf = int((np.isinf(flat)).any(axis=1).sum())
        parts = []
        if n_nan:
            parts.append(f"{n_nan} NaN")
        if n_inf:
            parts.append(f"{n_inf} infinite")
        raise ScreeningInputError(
            f"{what} feature column '{name}' has {' and '.join(parts)} value(s); "
            "screening needs finite numbers"
        )


def _select_features(table: pa.Table, label_col: str, feature_cols, kind_hint: str) -> list[str]:
    if feature_cols is not None:
        missing = [c for c in feature_cols if c not in table.column_names]
        if missing:
            raise ScreeningInputError(f"feature column(s) not in the table: {', '.join(missing)}")
        if label_col in feature_cols:
            raise ScreeningInputError(f"the label column '{label_col}' cannot also be a feature")
        cols = list(feature_cols)
    else:
        schema = table.schema
        numeric = [f.name for f in schema if f.name != label_col and _is_numeric(f.type)]
        lists = [
            f.name
            for f in schema
            if f.name != label_col and _is_list(f.type)
        ]
        cols = numeric + lists
        if not cols and kind_hint == "text":
            cols = [f.name for f in schema if f.name != label_col and _is_string(f.type)]
    if not cols:
        raise ScreeningInputError(
            f"no feature columns: the table has no numeric or array column besides the label "
            f"'{label_col}' (columns: {', '.join(table.column_names)})"
        )
    return cols


def _image_shape(length: int, config_shape) -> tuple[int, ...] | None:
    if config_shape is not None:
        shape = tuple(int(s) for s in config_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        return shape if int(np.prod(shape)) == length else None
    side = math.isqrt(length)
    return (1, side, side) if side * side == length and side >= 4 else None


def _features(table: pa.Table, cols: list[str], what: str, config, text_model=None):
    """Return (X, kind). ``text_model`` caches one featurizer between data and reference."""
    types = {c: table.schema.field(c).type for c in cols}
    list_cols = [c for c in cols if _is_list(types[c])]
    text_cols = [c for c in cols if _is_string(types[c])]
    other = [c for c in cols if not (_is_numeric(types[c]) or _is_list(types[c]) or _is_string(types[c]))]
    if other:
        raise ScreeningInputError(
            f"feature column(s) {', '.join(other)} are neither numeric, arrays nor text"
        )
    if text_cols:
        if len(cols) != 1:
            raise ScreeningInputError(
                f"a text feature column ('{text_cols[0]}') must be the only feature column"
            )
        from .featurizers import get_text_featurizer

        col = table.column(text_cols[0])
        if col.null_count:
            raise ScreeningInputError(f"{what} text column '{text_cols[0]}' has {col.null_count} missing values")
        X = get_text_featurizer(config.text_featurizer)(col.to_pylist())
        return np.asarray(X, dtype=np.float32), "text"

    if len(cols) == 1 and list_cols:
        name = cols[0]
        arr = _list_to_matrix(table.column(name), name, what)
        _check_finite(arr, name, what)
        flat = arr.reshape(arr.shape[0], -1)
        kind = config.input_kind
        if kind == "auto":
            shape = _image_shape(flat.shape[1], config.image_shape)
            kind = "image" if (arr.ndim == 3 or shape is not None) else "embedding"
        if kind == "image":
            shape = _image_shape(flat.shape[1], config.image_shape)
            if shape is None:
                raise ScreeningInputError(
                    f"image column '{name}' has arrays of length {flat.shape[1]}, which is not a "
                    "square number; give ScreenConfig(image_shape=...)"
                )
            return flat.reshape(flat.shape[0], *shape).astype(np.float32), "image"
        return flat.astype(np.float32), kind if kind != "auto" else "embedding"

    # one float32 buffer filled column by column: no float64 copy of the whole table
    widths = []
    for c in cols:
        widths.append(int(np.prod(_list_to_matrix(table.column(c).slice(0, 1), c, what).shape[1:]))
                      if _is_list(types[c]) else 1)
    X = np.empty((table.num_rows, sum(widths)), dtype=np.float32)
    at = 0
    for c, w in zip(cols, widths):
        col = table.column(c)
        if _is_list(types[c]):
            arr = _list_to_matrix(col, c, what).reshape(len(col), -1)
        else:
            if col.null_count:
                raise ScreeningInputError(
                    f"{what} feature column '{c}' has {col.null_count} NaN/missing value(s); "
                    "screening needs finite numbers"
                )
            arr = col.to_numpy(zero_copy_only=False).reshape(-1, 1)
            if arr.dtype == bool:
                arr = arr.astype(np.float32)
        if arr.shape[1] != w:
            raise ScreeningInputError(f"{what} column '{c}' holds arrays of different lengths")
        _check_finite(arr, c, what)
        X[:, at:at + w] = arr
        at += w
    kind = config.input_kind if config.input_kind in ("tabular", "embedding") else "tabular"
    return X, kind


def _labels(table: pa.Table, label_col: str, what: str) -> np.ndarray:
    """The label column as a numpy array (ints, or objects for strings), checked."""
    col = table.column(label_col)
    if col.null_count:
        raise ScreeningInputError(f"{what} label column '{label_col}' has {col.null_count} missing values")
    t = col.type
    if pa.types.is_floating(t):
        vals = col.to_numpy(zero_copy_only=False)
        if not np.all(np.isfinite(vals)) or not np.all(vals == np.round(vals)):
            raise ScreeningInputError(
                f"{what} label column '{label_col}' holds non-integer numbers; "
                "screening needs class labels (ints or strings)"
            )
        return vals.astype(np.int64)
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return col.to_numpy(zero_copy_only=False)
    return np.asarray(col.to_pylist(), dtype=object)


def _encode(labels: np.ndarray, label_col: str):
    """(sorted class list, (N,) int64 indices) without a Python object per row for ints."""
    if labels.dtype != object:
        classes_arr, y = np.unique(labels, return_inverse=True)
        return [c.item() for c in classes_arr], y.astype(np.int64).reshape(-1)
    try:
        classes = sorted(set(labels.tolist()))
    except TypeError as exc:
        raise ScreeningInputError(f"label column '{label_col}' mixes label types") from exc
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels))


def prepare_input(data, *, label_col: str, reference=None, feature_cols=None, config) -> PreparedInput:
    """Validate ``data`` (and ``reference``) and return :class:`PreparedInput`."""
    table = _to_arrow(data, "data")
    if table.num_rows == 0:
        raise ScreeningInputError("the table has zero rows; there is nothing to screen")
    if label_col not in table.column_names:
        raise ScreeningInputError(
            f"label column '{label_col}' is not in the table (columns: {', '.join(table.column_names)})"
        )
    cols = _select_features(table, label_col, feature_cols, config.input_kind)
    raw_labels = _labels(table, label_col, "data")
    classes, y = _encode(raw_labels, label_col)
    if len(classes) < 2:
        raise ScreeningInputError(
            f"label column '{label_col}' has fewer than two classes ({len(classes)} found); "
            "screening needs at least two"
        )
    index = {c: i for i, c in enumerate(classes)}
    del raw_labels
    counts = np.bincount(y, minlength=len(classes))
    small = [(classes[i], int(n)) for i, n in enumerate(counts) if n < config.n_folds]
    if small:
        cls, n = small[0]
        raise ScreeningInputError(
            f"class {cls!r} has only {n} row(s), fewer than the {config.n_folds} folds of the "
            f"probe; add rows, drop the class or lower n_folds"
            + (f" ({len(small) - 1} more class(es) too small)" if len(small) > 1 else "")
        )
    X, kind = _features(table, cols, "data", config)
    prepared = PreparedInput(X=X, y=y, classes=classes, kind=kind, feature_cols=cols)

    if reference is not None:
        ref = _to_arrow(reference, "reference")
        missing = sorted(set(table.column_names) - set(ref.column_names))
        extra = sorted(set(ref.column_names) - set(table.column_names))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if extra:
                parts.append(f"extra {', '.join(extra)}")
            raise ScreeningInputError(
                f"the reference table's columns differ from the data's: {'; '.join(parts)}"
            )
        if ref.num_rows == 0:
            raise ScreeningInputError("the reference table has zero rows")
        for c in cols + [label_col]:
            a, b = table.schema.field(c).type, ref.schema.field(c).type
            if a != b and not (_is_numeric(a) and _is_numeric(b)) and not (_is_list(a) and _is_list(b)):
                raise ScreeningInputError(f"the reference column '{c}' has type {b}, the data's has {a}")
        ref_labels = _labels(ref, label_col, "reference").tolist()
        unknown = sorted({repr(v) for v in ref_labels if v not in index})
        if unknown:
            raise ScreeningInputError(
                f"the reference has label(s) absent from the data: {', '.join(unknown[:5])}"
            )
        Xr, kind_r = _features(ref, cols, "reference", config)
        if Xr.shape[1:] != X.shape[1:]:
            raise ScreeningInputError(
                f"reference features have shape {Xr.shape[1:]}, the data's have {X.shape[1:]}"
            )
        prepared.X_ref = Xr
        prepared.y_ref = np.fromiter((index[v] for v in ref_labels), dtype=np.int64, count=len(ref_labels))
    return prepared
