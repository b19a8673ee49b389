"""``dataward review NAME@VERSION --approve|--reject --reviewer ID --reason TEXT`` and
``dataward review queue``: a reviewer's sign-off from the terminal."""

from __future__ import annotations

from typing import Annotated

import typer

from dataward.cli import _ctx, _print_json, fail, handles_errors


def register(app: typer.Typer) -> None:
    app.command("review")(review)
    app.command("review-queue")(review_queue)


@handles_errors
def review(
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION")],
    approve: Annotated[bool, typer.Option("--approve", help="Approve and publish the version.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject the version.")] = False,
    reviewer: Annotated[str, typer.Option("--reviewer", help="Who signs off (recorded in the audit log).")] = "",
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")] = "",
    report_sha256: Annotated[str | None, typer.Option(
        "--report-sha256", help="Hash of the report you read; refused if it is not the current one.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Sign off a quarantined version: who, when, why and which report, in the audit log."""
    from dataward.review import APPROVE, REJECT, sign_off

    if approve == reject:
        fail("give exactly one of --approve or --reject")
    if not reviewer.strip():
        fail("--reviewer ID is required")
    if not reason.strip():
        fail("--reason TEXT is required")
    result = sign_off(_ctx(), ref, outcome=APPROVE if approve else REJECT, reviewer=reviewer,
                      reason=reason, report_sha256=report_sha256, via="cli")
    if as_json:
        _print_json(result.to_dict())
        return
    verb = "signed off" if result.created else "already signed off"
    print(f"{result.ref}: {verb}: {result.outcome} by {result.reviewer} at {result.at}")
    print(f"  report sha256 {result.report_sha256}")
    pub = result.published or {}
    if pub.get("published"):
        print(f"  published {pub.get('snapshot_ref')} at {pub.get('path')}")
    elif result.outcome == APPROVE:
        print(f"  not published: {pub.get('reason')}")


@handles_errors
def review_queue(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Versions awaiting a reviewer's sign-off, with their reports."""
    from dataward.review import awaiting_review

    queue = awaiting_review(_ctx())
    if as_json:
        _print_json(queue)
        return
    if not queue:
        print("no versions await review")
    for q in queue:
        why = "; ".join(r["why"] for r in q["reasons"] if r["outcome"] in ("quarantine", "reject"))
        print(f"{q['ref']}: {q['outcome']} - {why or q['status_reason'] or '-'}")
        print(f"  report {q['report']}  sha256 {q['report_sha256']}")
