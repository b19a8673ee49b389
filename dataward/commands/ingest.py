"""``dataward ingest PATH --manifest M`` and ``dataward datasets``: record versions, list them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataward.commands._common import DATA_PATH_HELP, JsonFlag, context, handles_errors, print_json
from dataward.errors import EXIT_JUDGED, EXIT_OK


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("datasets")(datasets)


@handles_errors
def ingest(
    path: Annotated[Path, typer.Argument(help=DATA_PATH_HELP)],
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="The dataset's manifest (YAML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Record a dataset version: hash and store its files, provenance and licence verdict."""
    from dataward.stages.ingest import ingest as run_ingest

    result = run_ingest(context(), path, manifest)
    out = {
        "ref": result.ref, "created": result.created, "status": result.status,
        "reason": result.reason, "rows": result.row_count, "content_hash": result.content_hash,
        "licence": result.licence.to_dict(),
    }
    if as_json:
        print_json(out)
    else:
        verb = "ingested" if result.created else "already ingested (identical content)"
        print(f"{result.ref}: {verb}, {result.row_count} rows, "
              f"licence {result.licence.expression} ({result.licence.use_class})")
        if result.quarantined:
            print(f"{result.ref}: QUARANTINED: {result.reason}")
    raise typer.Exit(EXIT_JUDGED if result.quarantined else EXIT_OK)


@handles_errors
def datasets(as_json: JsonFlag = False) -> None:
    """List every dataset version with its hash, status and licence."""
    from lineage.queries import list_versions

    ctx = context()
    with ctx.session(read_only=True) as s:
        rows = list_versions(s)
    if as_json:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("version", "rows", "status", "licence", "content hash")
    for r in rows:  # cells as Text: values from the data are never read as markup
        table.add_row(*(Text(str(v)) for v in (r["ref"], r["rows"], r["status"], r["licence"] or "-",
                                                r["content_hash"][:16])))
    Console().print(table if rows else "no datasets yet: dataward ingest PATH --manifest M.yaml")
