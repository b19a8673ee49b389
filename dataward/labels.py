"""The label column checked where data enters the screens (``dataward screen`` and the
screen stage): every missing label counted, whatever form it takes."""

from __future__ import annotations


def missing_labels(table, label_col: str) -> str | None:
    """Why ``label_col`` of ``table`` cannot be screened as labels, or None.

    A label is missing when it is null, NaN or infinite (a float column holds all three);
    the sentence counts each kind, so a column of NaNs does not read as "0 missing".
    None also when the column is absent: the screens name that themselves.
    """
    if label_col not in table.column_names:
        return None
    return _sentence(label_col, *_gaps(table.column(label_col)))


def missing_labels_in_batches(batches, label_col: str) -> str | None:
    """:func:`missing_labels` over record batches of the label column (a stored version
    streamed: one batch in memory)."""
    nulls = nan = inf = 0
    for batch in batches:
        if label_col not in batch.schema.names:
            return None
        a, b, c = _gaps(batch.column(label_col))
        nulls, nan, inf = nulls + a, nan + b, inf + c
    return _sentence(label_col, nulls, nan, inf)


def _gaps(col) -> tuple[int, int, int]:
    """(nulls, NaNs, infinities) of a label column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    nulls = col.null_count
    nan = inf = 0
    if pa.types.is_floating(col.type):
        nan = int(pc.sum(pc.is_nan(col)).as_py() or 0)
        inf = int(pc.sum(pc.is_inf(col)).as_py() or 0)
    return int(nulls), nan, inf


def _sentence(label_col: str, nulls: int, nan: int, inf: int) -> str | None:
    total = nulls + nan + inf
    if not total:
        return None
    kinds = ", ".join(f"{n} {what}" for n, what in ((nulls, "empty"), (nan, "NaN"), (inf, "infinite")) if n)
    return (f"label column '{label_col}' has {total} missing values ({kinds}): every row needs a "
            "label to be screened")
