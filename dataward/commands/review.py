"""``dataward review NAME@VERSION --approve|--reject --reviewer ID --reason TEXT`` and
``dataward review queue``: a reviewer's sign-off from the terminal."""

from __future__ import annotations

from typing import Annotated

import typer

from dataward.commands._common import JsonFlag, context, fail, handles_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("review")(review)
    app.command("review-queue")(review_queue)


@handles_errors
def review(
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION")],
    approve: Annotated[bool, typer.Option("--approve", help="Approve and publish the version.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject the version.")] = False,
    reviewer: Annotated[str, typer.Option(
        "--reviewer", help="Who signs off: must be the acting identity (DATAWARD_ACTOR, else the OS user), "
                           "one of the reviewers the decision policy names.")] = "",
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")] = "",
    report_sha256: Annotated[str | None, typer.Option(
        "--report-sha256", help="Hash of the report you read; refused if it is not the current one.")] = None,
    notify_airflow: Annotated[str | None, typer.Option(
        "--notify-airflow", metavar="URL",
        help="After an approval, record an event on Airflow's dataward://snapshots/approved asset "
             "through the Airflow REST API at URL (token in DATAWARD_AIRFLOW_TOKEN), so "
             "asset-scheduled training starts now. Without it the snapshot is published and "
             "training picks it up at its next asset event or run.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sign off a quarantined version: who, when, why and which report, in the audit log.

    An approval publishes the snapshot. Airflow learns of it only with --notify-airflow
    (the review page in the Airflow UI always records the asset event).
    """
    import os

    from dataward.airflow.rest import notify_airflow as notify
    from dataward.governance.review import APPROVE, FIRST_APPROVAL, REJECT, authorize_cli, sign_off
    from dataward.stages.publish import publish_approved

    if approve == reject:
        fail("give exactly one of --approve or --reject")
    if not reason.strip():
        fail("--reason TEXT is required")
    token = os.environ.get("DATAWARD_AIRFLOW_TOKEN", "")
    if notify_airflow and not token:
        fail("--notify-airflow needs an Airflow API token in DATAWARD_AIRFLOW_TOKEN")
    ctx = context()
    outcome = APPROVE if approve else REJECT
    who = authorize_cli(ctx, ref, actor=ctx.settings.actor, reviewer=reviewer or None, outcome=outcome)
    result = sign_off(ctx, ref, outcome=outcome, reviewer=who, reason=reason, publish=publish_approved,
                      report_sha256=report_sha256, via="cli")
    event = None
    if notify_airflow and result.created and (result.published or {}).get("published"):
        event = notify(notify_airflow, token, result.published)
    if as_json:
        print_json({**result.to_dict(), **({"airflow_event": event} if notify_airflow else {})})
        return
    if result.outcome == FIRST_APPROVAL:
        print(f"{result.ref}: first approval by {result.reviewer} at {result.at}; overriding the "
              f"quarantine needs {result.approvals_needed} distinct reviewers: it stays quarantined")
        return
    verb = "signed off" if result.created else "already signed off"
    print(f"{result.ref}: {verb}: {result.outcome} by {result.reviewer} at {result.at}")
    print(f"  report sha256 {result.report_sha256}")
    pub = result.published or {}
    if pub.get("published"):
        print(f"  published {pub.get('snapshot_ref')} at {pub.get('path')}")
    elif result.outcome == APPROVE:
        print(f"  not published: {pub.get('reason')}")
    if event is not None:
        print(f"  Airflow asset event {event['asset_event_id']} recorded" if event["notified"]
              else f"  no Airflow asset event: {event['reason']}")
    elif pub.get("published") and result.created:
        print("  Airflow was not notified: asset-scheduled training starts at the next asset event "
              "(use --notify-airflow URL to record one now)")


@handles_errors
def review_queue(as_json: JsonFlag = False) -> None:
    """Versions awaiting a reviewer's sign-off, with their reports."""
    from dataward.governance.review import awaiting_review

    queue = awaiting_review(context())
    if as_json:
        print_json(queue)
        return
    if not queue:
        print("no versions await review")
    for q in queue:
        why = "; ".join(r["why"] for r in q["reasons"] if r["outcome"] in ("quarantine", "reject"))
        print(f"{q['ref']}: {q['outcome']} - {why or q['status_reason'] or '-'}")
        print(f"  report {q['report']}  sha256 {q['report_sha256']}")
