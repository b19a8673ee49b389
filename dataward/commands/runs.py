"""``dataward runs``: the pipeline runs, with dead ones marked abandoned."""

from __future__ import annotations

from typing import Annotated

import typer

from dataward.commands._common import JsonFlag, context, handles_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)


@handles_errors
def runs(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1_000_000, clamp=True,
                                       help="How many runs, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """List pipeline runs; a run whose process died is marked abandoned first (where and when
    it was last seen)."""
    from dataward.runs import list_runs, sweep_abandoned

    ctx = context()
    marked = sweep_abandoned(ctx, actor=ctx.settings.actor)
    rows = list_runs(ctx, limit=limit)
    if as_json:
        print_json({"marked_abandoned": marked, "runs": rows})
        return
    for m in marked:
        print(f"marked abandoned: run {m['run_id']} ({m['ref'] or '-'}): {m['why']}")
    if not rows:
        print("no pipeline runs recorded")
    for r in rows:
        print(f"{r['started_at']}  {r['status']:9} {r['trigger']:15} {r['ref'] or '-':30} {r['run_id']}"
              + (f"  ({r['note']})" if r["note"] else ""))
