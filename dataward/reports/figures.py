"""The report's figures as plain numbers: score distributions, per-class counts, the
2-D projection and the top flagged rows. Everything here goes into ``report.json``;
the charts in the HTML are drawn from these numbers and nothing else.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

#: Columns of ``scores.parquet`` that are not per-screen scores.
NOT_SCORES = ("row_id", "flagged", "reason", "suggested_label", "label_p_value")
N_BINS = 30
#: Flagged rows shown as cards (only rows a picture or a text shows better than a table)
TOP_FLAGGED = 12
#: Flagged rows listed in the report's table; every one is in flagged.csv
MAX_FLAGGED_LISTED = 100
#: Columns named per flagged row: those that differ most from the row's class
N_DIFFERING = 3
#: Scalar columns considered for "differs most from its class" (wider tables: the first ones)
MAX_COMPARED_COLUMNS = 512
#: The verdict's rule names (scores.parquet ``reason``) in a few words (the report's legend
#: and docs/reviewing.md say more)
RULE_WORDS = {"reference_calibrated": "label vs reference",
              "cleanlab_cross_validated": "cleanlab, no reference",
              "label_noise": "cleanlab", "union": "any screen"}
MAX_PROJECTED = 4000
MAX_TABLE_CELLS = 16


def screen_figures(screening: dict[str, Any], table=None, *, label_col: str | None = None,
                   seed: int = 0, rows=None) -> dict[str, Any]:
    """Figures for the screen stage output ``screening`` (``status == "done"``).

    Args:
        screening: the recorded screen stage output (``scores_path``, ``projection_path``,
            ``summary``).
        table: the version's data rows (pyarrow.Table, N rows in ``row_id`` order) for
            the labels and the flagged rows' content; None leaves those out.
        label_col: the label column of ``table``.
        rows: a :class:`dataward.reports.rows.ReportRows` (its table and scores replace
            ``table`` and the scores file): of a large version, a sample and the flagged
            rows; distributions and percentiles then come from the uniform sample, class
            counts from every row's label.

    Returns:
        ``{"screens": [...], "per_class": {...}, "projection": {...}, "top_flagged": [...]}``.
    """
    from dataward.artifacts import read_scores

    base = None  # the rows the distributions and percentiles are read from (None: all)
    if rows is not None:
        scores, table, base = rows.scores, rows.table, rows.in_sample
    else:
        scores = read_scores(screening["scores_path"])
    n_total = int(rows.n_rows) if rows is not None and rows.sampled else int(len(scores))
    summary = screening.get("summary") or {}
    flagged = scores["flagged"].to_numpy(dtype=bool)
    n_flagged = int(rows.sampled["flagged_total"]) if rows is not None and rows.sampled else int(flagged.sum())
    labels = None
    if table is not None and label_col and label_col in table.column_names:
        labels = np.asarray([str(v) for v in table.column(label_col).to_pylist()], dtype=object)
    score_cols = [c for c in scores.columns if c not in NOT_SCORES
                  and isinstance(scores[c].dtype, np.dtype) and np.issubdtype(scores[c].dtype, np.number)]
    screens = [_screen_distribution(name, scores[name].to_numpy(dtype=float), flagged,
                                    (summary.get("screens") or {}).get(name) or {}, base=base, n_total=n_total)
               for name in score_cols]
    exact = (rows.label_counts, rows.flagged_per_class) if rows is not None and rows.sampled else None
    return {
        "screens": screens,
        "verdict": {"rule": (summary.get("combine") or {}).get("text"),
                    "flagged": n_flagged, "n_rows": n_total,
                    "estimated_poison_rate": summary.get("estimated_poison_rate")},
        "per_class": _per_class(summary, labels, flagged, exact=exact),
        "projection": _projection(screening.get("projection_path"), flagged, seed=seed,
                                  row_ids=None if base is None else scores["row_id"].to_numpy()),
        "top_flagged": _top_flagged(scores, score_cols, flagged, table, label_col, summary, base=base),
        "flagged_rows": flagged_rows(scores, score_cols, flagged, table, label_col, summary, base=base),
        "columns": column_encodings(summary),
        "sampled": None if rows is None else rows.sampled,
    }


def _percentiles(scores, col: str, base: np.ndarray | None) -> np.ndarray:
    """Each row's percentile of ``scores[col]`` (0..1, NaN as 0): among every row, or
    among the uniform sample ``base`` when the rows are a sample and the flagged rows."""
    values = scores[col].to_numpy(dtype=float)
    if base is None:
        return scores[col].rank(pct=True).fillna(0).to_numpy()
    ref = np.sort(values[base & np.isfinite(values)])
    out = np.searchsorted(ref, values, side="right") / max(len(ref), 1)
    return np.where(np.isfinite(values), out, 0.0)


def flagged_rows(scores, score_cols, flagged, table, label_col, summary, base=None) -> list[dict[str, Any]]:
    """Every flagged row, strongest first, one flat record each (the table and flagged.csv).

    Keys: ``row_id``, ``label``, ``suggested_label`` (cleanlab's, where the verdict
    suggests one), ``rule`` (the rule that flagged it, in words), ``strength`` (mean
    percentile of the row's scores over the screens, 0..1), ``label_p_value``,
    ``scores`` (``[[screen, score, percentile], ...]``, strongest first) and
    ``differing`` (``[[column, value, class median or mode, how], ...]``: the columns
    where the row differs most from the rows of its class).
    """
    ids = np.flatnonzero(flagged)
    if not len(ids):
        return []
    pcts = {c: _percentiles(scores, c, base) for c in score_cols}
    strength = np.mean([pcts[c] for c in score_cols], axis=0) if score_cols else np.zeros(len(scores))
    order = ids[np.argsort(-strength[ids], kind="stable")]
    labels = None
    if table is not None and label_col and label_col in table.column_names:
        labels = np.asarray([None if v is None else str(v) for v in table.column(label_col).to_pylist()],
                            dtype=object)
    differing = _differing_columns(table, label_col, labels, order, summary, base) if table is not None else {}
    combine = summary.get("combine") or {}
    excess = {str(d.get("class")) for d in combine.get("class_excess") or []}
    has = set(scores.columns)
    out = []
    for i in order:
        rule = str(scores["reason"].iloc[i]) if "reason" in has else ""
        words = RULE_WORDS.get(rule, rule.replace("_", " ")) or "flagged"
        label = None if labels is None else labels[i]
        if label is not None and label in excess:
            words += ", excess"
        suggested = scores["suggested_label"].iloc[i] if "suggested_label" in has else None
        p_value = _f(scores["label_p_value"].iloc[i]) if "label_p_value" in has else None
        ranked = sorted(score_cols, key=lambda c: -pcts[c][i])
        out.append({"row_id": int(scores["row_id"].iloc[i]), "label": label,
                    "suggested_label": None if suggested is None or suggested != suggested else str(suggested),
                    "rule": words, "strength": round(float(strength[i]), 4), "label_p_value": p_value,
                    "scores": [[c, _f(scores[c].iloc[i]), round(float(pcts[c][i]), 4)] for c in ranked],
                    "differing": differing.get(int(i), [])})
    return out


def _differing_columns(table, label_col, labels, rows, summary, base=None) -> dict[int, list]:
    """For each row index in ``rows``: the N_DIFFERING columns where it differs most from
    its class (numbers: robust z against the class's median and MAD; categories: a value
    few rows of the class hold); the class's rows: those of the uniform sample ``base``
    when the table is a sample and the flagged rows."""
    encodings = {c.get("name"): c for c in summary.get("columns") or []}
    names = [c for c in table.column_names if c != label_col
             and (not encodings or (encodings.get(c) or {}).get("used", True))][:MAX_COMPARED_COLUMNS]
    if labels is None:
        labels = np.asarray([""] * table.num_rows, dtype=object)
    numeric, categorical = {}, {}
    import pyarrow.types as pat

    for c in names:
        t = table.schema.field(c).type
        if (pat.is_integer(t) or pat.is_floating(t)) and not pat.is_boolean(t):
            numeric[c] = np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=float)
        elif pat.is_string(t) or pat.is_large_string(t) or pat.is_dictionary(t) or pat.is_boolean(t):
            vals = np.asarray([None if v is None else str(v) for v in table.column(c).to_pylist()], dtype=object)
            if len(set(vals.tolist())) <= max(50, table.num_rows // 20):  # a category, not free text
                categorical[c] = vals
    typical = np.ones(len(labels), dtype=bool) if base is None else base
    by_class = {k: np.flatnonzero((labels == k) & typical) for k in {labels[i] for i in rows}}
    stats: dict[tuple, tuple] = {}
    out: dict[int, list] = {}
    for i in rows:
        members = by_class[labels[i]]
        cand = []
        for c, v in numeric.items():
            key = (c, labels[i])
            if key not in stats:
                x = v[members]
                x = x[np.isfinite(x)]
                med = float(np.median(x)) if len(x) else float("nan")
                mad = float(np.median(np.abs(x - med))) * 1.4826 if len(x) else float("nan")
                sd = float(np.std(x)) if len(x) else float("nan")
                stats[key] = (med, mad if mad > 0 else (sd if sd > 0 else 1.0))
            med, scale = stats[key]
            if np.isfinite(v[i]) and np.isfinite(med):
                z = (v[i] - med) / scale
                if abs(z) >= 2:
                    cand.append((abs(z), [c, _f(v[i]), med, f"z {z:+.1f}"]))
        for c, v in categorical.items():
            share = float(np.mean(v[members] == v[i])) if len(members) else 1.0
            if share < 0.1:
                # as rare as a value 2 to 4 robust z away: rank it with the numbers
                cand.append((2 + 2 * (0.1 - share) / 0.1,
                             [c, v[i], _mode(v[members]), f"{share:.0%} of the class"]))
        out[int(i)] = [x for _, x in sorted(cand, key=lambda t: -t[0])[:N_DIFFERING]]
    return out


def _mode(values: np.ndarray):
    vals, counts = np.unique(np.asarray([str(v) for v in values]), return_counts=True)
    return str(vals[np.argmax(counts)]) if len(vals) else None


def column_encodings(summary: dict[str, Any]) -> dict[str, Any]:
    """Every column of the table with how the probe encoded it or why it was left out
    (a fixed shape: ``rows`` of name/type/encoding/used/features/missing/reason)."""
    keys = ("name", "type", "encoding", "used", "features", "missing", "reason")
    rows = [{k: c.get(k) for k in keys} for c in summary.get("columns") or []]
    return {"rows": rows, "input_kind": summary.get("input_kind"),
            "n_used": sum(1 for r in rows if r["used"]), "n_features": summary.get("n_features"),
            "projection": summary.get("projection")}


def _screen_distribution(name: str, values: np.ndarray, verdict: np.ndarray,
                         info: dict[str, Any], *, base: np.ndarray | None = None,
                         n_total: int | None = None) -> dict[str, Any]:
    if base is not None:  # a large version: the uniform sample's rows
        values, verdict = values[base], verdict[base]
    finite = np.isfinite(values)
    v = values[finite]
    n_flagged = info.get("flagged")
    threshold, source = info.get("threshold"), "recorded by the screen"
    if threshold is None and n_flagged and len(v):
        # The screens flag by rule (per-class quantiles, robust z, cleanlab); the
        # equivalent global cut-off is the lowest score among the n_flagged highest.
        if base is None:
            threshold = float(np.sort(v)[::-1][min(int(n_flagged), len(v)) - 1])
            source = f"effective cut-off: the lowest score among the {int(n_flagged)} highest"
        else:
            k = min(max(int(round(int(n_flagged) * len(v) / max(int(n_total or len(v)), 1))), 1), len(v))
            threshold = float(np.sort(v)[::-1][k - 1])
            source = (f"effective cut-off, estimated from a sample of {len(v):,} rows: the lowest score "
                      f"among the highest {int(n_flagged):,} of {int(n_total or len(v)):,}")
    elif threshold is None:
        source = "no rows flagged by this screen"
    out: dict[str, Any] = {
        "name": name, "parameters": info.get("parameters") or {},
        "flagged": None if n_flagged is None else int(n_flagged),
        "flagged_per_class": info.get("flagged_per_class") or {},
        "threshold": None if threshold is None else float(threshold), "threshold_source": source,
        "in_verdict": bool(info.get("in_verdict", name in ("label_noise",))),
        "stats": {}, "histogram": None,
    }
    if not len(v):
        return out
    out["stats"] = {"min": float(v.min()), "median": float(np.median(v)),
                    "p99": float(np.quantile(v, 0.99)), "max": float(v.max()),
                    "non_finite": int((~finite).sum())}
    log_x = bool(v.min() > 0 and v.max() / v.min() > 1e3)
    x = np.log10(v) if log_x else v
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, N_BINS + 1)
    counts, _ = np.histogram(x, bins=edges)
    fcounts, _ = np.histogram(x[verdict[finite]], bins=edges)
    t = out["threshold"]
    out["histogram"] = {
        "log10": log_x, "edges": [float(e) for e in edges], "counts": [int(c) for c in counts],
        "flagged_counts": [int(c) for c in fcounts],
        "threshold_x": None if t is None else (math.log10(t) if log_x and t > 0 else (None if log_x else t)),
    }
    return out


def _per_class(summary: dict[str, Any], labels, flagged: np.ndarray, *,
               exact: tuple[dict, dict] | None = None) -> dict[str, Any]:
    """Rows and verdict flags per class: from ``labels`` (every row's), or ``exact``
    (rows per class, flagged rows per class), counted over every row of a large version."""
    classes = [str(c) for c in summary.get("classes") or []]
    if not classes and exact is not None:
        classes = sorted(exact[0])
    if not classes and labels is not None:
        classes = sorted(set(labels.tolist()))
    counts = {str(k): int(v) for k, v in (summary.get("class_counts") or {}).items()}
    if exact is not None:
        counts = {c: int(exact[0].get(c, 0)) for c in classes}
        verdict = {c: int(exact[1].get(c, 0)) for c in classes}
    elif labels is not None:
        counts = {c: int((labels == c).sum()) for c in classes}
        verdict = {c: int(((labels == c) & flagged).sum()) for c in classes}
    else:
        verdict = {str(k): int(v) for k, v in ((summary.get("combine") or {})
                                                .get("flagged_per_class") or {}).items()}
    per_screen = {name: {str(k): int(v) for k, v in (info.get("flagged_per_class") or {}).items()}
                  for name, info in (summary.get("screens") or {}).items()}
    # the verdict's power statement (screening.verdict.detectable_attack), with a reference only
    power = {str(d["class"]): d for d in (summary.get("combine") or {}).get("detectable_attack") or []}
    return {"classes": classes, "rows": counts, "verdict_flagged": verdict, "screens_flagged": per_screen,
            "trusted_rows": {c: int(d["reference_rows"]) for c, d in power.items()},
            "min_attack_rows": {c: d["min_attack_rows"] for c, d in power.items()}}


def _projection(path: str | None, flagged: np.ndarray, *, seed: int,
                row_ids: np.ndarray | None = None) -> dict[str, Any]:
    """The 2-D projection's points: every row's, or (``row_ids``: the rows read of a large
    version, ``flagged`` theirs) only those rows', read from the file without loading it."""
    from dataward.artifacts import read_projection

    proj = read_projection(path, row_ids=row_ids)
    if proj is None:
        return {"available": False, "points": [], "n_rows": int(len(flagged)), "n_shown": 0}
    n = min(len(proj), len(flagged))
    ids = np.arange(n) if row_ids is None else np.asarray(row_ids[:n])
    idx = np.arange(n)
    if n > MAX_PROJECTED:
        # keep every flagged row, sample the rest
        rng = np.random.default_rng(seed)
        f_idx, c_idx = idx[flagged[:n]], idx[~flagged[:n]]
        keep = rng.choice(c_idx, size=max(MAX_PROJECTED - len(f_idx), 0), replace=False)
        idx = np.sort(np.concatenate([f_idx, keep]))
    points = [[round(float(proj[i, 0]), 4), round(float(proj[i, 1]), 4), bool(flagged[i]), int(ids[i])]
              for i in idx]
    return {"available": True, "method": "PCA of the probe's representations",
            "points": points, "n_rows": int(n), "n_shown": len(points),
            "columns": ["x", "y", "flagged", "row_id"]}


def _top_flagged(scores, score_cols, flagged, table, label_col, summary, base=None) -> list[dict[str, Any]]:
    ids = np.flatnonzero(flagged)
    if not len(ids):
        return []
    # rank flagged rows by their mean percentile over the screens
    ranks = np.zeros(len(scores))
    for c in score_cols:
        ranks += _percentiles(scores, c, base)
    ranks /= max(len(score_cols), 1)
    top = ids[np.argsort(-ranks[ids], kind="stable")][:TOP_FLAGGED]
    has_reason = "reason" in scores.columns
    rows = []
    for i in top:
        row = {"row_id": int(scores["row_id"].iloc[i]), "suspicion": round(float(ranks[i]), 4),
               "scores": {c: _f(scores[c].iloc[i]) for c in score_cols},
               "reason": (str(scores["reason"].iloc[i]) or None) if has_reason else None}
        if table is not None:  # the table's rows are the scores' rows, in the same order
            row.update(_row_content(table, int(i), label_col, summary))
        rows.append(row)
    return rows


def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


_INDEXED = re.compile(r"^(.*?)(\d+)$")


def _row_content(table, position: int, label_col: str | None, summary: dict[str, Any]) -> dict[str, Any]:
    """How a reviewer sees one row: an image, the text, or the table row.

    Always the same keys (``label``, ``kind``, ``text``, ``image``, ``cells``,
    ``n_cells``), so a template never reads a key that may be absent. ``cells`` is a
    list of ``[column, value]`` pairs (the first MAX_TABLE_CELLS feature columns).
    """
    rec = table.slice(position, 1).to_pylist()[0]
    label = rec.get(label_col) if label_col else None
    encodings = summary.get("columns") or []
    used = [c["name"] for c in encodings if c.get("used") and c.get("name") in rec]
    features = used or [c for c in (summary.get("feature_cols") or []) if c in rec] or \
        [c for c in rec if c != label_col]
    kind = summary.get("input_kind") or "tabular"
    out: dict[str, Any] = {"label": None if label is None else str(label), "kind": kind,
                           "text": None, "image": None, "cells": [], "n_cells": 0}
    texts = [c for c in features if isinstance(rec.get(c), str) and
             any(e.get("name") == c and e.get("encoding") == "text" for e in encodings)]
    if kind == "text" or texts:
        out["text"] = " | ".join(str(rec[c]) for c in (texts or features)
                                 if isinstance(rec.get(c), str))[:1000] or None
    image = _image_of(rec, features, summary)
    if image is not None:
        out["image"], out["kind"] = image, "image"
        return out
    if kind == "text" and out["text"]:
        return out
    out["cells"] = [[c, _cell(rec[c])] for c in features[:MAX_TABLE_CELLS]]
    out["n_cells"] = len(features)
    side = int(round(math.sqrt(len(features))))
    names = [_INDEXED.match(c) for c in features]
    if side >= 4 and side * side == len(features) and all(names) \
            and len({m.group(1) for m in names}) == 1 \
            and all(isinstance(rec[c], (int, float)) and not isinstance(rec[c], bool) for c in features):
        # numbered pixel columns (p0..p63): the row is an image laid out as a table
        out["image"] = {"height": side, "width": side, "channels": 1,
                        "pixels": [float(rec[c]) for c in features]}
    return out


def _cell(v) -> Any:
    """A table cell as the report shows it: numbers stay numbers, everything else short text."""
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes>"
    text = str(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _image_of(rec: dict[str, Any], features: list[str], summary: dict[str, Any]) -> dict[str, Any] | None:
    """The row's image (pixels in [0, 255] or any range, H x W x C flattened), if it has one."""
    for c in features:
        v = rec.get(c)
        if isinstance(v, dict) and isinstance(v.get("bytes"), (bytes, bytearray)):
            v = v["bytes"]
        if isinstance(v, (bytes, bytearray)):
            decoded = _decode_image(bytes(v))
            if decoded is not None:
                return decoded
    if len(features) == 1 and isinstance(rec.get(features[0]), list):
        shape = (summary.get("config") or {}).get("image_shape")
        return _image_spec(_flatten(rec[features[0]]), shape)
    return None


def _decode_image(data: bytes) -> dict[str, Any] | None:
    """A thumbnail (at most 64 px a side) of encoded image bytes, pixels in [0, 1]."""
    import io

    from screening.encoding import image_pixels

    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            scale = min(1.0, 64 / max(w, h))
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            grey = im.mode in ("L", "1", "LA") or im.mode.startswith(("I", "F"))
            a = image_pixels(im, "L" if grey else "RGB", size)
            return {"height": size[1], "width": size[0], "channels": 1 if grey else 3,
                    "pixels": [float(x) for x in a.reshape(-1)]}
    except Exception:  # not an image a reviewer can see: the row shows as a table
        return None


def _flatten(v) -> list:
    out = []
    for x in v:
        if isinstance(x, list):
            out.extend(_flatten(x))
        else:
            out.append(x)
    return out


def _image_spec(flat: list, shape) -> dict[str, Any] | None:
    if not flat or not all(isinstance(x, (int, float)) for x in flat):
        return None
    if shape and len(shape) >= 2:
        h, w = int(shape[0]), int(shape[1])
        ch = int(shape[2]) if len(shape) > 2 else 1
    else:
        ch = 3 if len(flat) % 3 == 0 and int(math.isqrt(len(flat) // 3)) ** 2 == len(flat) // 3 else 1
        side = math.isqrt(len(flat) // ch)
        h = w = side
    if h * w * ch != len(flat) or h * w > 128 * 128:
        return None
    return {"height": h, "width": w, "channels": ch, "pixels": [float(x) for x in flat]}
