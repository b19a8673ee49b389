"""The report document: every figure a reviewer sees, as one JSON-able dict."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dataward.config import code_version
from dataward.context import Context
from dataward.reports.check_sections import canary_section, diff_section, leakage_section, pii_section
from dataward.reports.compliance import compliance_mapping, coverage
from dataward.reports.datacard import class_balance, column_profile, declared_facts
from dataward.reports.figures import MAX_FLAGGED_LISTED, screen_figures
from dataward.reports.words import for_people, path_roots, unique_sentences

REPORT_FORMAT = 4
#: All flagged rows, beside report.json (which links it under ``flagged_rows.csv``)
FLAGGED_CSV = "flagged.csv"
#: The report section that explains each decision check (the summary links to it).
SECTION_OF_CHECK = {"licence": "provenance", "validation": "validation", "screening": "screening",
                    "canary": "canary", "leakage": "leakage", "personal data": "personal-data"}
MAX_RELABELS_LISTED = 200  # the decision record and the snapshot's lineage keep them all

HEADLINES = {
    "approve": "Approved: every check passed, the version is published as is.",
    "trim": "Approved without the flagged rows: {n} of {rows} rows ({frac:.1%}) are excluded from the snapshot.",
    "quarantine": "Quarantined: a reviewer must sign off before this version can be used.",
    "reject": "Rejected: this version must not be used for training.",
}


def report_dir(ctx: Context, ref: str) -> Path:
    """``DATAWARD_HOME/reports/NAME-vN``: the folder of one version's report files."""
    return ctx.settings.reports_root / ref.replace("@", "-v")


def build_document(ctx: Context, ref: str, policy: Any, *, run_id: str | None = None) -> dict[str, Any]:
    """Collect lineage, stage outputs, figures and the compliance mapping for ``ref``.

    ``policy``: the decision policy in force (a :class:`dataward.governance.policy.Policy`,
    passed in: reports sit below governance), for its canary floor and watched tags."""
    from dataward.reports.rows import report_rows
    from dataward.stage_results import finished
    from lineage import tags
    from lineage.audit import verify_chain
    from lineage.ingest import resolve
    from lineage.models import DatasetVersion, PipelineRun
    from lineage.queries import describe

    with ctx.session(read_only=True) as s:
        v = resolve(s, ref)
        info, version_id = describe(s, v), v.id
        run = s.get(PipelineRun, run_id) if run_id else None
        run_info = None if run is None else {
            "id": run.id, "trigger": run.trigger, "external_id": run.external_id,
            "code_version": run.code_version,
            "started_at": run.started_at.isoformat() if run.started_at else None}
        label_col = s.get(DatasetVersion, version_id).label_column
        manifest = s.get(DatasetVersion, version_id).manifest
        # the decision carries the scan it judged; the tags are the fallback before a decision
        scan = {**tags.scan_status(s, version_id), "tags": tags.column_tags(s, version_id, source="pii-scan")}
    # a read-only transaction: on SQLite it takes no write lock, so the whole-log
    # walk never blocks writers in other processes
    with ctx.session(read_only=True) as s:
        entries, problems = verify_chain(s)
    ref = info["ref"]
    validation, screening, decision = (finished(ctx, ref, name)[2] for name in ("validate", "screen", "decide"))
    figures = None
    done = bool(screening and screening.get("status") == "done" and screening.get("scores_path")
                and Path(screening["scores_path"]).is_file())
    # every row of a small version; a bounded sample and the flagged rows of a large one
    rows = report_rows(ctx, version_id, screening["scores_path"] if done else None, label_col)
    table = rows.table
    if done:
        figures = screen_figures(screening, label_col=label_col, rows=rows)
    if rows.sampled and table is not None and rows.in_sample is not None:
        import pyarrow as pa

        table = table.filter(pa.array(rows.in_sample))  # the profile describes the uniform sample
    out_dir = report_dir(ctx, ref)
    validation = dict(validation) if validation else None
    if validation and validation.get("data_docs"):
        validation["data_docs_relpath"] = os.path.relpath(validation["data_docs"], out_dir)
    doc: dict[str, Any] = {
        "report_format": REPORT_FORMAT,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id,
        "run": run_info,
        "code_version": code_version(),
        "dataset": info,
        "files_listed": _files_listed(info.get("files") or []),
        "summary": _summary(decision, screening),
        "validation": validation,
        "screening": screening,
        "figures": figures,
        "canary": canary_section(screening, floor=policy.canary.min_recall),
        "leakage": leakage_section(screening),
        "diff": diff_section(screening),
        "pii": pii_section((decision or {}).get("pii") or scan,
                           watched=list(policy.pii.quarantine_on)),
        "decision": decision,
        "audit": {"entries": entries, "intact": not problems, "problems": problems},
    }
    doc["data_card"] = _data_card(manifest, table, label_col, figures, doc["diff"])
    if rows.sampled:
        doc["data_card"]["columns"]["sampled"] = rows.sampled
    flagged = (figures or {}).pop("flagged_rows", None) or []
    n_flagged = int(((figures or {}).get("verdict") or {}).get("flagged") or len(flagged))
    doc["flagged_rows"] = {"n": max(n_flagged, len(flagged)), "in_csv": len(flagged), "csv": FLAGGED_CSV,
                           "shown": flagged[:MAX_FLAGGED_LISTED]}
    doc["compliance"] = compliance_mapping(doc)
    doc["compliance_coverage"] = coverage(doc["compliance"])
    # words for people: no server paths, remedies as commands, each finding once
    doc = for_people(doc, roots=path_roots(ctx.settings), ref=ref, kind=info.get("kind"))
    doc["dataset"]["status_reason"] = unique_sentences(doc["dataset"].get("status_reason"))
    doc["_all_flagged_rows"] = flagged  # written to flagged.csv by the report stage, not to the JSON
    return doc


def flagged_csv(rows: list[dict[str, Any]]) -> bytes:
    """``flagged.csv``: every flagged row, strongest first, one line each."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row_id", "label", "suggested_label", "rule", "strength", "label_p_value", "strongest_scores",
                "differs_from_class"])
    for r in rows:
        w.writerow([r["row_id"], r["label"], r["suggested_label"] or "", r["rule"], r["strength"],
                    "" if r["label_p_value"] is None else r["label_p_value"],
                    "; ".join(f"{n}={v} (percentile {p})" for n, v, p in r["scores"]),
                    "; ".join(f"{c}={v} (class {m}; {how})" for c, v, m, how in r["differing"])])
    return buf.getvalue().encode("utf-8")


#: Files of one role beyond this many are summarised in the report (an image folder holds
#: thousands); every file with its hash stays in report.json and in lineage.
MAX_FILES_LISTED = 20


def _data_card(manifest, table, label_col, figures, diff) -> dict[str, Any]:
    """Declared facts (the manifest), class balance and the column profile (the data)."""
    rows = ((figures or {}).get("per_class") or {}).get("rows") or {}
    if not rows and table is not None and label_col in (table.column_names if table is not None else []):
        import pyarrow.compute as pc

        rows = {str(d["values"]): int(d["counts"]) for d in pc.value_counts(table.column(label_col)).to_pylist()}
    previous = ((diff or {}).get("labels") or {}).get("counts_a") if (diff or {}).get("status") == "done" else None
    trusted = ((figures or {}).get("per_class") or {}).get("trusted_rows") or None
    balance = class_balance(rows, previous={str(k): int(v) for k, v in (previous or {}).items()} or None,
                            previous_ref=(diff or {}).get("a"), reference=trusted)
    return {"declared": declared_facts(manifest), "class_balance": balance,
            "columns": column_profile(table, label_col=label_col)}


def _files_listed(files: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's file table: up to MAX_FILES_LISTED files of each role, then one
    summary row per role (count and bytes) for the rest."""
    shown, rest = [], {}
    per_role: dict[str, int] = {}
    for f in files:
        role = f.get("role") or "data"
        per_role[role] = per_role.get(role, 0) + 1
        if per_role[role] <= MAX_FILES_LISTED:
            shown.append(f)
        else:
            r = rest.setdefault(role, {"role": role, "count": 0, "bytes": 0})
            r["count"] += 1
            r["bytes"] += int(f.get("bytes") or 0)
    return {"shown": shown, "more": list(rest.values()), "total": len(files)}


def _summary(decision: dict[str, Any] | None, screening: dict[str, Any] | None) -> dict[str, Any]:
    if not decision:
        return {"outcome": "pending", "headline": "No decision has been recorded yet.", "why": []}
    outcome = decision.get("outcome")
    n, rows = decision.get("n_flagged") or 0, decision.get("n_rows") or 0
    headline = HEADLINES.get(outcome, outcome or "").format(
        n=decision.get("excluded_rows", n), rows=rows,
        frac=(decision.get("excluded_rows", n) / rows) if rows else 0.0)
    relabelled = int(decision.get("relabelled_rows") or 0)
    if outcome == "trim" and relabelled:
        headline += (f" {relabelled} more flagged row(s), label noise only, are kept with the label cleanlab "
                     "suggests (policy screening.on_label_noise: relabel).")
    order = {"reject": 0, "quarantine": 1, "trim": 2, "approve": 3}
    why = sorted(({**r, "section": SECTION_OF_CHECK.get(r.get("check"))} for r in decision.get("reasons") or []),
                 key=lambda r: order.get(r.get("outcome"), 9))
    return {"outcome": outcome, "headline": headline, "why": why,
            "n_rows": rows, "n_flagged": n, "policy_version": decision.get("policy_version"),
            "relabels": (decision.get("relabels") or [])[:MAX_RELABELS_LISTED], "relabelled_rows": relabelled}
