"""Report stage: the JSON and HTML a compliance reviewer reads for one version."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from dataward.config import code_version
from dataward.context import Context
from dataward.stages.common import finished, record, version_dir, write_atomic


def collect(ctx: Context, ref: str, *, run_id: str | None = None) -> dict[str, Any]:
    """Every figure the report shows, as one JSON-able document."""
    from lineage.ingest import resolve
    from lineage.queries import describe

    with ctx.session() as s:
        info = describe(s, resolve(s, ref))
    ref = info["ref"]
    stages = {name: finished(ctx, ref, name)[2] for name in ("validate", "screen", "decide")}
    return {
        "report_version": 1,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run_id,
        "code_version": code_version(),
        "dataset": info,
        "validation": stages["validate"],
        "screening": stages["screen"],
        "decision": {k: v for k, v in (stages["decide"] or {}).items() if k != "excluded_row_ids"}
        if stages["decide"] else None,
    }


def report(ctx: Context, ref: str, *, run_id: str | None = None) -> dict[str, Any]:
    """Write ``report.json`` and ``report.html`` for ``ref``; idempotent."""
    version_id, ref, done = finished(ctx, ref, "report")
    if done is not None:
        return done
    doc = collect(ctx, ref, run_id=run_id)
    out_dir = ctx.settings.reports_root / ref.replace("@", "-v")
    body = json.dumps(doc, indent=2, default=str).encode()
    write_atomic(out_dir / "report.json", body)
    html = render_html(doc).encode()
    write_atomic(out_dir / "report.html", html)
    output = {"json": str(out_dir / "report.json"), "html": str(out_dir / "report.html"),
              "sha256": hashlib.sha256(html).hexdigest(),
              "outcome": (doc["decision"] or {}).get("outcome")}
    return record(ctx, version_id, "report", output, status="written", run_id=run_id)


def render_html(doc: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("dataward", "templates"),
                      autoescape=select_autoescape(["html"]))
    return env.get_template("report.html.j2").render(doc=doc)


__all__ = ["collect", "report", "render_html", "version_dir"]
