"""``dataward expectations init NAME[@VERSION] --kind KIND``: scaffold a suite for review."""

from __future__ import annotations

from typing import Annotated

import typer

from dataward.commands._common import VersionRef, command_group, context, handles_errors

expectations_app, register = command_group("expectations", "Great Expectations suites per dataset kind.")


@expectations_app.command("init")
@handles_errors
def expectations_init(
    ref: VersionRef,
    kind: Annotated[str, typer.Option("--kind", help="The dataset kind the suite is for.")],
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
) -> None:
    """Scaffold a suite from an ingested version for a person to review and commit."""
    from checks.validation import scaffold_suite
    from lineage.ingest import data_paths, resolve

    ctx = context()
    with ctx.session() as s:
        v = resolve(s, ref)
        paths = [p for p, _ in data_paths(ctx.store, v)]
        label = v.label_column
    path = scaffold_suite(paths, kind, project_root=ctx.settings.expectations_root,
                          label_col=label, overwrite=overwrite)
    print(f"suite for kind {kind!r} written to {path}: review it, then commit it")
