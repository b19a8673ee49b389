"""``dataward lineage graph [--run RUN_ID]``: the OpenLineage events drawn as a Mermaid flowchart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    from dataward.cli import handles_errors, lineage_app

    @lineage_app.command("graph")
    @handles_errors
    def graph(
        run: Annotated[str | None, typer.Option("--run", help="Only this pipeline run (the run id "
                                                "`dataward run --json` prints) and its stage runs.")] = None,
        events: Annotated[Path | None, typer.Option("--events", help="An OpenLineage JSON-lines file "
                                                    "(default: this installation's).")] = None,
    ) -> None:
        """Print the lineage graph the OpenLineage events describe (Mermaid flowchart)."""
        import json

        from dataward.cli import _ctx
        from dataward.errors import BadInput
        from dataward.lineage_graph import in_run, mermaid, read_events

        path = events or _ctx().emitter.events_file
        if not path.is_file():
            raise BadInput(f"no OpenLineage events at {path}")
        try:
            found = read_events(path)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path} is not OpenLineage JSON lines: {exc}") from None
        if run:
            found = in_run(found, run)
            if not found:
                raise BadInput(f"no events of run {run} in {path}")
        print(mermaid(found), end="")
