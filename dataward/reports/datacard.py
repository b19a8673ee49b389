"""The data card: what a reviewer of training data looks for (Datasheets for Datasets,
Google's Data Cards, EU AI Act Art. 10(2)(b)-(h) and 10(3)).

Declared facts come from the manifest (:data:`lineage.manifest.DATA_CARD_FIELDS`); the
computed ones from the data: class balance against the previous approved version and the
trusted reference, per-column missingness and ranges. Everything here is plain numbers and
sentences for ``report.json``; the report, the published dataset card and the Croissant
RAI fields are written from the same facts.
"""

from __future__ import annotations

from typing import Any

#: Columns profiled one by one; a wider table is summarised after these.
MAX_PROFILED_COLUMNS = 200
#: A class whose share moved by more than this (absolute) against a comparison is named.
SHARE_SHIFT = 0.05


def declared_facts(manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest's data-card fields, each with what it says and whether it is stated.

    Returns ``{"fields": [{key, about, value, stated}], "missing": [keys]}``; a stored
    manifest that predates the fields reads as every field unstated.
    """
    from lineage.errors import LineageInputError
    from lineage.manifest import DATA_CARD_FIELDS, data_card_fields

    try:
        values = data_card_fields(manifest or {})
    except LineageInputError:  # recorded before the fields were checked: show none
        values = {k: None for k in DATA_CARD_FIELDS}
    fields = [{"key": k, "about": about, "value": values.get(k), "stated": bool(values.get(k))}
              for k, (about, _) in DATA_CARD_FIELDS.items()]
    return {"fields": fields, "values": values, "missing": [f["key"] for f in fields if not f["stated"]]}


def class_balance(rows: dict[str, int], *, previous: dict[str, int] | None = None, previous_ref: str | None = None,
                  reference: dict[str, int] | None = None) -> dict[str, Any]:
    """Rows and shares per class in this version, the previous approved version and the
    trusted reference, with a sentence naming the classes whose share moved most."""
    if not rows:
        return {"status": "not_applicable", "reason": "no label column, so no classes to balance"}
    compare = {"this version": rows}
    if previous:
        compare[f"previous approved ({previous_ref})" if previous_ref else "previous approved"] = previous
    if reference:
        compare["trusted reference"] = reference
    classes = sorted({c for counts in compare.values() for c in counts}, key=_class_key)
    shares = {name: {c: (counts.get(c, 0) / total if (total := sum(counts.values())) else 0.0) for c in classes}
              for name, counts in compare.items()}
    this = shares["this version"]
    smallest = min(rows, key=lambda c: rows[c])
    parts = [f"{len(rows)} classes; the smallest, {smallest}, holds {rows[smallest]} rows "
             f"({this.get(smallest, 0):.1%}), the largest {max(rows.values())}"]
    for name in list(compare)[1:]:
        moved = sorted(((abs(this[c] - shares[name][c]), c) for c in classes), reverse=True)
        big = [(d, c) for d, c in moved if d > SHARE_SHIFT]
        parts.append(f"against the {name}: " + (", ".join(
            f"class {c} {shares[name][c]:.1%} -> {this[c]:.1%}" for _, c in big[:4])
            if big else f"no class share moved by more than {SHARE_SHIFT:.0%}"))
    if len(compare) == 1:
        parts.append("there is neither an approved earlier version nor a trusted reference to compare with")
    return {"status": "done", "classes": classes, "counts": {k: {c: int(v.get(c, 0)) for c in classes}
                                                               for k, v in compare.items()},
            "shares": shares, "compared_with": list(compare)[1:], "sentence": "; ".join(parts) + "."}


def column_profile(table, *, label_col: str | None = None) -> dict[str, Any]:
    """Per column: type, missing values, and the range (numbers, dates) or the distinct
    values and the most common one (text, categories)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pat

    if table is None:
        return {"status": "not_run", "reason": "the data could not be read for the profile", "columns": []}
    n = table.num_rows
    out = []
    for name in table.column_names[:MAX_PROFILED_COLUMNS]:
        col = table.column(name)
        t = col.type
        missing = int(col.null_count)
        if pat.is_floating(t):
            missing += int(pc.sum(pc.is_nan(col)).as_py() or 0)
        row: dict[str, Any] = {"name": name, "type": str(t), "missing": missing,
                               "missing_share": missing / n if n else 0.0, "label": name == label_col,
                               "min": None, "max": None, "mean": None, "distinct": None, "top": None}
        try:
            if (pat.is_integer(t) or pat.is_floating(t)) and n > missing:
                valid = pc.drop_null(col)
                if pat.is_floating(t):
                    valid = pc.filter(valid, pc.invert(pc.is_nan(valid)))
                mm = pc.min_max(valid).as_py()
                row.update(min=mm["min"], max=mm["max"], mean=pc.mean(valid).as_py())
            elif (pat.is_temporal(t)) and n > missing:
                mm = pc.min_max(col).as_py()
                row.update(min=str(mm["min"]), max=str(mm["max"]))
            elif pat.is_string(t) or pat.is_large_string(t) or pat.is_dictionary(t) or pat.is_boolean(t):
                counts = pc.value_counts(pc.drop_null(col.cast(pa.string()) if pat.is_dictionary(t) else col))
                row["distinct"] = len(counts)
                if len(counts):
                    best = max(counts.to_pylist(), key=lambda d: d["counts"])
                    top = str(best["values"])
                    row["top"] = (top if len(top) <= 40 else top[:37] + "...", best["counts"])
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # a nested or binary column: its type and missing values are what the profile says
        out.append(row)
    with_missing = [r for r in out if r["missing"]]
    sentence = (f"{len(with_missing)} of {table.num_columns} columns have missing values"
                + (": " + ", ".join(f"{r['name']} {r['missing_share']:.1%}" for r in
                                    sorted(with_missing, key=lambda r: -r["missing"])[:5]) if with_missing else "")
                + ".")
    return {"status": "done", "n_rows": n, "n_columns": table.num_columns, "columns": out,
            "more_columns": max(table.num_columns - MAX_PROFILED_COLUMNS, 0), "sentence": sentence}


def _class_key(c: str):
    try:
        return (0, float(c), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(c))
