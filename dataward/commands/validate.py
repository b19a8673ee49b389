"""``dataward validate NAME[@VERSION]``: the Great Expectations suite of the version's kind."""

from __future__ import annotations

import typer

from dataward.commands._common import JsonFlag, VersionRef, context, handles_errors, print_json
from dataward.errors import EXIT_JUDGED, EXIT_OK


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


@handles_errors
def validate(
    ref: VersionRef,
    as_json: JsonFlag = False,
) -> None:
    """Validate a version against its kind's Great Expectations suite (exit 1: quarantined)."""
    from dataward.stages.validate import validate as run_validate

    out = run_validate(context(), ref)
    if as_json:
        print_json(out)
    else:
        print(f"{ref}: validation {out['status']}"
              + (f" ({out.get('n_expectations')} expectations, {out.get('n_rows')} rows)"
                 if out.get("n_expectations") is not None else ""))
        if out.get("reason"):
            print(f"  {out['reason']}")
        if out.get("stale"):
            print(f"  OUTDATED: {out['stale']}")
        for f in out.get("failed", []):
            print(f"  FAILED {f}")
        if out.get("data_docs"):
            print(f"  data docs: {out['data_docs']}")
    raise typer.Exit(EXIT_OK if out["success"] else EXIT_JUDGED)
