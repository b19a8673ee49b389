"""The report sections of the self-tests and data checks the screen and decide stages record:
canary self-test, leakage and near duplicates, the diff against the previous approved
version, and the personal-data scan.

Each function takes a recorded stage output and returns plain numbers and sentences for
``report.json``; the HTML draws its tables and charts from these and nothing else. A
check that did not run is a section with ``status`` and ``reason``, never an error.
"""

from __future__ import annotations

from typing import Any

from dataward.reports.formatting import pct
from screening.screens import report_order

SCREEN_ORDER = report_order()
KIND_NAMES = {"label_flip": "label flips", "trigger": "trigger rows (relabelled to one class)"}
PSI_MODERATE, PSI_MAJOR = 0.1, 0.25
MAX_DRIFT_SHOWN = 10


def canary_section(screening: dict[str, Any] | None, *, floor: float | None = None) -> dict[str, Any]:
    """How sensitive the screens were on this very dataset, from the screen output's ``canary``.

    ``floor``: the policy's ``min_recall`` when the screen output does not carry it.
    Returns ``status`` (done | not_run), ``sentence``, ``recall`` (of the combined verdict:
    the figure the floor applies to), ``min_recall``, ``met_floor``, ``caught``, ``n``,
    ``per_kind`` and ``screens`` (one row per screen: recall at its own budget, AUROC).
    """
    scr = screening or {}
    c = scr.get("canary")
    if scr.get("status") != "done":
        return {"status": "not_run", "reason": scr.get("reason") or "the screens did not run",
                "sentence": "No canary self-test: the screens did not run."}
    if not c:
        return {"status": "not_run", "reason": "this screening run recorded no canary self-test",
                "sentence": "No canary self-test was recorded for this screening run, so how sensitive "
                            "the screens were on this dataset is not measured."}
    if c.get("status") != "done":
        return {"status": "not_run", "reason": c.get("reason") or "not run", "n_canaries": 0,
                "sentence": f"The canary self-test did not run ({c.get('reason') or 'no reason recorded'}), "
                            "so how sensitive the screens were on this dataset is not measured."}
    flagged = c.get("flagged") or {}
    recall = c.get("recall", flagged.get("recall"))
    floor = c.get("min_recall", floor)
    met = None if recall is None or floor is None else bool(float(recall) >= float(floor))
    n, caught = int(flagged.get("n") or c.get("n_canaries") or 0), int(flagged.get("caught") or 0)
    per_kind = [{"kind": k, "name": KIND_NAMES.get(k, k), **v}
                for k, v in (flagged.get("per_kind") or {}).items()]
    screens = []
    recorded = c.get("screens") or {}
    for name in [*[s for s in SCREEN_ORDER if s in recorded], *sorted(set(recorded) - set(SCREEN_ORDER))]:
        e = recorded[name] or {}
        screens.append({"name": name, "auroc": e.get("auroc"), "budget": e.get("budget"),
                        "recall_at_budget": e.get("recall_at_budget"),
                        "per_kind": {k: v.get("recall") for k, v in (e.get("per_kind") or {}).items()}})
    kinds = ", ".join(f"{v['n']} {v['name']}" for v in per_kind) or f"{n} canaries"
    sentence = (f"How sensitive the screens were on this very dataset: {kinds} were planted as synthetic "
                f"poisons in a copy of the data and screened together with the real rows; the combined "
                f"verdict caught {caught} of {n} ({pct(recall)}).")
    if met is not None:
        sentence += (f" That meets the policy floor of {pct(floor)}." if met else
                     f" That is below the policy floor of {pct(floor)}: the screens cannot be trusted "
                     "to find poisons of these kinds in this data.")
    # why a kind is missing, e.g. no trigger canaries in a run without a trusted reference
    sentence += "".join(f" {note[0].upper()}{note[1:]}." for note in c.get("notes") or [] if note)
    trigger = c.get("trigger") or {}
    return {"status": "done", "sentence": sentence, "recall": recall, "min_recall": floor,
            "met_floor": met, "caught": caught, "n": n, "counts": c.get("counts") or {},
            "target": c.get("target"), "seed": c.get("seed"), "trigger": trigger,
            "trigger_text": _trigger_text(trigger), "per_kind": per_kind, "screens": screens,
            "notes": c.get("notes") or [],
            "count_note": (scr.get("summary") or {}).get("canary_note")}


def _trigger_text(trigger: dict[str, Any]) -> str:
    if not trigger:
        return "-"
    kind = trigger.get("kind") or "trigger"
    if trigger.get("features"):
        cells = ", ".join(f"{k} = {v:g}" if isinstance(v, (int, float)) else f"{k} = {v}"
                          for k, v in list(trigger["features"].items())[:8])
        return f"{kind}: {cells}"
    if trigger.get("patch"):
        return (f"{kind}: {'x'.join(str(p) for p in trigger['patch'])} patch, "
                f"{trigger.get('corner', '')} corner of {trigger.get('column', '-')}, value {trigger.get('value')}")
    return str(kind)


def leakage_section(screening: dict[str, Any] | None) -> dict[str, Any]:
    """Duplicates inside the data and copies of evaluation rows, from the screen output's ``leakage``."""
    scr = screening or {}
    leak = scr.get("leakage")
    if scr.get("status") != "done" or not leak:
        return {"status": "not_run",
                "reason": scr.get("reason") if scr.get("status") != "done" else "no leakage check was recorded"}
    if leak.get("status") == "not_run":
        return {"status": "not_run", "reason": leak.get("reason") or "the leakage check was not run"}
    if leak.get("status") != "done":
        return {"status": "error", "reason": leak.get("reason") or "the leakage check failed"}
    internal = leak.get("internal") or {}
    exact = internal.get("exact") or {}
    conflicting = internal.get("conflicting_labels") or {}
    near = internal.get("near_features") or {}
    totals = leak.get("totals") or {}
    evaluation = []
    for name, e in (leak.get("evaluation") or {}).items():
        evaluation.append({"name": name, "n_rows": e.get("n_rows"), "exact_train_rows": e.get("exact_train_rows"),
                           "exact_eval_rows": e.get("exact_eval_rows"), "near_eval_rows": e.get("near_eval_rows"),
                           "examples_exact": e.get("examples_exact") or [],
                           "examples_near": e.get("examples_near") or [], "note": e.get("note")})
    n_exact_eval = int(totals.get("eval_exact_eval_rows") or 0)
    n_near_eval = int(totals.get("eval_near_eval_rows") or 0)
    near_not_run = leak.get("near_not_run")
    parts = [f"{int(exact.get('n_duplicate_rows') or 0)} row(s) repeat another row exactly "
             f"({int(exact.get('n_groups') or 0)} group(s))",
             f"{int(conflicting.get('n_rows') or 0)} row(s) share their features with a row of another label",
             f"near duplicates were not searched ({near_not_run})" if near_not_run else
             f"{int(near.get('n_rows_with_near_duplicate') or 0)} row(s) have a near duplicate"]
    if evaluation:
        parts.append(f"{n_exact_eval} evaluation row(s) are copied exactly in the training data"
                     + (" (near copies not searched)" if near_not_run else
                        f" and {n_near_eval} more have a near duplicate there"))
    else:
        parts.append("no evaluation set was declared, so train/evaluation overlap was not checked")
    return {"status": "done", "sentence": "; ".join(parts) + ".", "method": leak.get("method") or {},
            "n_rows": leak.get("n_rows"),
            "exact": {"n_rows": exact.get("n_duplicate_rows"), "n_groups": exact.get("n_groups"),
                      "examples": exact.get("examples") or []},
            "conflicting_labels": {"n_rows": conflicting.get("n_rows"), "n_groups": conflicting.get("n_groups"),
                                   "examples": conflicting.get("examples") or []},
            "near": {"n_rows": near.get("n_rows_with_near_duplicate"), "not_run": near_not_run,
                     "threshold_distance": near.get("threshold_distance"),
                     "median_nn_distance": near.get("median_nn_distance"),
                     "queried_rows": near.get("queried_rows"), "examples": near.get("examples") or []},
            "evaluation": evaluation, "totals": totals,
            "clean": not (exact.get("n_duplicate_rows") or conflicting.get("n_rows")
                          or near.get("n_rows_with_near_duplicate") or n_exact_eval or n_near_eval)}


def diff_section(screening: dict[str, Any] | None) -> dict[str, Any]:
    """What changed since the previous approved version, from the screen output's ``diff``."""
    scr = screening or {}
    if scr.get("status") != "done":
        return {"status": "not_run", "reason": scr.get("reason") or "the screens did not run"}
    if "diff" not in scr:
        return {"status": "not_run", "reason": "this screening run recorded no version diff"}
    d = scr.get("diff")
    if d is None:
        return {"status": "first", "reason": "there is no earlier approved version of this dataset to compare with"}
    if d.get("status") == "error":
        return {"status": "error", "reason": d.get("reason") or "the diff failed"}
    if d.get("status") == "not_run":
        return {"status": "not_run", "reason": d.get("reason") or "the diff was not run"}
    rows = d.get("rows") or {}
    labels = d.get("labels") or {}
    drift = d.get("drift") or {}
    cols = drift.get("columns") or {}
    top = [{"column": c, **cols[c], "band": _psi_band(cols[c].get("psi"))}
           for c in (drift.get("top") or [])[:MAX_DRIFT_SHOWN] if c in cols]
    classes = sorted(set(labels.get("counts_a") or {}) | set(labels.get("counts_b") or {}), key=_class_key)
    newly = d.get("newly_flagged")
    sentence = (f"Against {d.get('a')}: {rows.get('unchanged', '-')} row(s) unchanged, {rows.get('added', '-')} added, "
                f"{rows.get('removed', '-')} removed, {rows.get('changed', '-')} relabelled")
    if labels.get("total_variation") is not None:
        sentence += f"; label distribution moved by {labels['total_variation']:.3f} (total variation)"
    if drift.get("max_psi") is not None:
        sentence += (f"; {drift.get('n_major', 0)} column(s) drifted majorly (PSI > {PSI_MAJOR}), "
                     f"largest PSI {drift['max_psi']:.3g}")
    if newly:
        sentence += (f"; {newly.get('arrived_with_b', 0)} of the {newly.get('n_flagged_b', 0)} flagged rows "
                     "arrived with this version")
    schema = d.get("schema") or {}
    schema_parts = ([f"added {', '.join(schema['added'])}"] if schema.get("added") else []) \
        + ([f"removed {', '.join(schema['removed'])}"] if schema.get("removed") else []) \
        + [f"{r['column']}: {r['from']} -> {r['to']}" for r in schema.get("retyped") or []]
    return {"status": "done", "a": d.get("a"), "b": d.get("b"), "same_content": d.get("same_content"),
            "schema_text": "; ".join(schema_parts) or "unchanged",
            "sentence": sentence + ".", "rows": rows, "schema": d.get("schema") or {},
            "labels": {**labels, "classes": classes}, "drift": {**{k: v for k, v in drift.items() if k != "columns"},
                                                                 "top_columns": top, "n_columns": len(cols)},
            "newly_flagged": newly}


def _psi_band(psi: float | None) -> str:
    if psi is None:
        return "-"
    return "major" if psi > PSI_MAJOR else "moderate" if psi > PSI_MODERATE else "stable"


def _class_key(c: str):
    try:
        return (0, float(c), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(c))


def pii_section(pii: dict[str, Any] | None, *, watched: list[str] | None = None) -> dict[str, Any]:
    """The personal-data scan at ingest (EU AI Act Art. 10(5)): which columns hold which category.

    ``pii``: ``{"scanned", "failed", "tags": [{column, tag, category, fraction, matches,
    sampled, examples (masked)}]}`` (the decide output's ``pii``, or built from
    :func:`lineage.tags.column_tags`). ``watched``: the categories the policy acts on.
    """
    if not pii or not pii.get("scanned"):
        return {"status": "not_run", "reason": "no personal-data scan is recorded for this version",
                "tags": [], "sentence": "No personal-data scan is recorded for this version."}
    if pii.get("failed"):
        return {"status": "error", "reason": f"the personal-data scan failed: {pii['failed']}", "tags": [],
                "sentence": f"The personal-data scan failed: {pii['failed']}."}
    watched_set = set(watched or [])
    tags = [{**t, "category": t.get("category") or str(t.get("tag", "")).split(":")[-1],
             "free_text": str(t.get("tag", "")).startswith("free_text:"),
             "acted_on": (t.get("category") or str(t.get("tag", "")).split(":")[-1]) in watched_set
             or t.get("tag") in watched_set}
            for t in pii.get("tags") or []]
    columns = sorted({t["column"] for t in tags})
    if not tags:
        sentence = "The personal-data scan found no personal data in any column."
    else:
        cats = sorted({t["category"] for t in tags})
        sentence = (f"The personal-data scan found {', '.join(cats)} in {len(columns)} column(s): "
                    f"{', '.join(columns[:8])}{' and more' if len(columns) > 8 else ''}. "
                    "Examples below are masked; the data never leaves the content store.")
    return {"status": "done", "sentence": sentence, "tags": tags, "columns": columns,
            "watched": sorted(watched_set), "acted_on": [t for t in tags if t["acted_on"]]}
