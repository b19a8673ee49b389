"""``dataward run PATH --manifest M``: every stage in-process, ingest to publish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataward.commands._common import (
    DATA_PATH_HELP,
    JsonFlag,
    context,
    handles_errors,
    print_json,
    print_summary,
)
from dataward.errors import EXIT_JUDGED, EXIT_OK


def register(app: typer.Typer) -> None:
    app.command("run")(run)


@handles_errors
def run(
    path: Annotated[Path, typer.Argument(help=DATA_PATH_HELP)],
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="The dataset's manifest (YAML).")],
    as_json: JsonFlag = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Run every stage in-process: ingest, validate, screen, decide, report, publish."""
    from dataward.pipeline import STAGES, run_pipeline
    from dataward.progress import progress_display

    with progress_display(total=len(STAGES) + 1, enabled=not quiet):
        summary = run_pipeline(context(), path, manifest, trigger="cli")
    if as_json:
        print_json(summary)
    else:
        print_summary(summary)
    raise typer.Exit(EXIT_OK if summary["outcome"] in ("approve", "trim") else EXIT_JUDGED)
