"""The ``dataward`` command line: for people (tables) and scripts (``--json``, exit codes).

This module only assembles the Typer app from :mod:`dataward.commands` (one module per
command or command group) and holds the console-script entry point.

Exit codes: 0 ok, 1 the data was judged (quarantined or rejected), 2 bad input or
usage, 3 an internal error (a bug: the traceback is saved under DATAWARD_HOME/logs),
always with one readable line on stderr and never a traceback.
"""

from __future__ import annotations

from typing import Annotated

import typer
import typer.core

from dataward.commands import (
    audit,
    diff,
    expectations,
    export,
    ingest,
    lineage,
    reference,
    report,
    rerun,
    review,
    run,
    runs,
    screen,
    validate,
)


class _OneLineUsageErrors(typer.core.TyperGroup):
    """A usage error (an unknown option, a missing argument, a value of the wrong type) is
    one ``dataward: ...`` line on stderr and exit 2, like every other refusal; click would
    print a usage box of several lines. Help (``--help``, no arguments) prints as before."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        import sys

        # Typer vendors its own click (typer._click): the usage errors are its classes.
        from typer._click import exceptions as click_errors

        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            from dataward.errors import one_line

            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "dataward"
            print(f"dataward: {one_line(exc.format_message())} (usage: {where} --help)", file=sys.stderr)
            sys.exit(exc.exit_code)
        except typer.Abort:
            print("dataward: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="dataward",
    help="Data governance and poisoning screening before training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_OneLineUsageErrors,
)

#: Registration order is the order ``dataward --help`` lists the commands in.
COMMAND_MODULES = (ingest, lineage, audit, expectations, run, validate, screen,
                   diff, export, reference, report, rerun, review, runs)

for _module in COMMAND_MODULES:
    _module.register(app)


def _print_version(value: bool) -> None:
    if value:
        from dataward.config import code_version

        typer.echo(f"dataward {code_version()}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the Dataward version (the one reports name) and exit.")] = False) -> None:
    """Data governance and poisoning screening before training."""


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
