"""The nightly digest: every version processed in a time window, its decision, its
report and whether it awaits a reviewer."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from dataward.context import Context
from dataward.errors import BadInput

_RELATIVE = re.compile(r"^([0-9]+)\s*([hdm])$")
_UNITS = {"h": "hours", "d": "days", "m": "minutes"}


def parse_since(text: str | None, *, now: datetime | None = None) -> datetime:
    """``24h``, ``7d``, ``90m``, an ISO date or date-time (UTC if no zone); default 24h ago.

    BadInput for text that is neither, or a time outside the calendar datetime can hold
    (``99999999999d`` ago, ``9999-12-31T23:59-05:00`` in UTC)."""
    now = now or datetime.now(timezone.utc)
    if not text:
        return now - timedelta(hours=24)
    m = _RELATIVE.match(text.strip().lower())
    try:
        if m:
            digits = m.group(1).lstrip("0") or "0"
            if len(digits) > 12:  # int() of a huge string is slow, and no calendar is that long
                raise OverflowError
            return now - timedelta(**{_UNITS[m.group(2)]: int(digits)})
        try:
            value = datetime.fromisoformat(text.strip())
        except ValueError:
            raise BadInput(f"cannot read time {text!r}: use an ISO date/time or 24h, 7d, 90m") from None
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise BadInput(f"time {text!r} is outside the calendar (years 1 to 9999)") from None


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC
    return dt


def build_digest(ctx: Context, since: datetime, until: datetime | None = None) -> dict[str, Any]:
    """Versions with any stage finished in ``[since, until)``, newest first."""
    from sqlalchemy import select

    from lineage.models import StageResult

    until = until or datetime.now(timezone.utc)
    entries: dict[int, dict[str, Any]] = {}
    with ctx.session(read_only=True) as s:
        rows = s.execute(select(StageResult).where(StageResult.finished_at >= since,
                                                   StageResult.finished_at < until)).scalars().all()
        for vid in {r.version_id for r in rows}:
            entries[vid] = _entry(s, vid)
    items = sorted(entries.values(), key=lambda e: (e["processed_at"] or "", e["ref"]), reverse=True)
    counts: dict[str, int] = {}
    for e in items:
        counts[e["outcome"] or "pending"] = counts.get(e["outcome"] or "pending", 0) + 1
    return {"since": since.isoformat(timespec="seconds"), "until": until.isoformat(timespec="seconds"),
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "counts": counts, "awaiting_review": sum(e["awaiting_review"] for e in items),
            "versions": items}


def version_entry(ctx: Context, ref: str) -> dict[str, Any]:
    """The digest entry of one version (what the review page shows)."""
    from lineage.ingest import resolve

    with ctx.session(read_only=True) as s:
        return _entry(s, resolve(s, ref).id)


def _entry(s, vid: int) -> dict[str, Any]:
    from sqlalchemy import select

    from lineage.models import DatasetVersion, Decision, StageResult

    v = s.get(DatasetVersion, vid)
    stages = {r.stage: r for r in s.execute(
        select(StageResult).where(StageResult.version_id == vid)).scalars()}
    decide = stages["decide"].output if "decide" in stages else None
    report = stages["report"].output if "report" in stages else None
    publish = stages["publish"].output if "publish" in stages else None
    reviews = s.execute(select(Decision).where(Decision.version_id == vid,
                                               Decision.decided_by != "policy")
                        .order_by(Decision.id)).scalars().all()
    last = max((_aware(r.finished_at) for r in stages.values()), default=None)
    review = None
    if reviews:
        r = reviews[-1]
        review = {"outcome": r.outcome, "reviewer": r.decided_by,
                  "reason": (r.rationale or {}).get("reason"),
                  "report_sha256": (r.rationale or {}).get("report_sha256"),
                  "at": (r.rationale or {}).get("at") or _aware(r.created_at).isoformat(timespec="seconds")}
    return {
        "ref": v.ref, "name": v.dataset.name, "version": v.version, "status": v.status,
        "status_reason": v.status_reason, "rows": v.row_count,
        "licence": v.licence.spdx_expression if v.licence else None,
        "outcome": (decide or {}).get("outcome"),
        "reasons": (decide or {}).get("reasons") or [],
        "n_flagged": (decide or {}).get("n_flagged"),
        "report": None if not report else {
            "html": report.get("html"), "pdf": report.get("pdf"), "json": report.get("json"),
            "sha256": report.get("sha256"), "dir": v.ref.replace("@", "-v")},
        "snapshot": (publish or {}).get("snapshot_ref"),
        "review": review,
        "awaiting_review": v.status == "quarantined" and review is None,
        "processed_at": last.isoformat(timespec="seconds") if last else None,
    }


def _file_links(entry: dict[str, Any]) -> dict[str, str | None]:
    rep = entry.get("report")
    if not rep:
        return {"report": None, "pdf": None, "json": None, "review": None}
    base = rep["dir"]
    return {"report": f"{base}/report.html", "pdf": f"{base}/report.pdf", "json": f"{base}/report.json",
            "review": None}


def render_digest_html(digest: dict[str, Any], *,
                       links: Callable[[dict[str, Any]], dict[str, str | None]] = _file_links,
                       title: str = "Dataward nightly digest") -> str:
    """HTML of ``digest``; ``links(entry)`` gives the report/pdf/json/review hrefs
    (default: paths relative to ``DATAWARD_HOME/reports``, where the digest file lives)."""
    from dataward.reports.render import environment

    rows = [{**e, "links": links(e)} for e in digest["versions"]]
    return environment().get_template("digest.html.j2").render(digest=digest, rows=rows, title=title)
