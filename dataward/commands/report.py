"""``dataward report show|digest``: the compliance reports from the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataward.commands._common import (
    JsonFlag,
    VersionRef,
    command_group,
    context,
    handles_errors,
    output_file,
    print_json,
    writing,
)

report_app, register = command_group("report", "Compliance reports and the nightly digest.")


@report_app.command("digest")
@handles_errors
def digest(
    since: Annotated[str, typer.Option("--since", help="Start: ISO date/time, or 24h, 7d, 90m ago.")] = "24h",
    until: Annotated[str | None, typer.Option("--until", help="End (default now).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="HTML file (default: DATAWARD_HOME/reports/digest-....html).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the digest as JSON.")] = False,
) -> None:
    """Every version processed in a window, its decision and a link to its report."""
    import json
    import os

    from dataward.reports.digest import build_digest, parse_since, render_digest_html
    from dataward.stage_results import write_atomic

    if out is not None:
        output_file(out)
        output_file(out.with_suffix(".json"))
    ctx = context()
    start = parse_since(since)
    end = parse_since(until) if until else None
    d = build_digest(ctx, start, end)
    root = ctx.settings.reports_root
    stamp = d["until"].replace(":", "").replace("-", "")[:13]
    html_path = (out or root / f"digest-{stamp}.html").resolve()
    rel = os.path.relpath(root, html_path.parent)

    def links(entry):
        rep = entry.get("report")
        if not rep:
            return {"report": None, "pdf": None, "json": None, "review": None}
        base = f"{rel}/{rep['dir']}" if rel != "." else rep["dir"]
        return {"report": f"{base}/report.html", "pdf": f"{base}/report.pdf",
                "json": f"{base}/report.json", "review": None}

    with writing(html_path):
        write_atomic(html_path, render_digest_html(d, links=links).encode())
        write_atomic(html_path.with_suffix(".json"), json.dumps(d, indent=2, default=str).encode())
    d["html"] = str(html_path)
    if as_json:
        print_json(d)
        return
    print(f"{len(d['versions'])} version(s) processed since {d['since']}, "
          f"{d['awaiting_review']} awaiting review")
    for e in d["versions"]:
        print(f"  {e['ref']}: {e['outcome'] or 'pending'}  {e['status']}"
              + ("  AWAITING REVIEW" if e["awaiting_review"] else ""))
    print(f"digest: {html_path}")


@report_app.command("show")
@handles_errors
def show(
    ref: VersionRef,
    as_json: JsonFlag = False,
) -> None:
    """Where a version's report files are, and the hash a reviewer signs."""
    from dataward.stage_results import finished

    _, ref, rep = finished(context(), ref, "report")
    if rep is None:
        from dataward.errors import BadInput

        raise BadInput(f"{ref} has no report yet (dataward run, or the report stage)")
    if as_json:
        print_json({"ref": ref, **rep})
        return
    print(f"{ref}: decision {rep.get('outcome')}")
    for k in ("html", "pdf", "json"):
        if rep.get(k):
            print(f"  {k:4} {rep[k]}")
    print(f"  sha256 {rep.get('sha256')}")
