"""``dataward rerun NAME@VERSION [--from STAGE] --reason TEXT`` and ``dataward history``:
remediation after a suite, policy or reference changed, with the old outcomes kept."""

from __future__ import annotations

from typing import Annotated

import typer

from dataward.commands._common import JsonFlag, VersionRef, context, handles_errors, print_json, print_summary


def register(app: typer.Typer) -> None:
    app.command("rerun")(rerun)
    app.command("history")(history)


@handles_errors
def rerun(
    ref: VersionRef,
    from_stage: Annotated[str, typer.Option(
        "--from", help="The first stage to run again: validate, screen, decide or report; "
                       "every later stage runs again too. licence: judge the licence again under "
                       "the licence policy in force, then decide and report.")] = "validate",
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded with the new outcome).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Re-run a stage and everything after it on the same content; the earlier outcomes stay
    in the history as superseded (exit 1: the new decision still judges the data)."""
    from dataward.errors import EXIT_JUDGED, EXIT_OK
    from dataward.pipeline import rerun as run_again

    ctx = context()
    summary = run_again(ctx, ref, from_stage=from_stage, reason=reason, actor=ctx.settings.actor)
    if as_json:
        print_json(summary)
    else:
        print(f"{summary['ref']}: re-ran from {summary['from_stage']} ({summary['reason']}); "
              f"{len(summary['superseded'])} earlier result(s) kept as superseded")
        print_summary(summary)
    raise typer.Exit(EXIT_OK if summary["outcome"] in ("approve", "trim") else EXIT_JUDGED)


@handles_errors
def history(
    ref: VersionRef,
    as_json: JsonFlag = False,
) -> None:
    """Every stage outcome and decision a version had: superseded ones first, then the current."""
    from dataward.governance.remediation import history as version_history

    entries = version_history(context(), ref)
    if as_json:
        print_json(entries)
        return
    for e in entries:
        who = f" by {e['decided_by']}" if e.get("decided_by") else ""
        tail = (f"  SUPERSEDED {e['superseded_at']}: {e['reason']}" if e["superseded"] else "  current")
        print(f"{e['recorded_at'] or '-':25} {e['stage']:9} {e['status']}{who}{tail}")
