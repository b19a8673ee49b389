"""``dataward export croissant|card NAME.approved@N``: standard metadata for a published snapshot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from dataward.commands._common import context, handles_errors, output_file, output_folder, writing

FORMATS = ("croissant", "card")


def register(app: typer.Typer) -> None:
    app.command("export")(export)


@handles_errors
def export(
    what: Annotated[str, typer.Argument(metavar="croissant|card",
                                        help="croissant: Croissant 1.x JSON-LD with its RAI fields; "
                                             "card: a Hugging Face style dataset card (README.md).")],
    ref: Annotated[str, typer.Argument(metavar="NAME@V", help="A published snapshot (NAME.approved@N).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File or folder to write "
                                             "(default: beside the snapshot).")] = None,
) -> None:
    """Write a snapshot's Croissant description or dataset card."""
    from dataward.errors import BadInput
    from dataward.export.metadata_export import export as write

    if what not in FORMATS:
        raise BadInput(f"cannot export {what!r}: choose croissant or card")
    if out is not None:  # a folder (existing, or named with a trailing /) or a file
        if out.is_dir() or str(out).endswith(("/", os.sep)):
            output_folder(out)
        else:
            output_file(out)
    with writing(out or Path("(beside the snapshot)")):
        print(write(context(), ref, what, out))
