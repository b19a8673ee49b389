"""Turn a table (pyarrow or pandas) into the arrays the probe reads, or refuse it.

Every refusal is a :class:`ScreeningInputError` with one readable message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from .encoding import encode_columns, is_list, is_numeric, plan_columns
from .errors import ScreeningInputError, ScreeningNotApplicable


@dataclass
class PreparedInput:
    """Arrays ready for the probe.

    X: float32, shape (N, D) for tabular/embedding/text input, (N, C, H, W) for images.
    y: int64, shape (N,), class indices into ``classes``.
    X_ref, y_ref: the same for the trusted reference, or None.
    kind: "tabular", "embedding", "image" or "text".
    columns: how every column was encoded or why it was left out
        (:meth:`screening.encoding.ColumnEncoding.describe`).
    projection: how a very wide table was reduced before the probe, or None.
    """

    X: np.ndarray
    y: np.ndarray
    classes: list
    kind: str
    feature_cols: list[str]
    X_ref: np.ndarray | None = None
    y_ref: np.ndarray | None = None
    columns: list = field(default_factory=list)
    projection: dict | None = None

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


def _labels(table: pa.Table, label_col: str, what: str) -> np.ndarray:
    """The label column as a numpy array (ints, or objects for strings), checked."""
    col = table.column(label_col)
    if col.null_count:
        raise ScreeningInputError(f"{what} label column '{label_col}' has {col.null_count} missing values")
    t = col.type
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        vals = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        if what != "data":  # the data's labels are judged by _check_task first
            if not np.all(np.isfinite(vals)) or not np.all(vals == np.round(vals)):
                raise ScreeningInputError(f"{what} label column '{label_col}' holds non-integer numbers")
            return vals.astype(np.int64)
        return vals
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


def _check_task(labels: np.ndarray, col_type: pa.DataType, label_col: str, n_folds: int) -> None:
    """Refuse a continuous (regression) target with :class:`ScreeningNotApplicable`.

    Non-integer numbers are continuous. Integer-valued numbers are a continuous target
    when most of their distinct values occur fewer than ``n_folds`` times: no
    cross-validated classifier can be fitted to such classes.
    """
    if not (pa.types.is_integer(col_type) or pa.types.is_floating(col_type) or pa.types.is_decimal(col_type)):
        return
    vals = labels.astype(np.float64, copy=False)
    if not np.all(np.isfinite(vals)):
        raise ScreeningInputError(f"label column '{label_col}' holds NaN or infinite values")
    if not np.all(vals == np.round(vals)):
        raise ScreeningNotApplicable(
            f"label column '{label_col}' is a continuous target (non-integer numbers): the "
            "label-consistency and backdoor screens are for class labels, so they do not apply")
    _, counts = np.unique(vals, return_counts=True)
    if len(counts) > 2 and (counts < n_folds).mean() > 0.5:
        raise ScreeningNotApplicable(
            f"label column '{label_col}' looks like a continuous target ({len(counts)} distinct numbers, "
            f"most seen fewer than {n_folds} times): the label-consistency and backdoor screens are "
            "for class labels, so they do not apply")


def projection_width(n: int, d: int, config) -> int:
    """How many features the probe reads from a table of ``n`` rows and ``d`` features:
    ``d`` itself while the normalised (n, d) float32 input fits ``max_probe_input_mb``
    and ``d <= max_features``; else as many principal components as fit (at least 64,
    at most ``max_features``). A 784-pixel table of a few thousand rows is read raw
    (projecting it cost the probe 0.13 of accuracy on a held-out letters table); a
    million such rows are projected."""
    fit = int(config.max_probe_input_mb * 2 ** 20 // (4 * max(n, 1)))
    return int(min(d, config.max_features, max(fit, 64)))


def _reduce_width(prep: PreparedInput, config) -> None:
    """Project a table the probe cannot read raw (:func:`projection_width`) onto its top
    principal components (randomised PCA of the standardised columns, fitted on at most
    20,000 data rows), data and reference alike. The components keep their relative
    scales: the probe standardises them with one common scale, not one per component."""
    d = prep.X.shape[1]
    n = len(prep.X)
    if prep.kind not in ("tabular", "embedding"):
        return
    width = projection_width(n, d, config)
    if width >= d:
        return
    k = min(width, n - 1)
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(config.seed)
    fit_rows = prep.X if n <= 20_000 else prep.X[np.sort(rng.choice(n, 20_000, replace=False))]
    s1, s2 = np.zeros(d), np.zeros(d)
    for s in range(0, len(fit_rows), 2048):  # float64 sums over chunks: no full float64 copy
        part = fit_rows[s:s + 2048].astype(np.float64)
        s1 += part.sum(axis=0)
        s2 += (part * part).sum(axis=0)
    mu = (s1 / len(fit_rows)).astype(np.float32)
    sd = np.sqrt(np.maximum(s2 / len(fit_rows) - (s1 / len(fit_rows)) ** 2, 0.0)).astype(np.float32)
    sd[~(sd > 1e-12)] = 1.0
    pca = PCA(n_components=k, svd_solver="randomized", random_state=config.seed)
    pca.fit(np.concatenate([(fit_rows[s:s + 2048] - mu) / sd for s in range(0, len(fit_rows), 2048)]))

    def project(X):
        out = np.empty((len(X), k), dtype=np.float32)
        for s in range(0, len(X), 65_536):
            out[s:s + 65_536] = pca.transform(((X[s:s + 65_536] - mu) / sd).astype(np.float32))
        return out

    prep.X = project(prep.X)
    if prep.X_ref is not None:
        prep.X_ref = project(prep.X_ref)
    prep.projection = {"method": "PCA (randomised)", "from_features": int(d), "to_features": k,
                       "explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4)}


def prepare_input(data, *, label_col: str, reference=None, feature_cols=None, config) -> PreparedInput:
    """Validate ``data`` (and ``reference``), encode every usable column and return
    :class:`PreparedInput`. Raises ScreeningInputError (cannot screen) or
    ScreeningNotApplicable (a continuous target)."""
    table = _to_arrow(data, "data")
    if table.num_rows == 0:
        raise ScreeningInputError("the table has zero rows; there is nothing to screen")
    if label_col not in table.column_names:
        raise ScreeningInputError(
            f"label column '{label_col}' is not in the table (columns: {', '.join(table.column_names)})"
        )
    if feature_cols is not None:
        missing = [c for c in feature_cols if c not in table.column_names]
        if missing:
            raise ScreeningInputError(f"feature column(s) not in the table: {', '.join(missing)}")
        if label_col in feature_cols:
            raise ScreeningInputError(f"the label column '{label_col}' cannot also be a feature")
    raw_labels = _labels(table, label_col, "data")
    _check_task(raw_labels, _label_type(table, label_col), label_col, config.n_folds)
    if raw_labels.dtype.kind == "f":
        raw_labels = raw_labels.astype(np.int64)
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
    plans = plan_columns(table, label_col, feature_cols, config)
    text_cache: dict = {}
    X, kind = encode_columns(table, plans, "data", config, text_cache)
    used = [p.name for p in plans if p.used]
    prepared = PreparedInput(X=X, y=y, classes=classes, kind=kind, feature_cols=used)

    if reference is not None:
        ref = _to_arrow(reference, "reference")
        missing = sorted(set(used + [label_col]) - set(ref.column_names))
        if missing:
            raise ScreeningInputError(
                f"the reference table lacks column(s) the data is screened on: {', '.join(missing)}")
        if ref.num_rows < config.n_folds:
            raise ScreeningInputError(
                f"the reference table has {ref.num_rows} row(s), fewer than the {config.n_folds} folds the "
                "reference-anchored probe splits it into; add trusted rows or screen without a reference")
        for c in used + [label_col]:
            a, b = table.schema.field(c).type, ref.schema.field(c).type
            if a != b and not (_loosely_same(a, b)):
                raise ScreeningInputError(f"the reference column '{c}' has type {b}, the data's has {a}")
        ref_labels = _labels(ref, label_col, "reference").tolist()
        unknown = sorted({repr(v) for v in ref_labels if v not in index})
        if unknown:
            raise ScreeningInputError(
                f"the reference has label(s) absent from the data: {', '.join(unknown[:5])}"
            )
        Xr, _ = encode_columns(ref, plans, "reference", config, text_cache)
        if Xr.shape[1:] != X.shape[1:]:
            raise ScreeningInputError(
                f"reference features have shape {Xr.shape[1:]}, the data's have {X.shape[1:]}"
            )
        prepared.X_ref = Xr
        prepared.y_ref = np.fromiter((index[v] for v in ref_labels), dtype=np.int64, count=len(ref_labels))
    prepared.columns = [p.describe() for p in plans]
    _reduce_width(prepared, config)
    return prepared


def _loosely_same(a: pa.DataType, b: pa.DataType) -> bool:
    from .encoding import is_string

    def num(t):
        return is_numeric(t) or pa.types.is_boolean(t)

    from .encoding import is_binary, is_temporal

    def plain(t):
        return t.value_type if pa.types.is_dictionary(t) else t

    a, b = plain(a), plain(b)
    return a == b or (num(a) and num(b)) or (is_list(a) and is_list(b)) or (is_string(a) and is_string(b)) \
        or (is_temporal(a) and is_temporal(b)) or (is_binary(a) and is_binary(b)) \
        or (pa.types.is_struct(a) and pa.types.is_struct(b))


def _label_type(table: pa.Table, label_col: str) -> pa.DataType:
    t = table.schema.field(label_col).type
    return t.value_type if pa.types.is_dictionary(t) else t
