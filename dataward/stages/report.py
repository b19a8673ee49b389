"""Report stage: the JSON, HTML and PDF a compliance reviewer reads for one version.

Files, under ``DATAWARD_HOME/reports/NAME-vN/``: ``report.json`` (every figure),
``flagged.csv`` (every flagged row, strongest first; ``report.json`` links it),
``report.html`` (self-contained: inline CSS, charts as data URIs, nothing fetched)
and ``report.pdf`` (the same HTML through WeasyPrint). The recorded ``sha256`` is
the hash of ``report.html``: the document a reviewer signs off.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dataward.context import Context
from dataward.governance.policy import load_policy
from dataward.reports import build_document, render_html, render_pdf, report_dir
from dataward.reports.document import FLAGGED_CSV, flagged_csv
from dataward.stage_results import finished, record, version_dir, write_atomic
from dataward.stages.outputs import ReportOutput


def collect(ctx: Context, ref: str, *, run_id: str | None = None) -> dict[str, Any]:
    """Every figure the report shows, as one JSON-able document."""
    return build_document(ctx, ref, load_policy(ctx.settings.decision_policy), run_id=run_id)


def report(ctx: Context, ref: str, *, run_id: str | None = None) -> ReportOutput:
    """Write ``report.json``, ``report.html`` and ``report.pdf`` for ``ref``; idempotent.

    Returns the recorded output: ``json``, ``html``, ``pdf`` (paths), ``sha256`` (of the
    HTML) and ``outcome`` (the policy decision, or None if none was recorded).
    """
    version_id, ref, done = finished(ctx, ref, "report")
    if done is not None:
        return done
    doc = collect(ctx, ref, run_id=run_id)
    flagged = doc.pop("_all_flagged_rows", [])
    out_dir = report_dir(ctx, ref)
    write_atomic(out_dir / FLAGGED_CSV, flagged_csv(flagged))
    html = render_html(doc).encode("utf-8")
    pdf = render_pdf(html.decode("utf-8"))
    doc["files"] = {"html_sha256": hashlib.sha256(html).hexdigest(),
                    "pdf_sha256": hashlib.sha256(pdf).hexdigest()}
    write_atomic(out_dir / "report.json", json.dumps(doc, indent=2, default=str).encode())
    write_atomic(out_dir / "report.pdf", pdf)
    write_atomic(out_dir / "report.html", html)
    output = ReportOutput(json=str(out_dir / "report.json"), html=str(out_dir / "report.html"),
                          pdf=str(out_dir / "report.pdf"), sha256=doc["files"]["html_sha256"],
                          pdf_sha256=doc["files"]["pdf_sha256"],
                          outcome=(doc["decision"] or {}).get("outcome"),
                          compliance=doc["compliance_coverage"])
    return record(ctx, version_id, "report", output, status="written", run_id=run_id)


__all__ = ["collect", "report", "render_html", "version_dir"]
