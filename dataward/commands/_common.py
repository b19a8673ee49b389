"""What every command shares: the error handling that turns the layers' errors into one
stderr line and an exit code, the context, JSON printing, and the pipeline summary.

Exit codes: 0 ok, 1 the data was judged (quarantined or rejected), 2 bad input or
usage, 3 an internal error (a bug: the traceback is saved under DATAWARD_HOME/logs),
always with one readable line on stderr and never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from dataward.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK

#: A dataset version on the command line (no version: the latest).
VersionRef = Annotated[str, typer.Argument(metavar="NAME[@VERSION]")]
#: ``--json``: print the result as JSON for scripts.
JsonFlag = Annotated[bool, typer.Option("--json")]

DATA_PATH_HELP = ("A Parquet, CSV, TSV, JSONL (optionally .gz) or Arrow/Feather file, a folder of "
                  "them (Spark output, datasets.save_to_disk), or an image folder with one "
                  "sub-folder per class.")


def command_group(name: str, help: str) -> tuple[typer.Typer, Callable[[typer.Typer], None]]:
    """A sub-command group ``dataward NAME COMMAND`` (without a command it prints its help)
    and the ``register(app)`` that adds it to the app."""
    group = typer.Typer(help=help, no_args_is_help=True)

    def register(app: typer.Typer) -> None:
        app.add_typer(group, name=name)

    return group, register


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """Print ``dataward: MESSAGE`` (one line) on stderr and exit with ``code``."""
    from dataward.errors import one_line

    print(f"dataward: {one_line(message)}", file=sys.stderr)
    raise typer.Exit(code)


def handles_errors(fn):
    """Turn the layers' bad-input errors into one stderr line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from dataward.errors import DatawardError, bad_input_types

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except DatawardError as exc:
            fail(str(exc), exc.exit_code)
        except bad_input_types() as exc:
            fail(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:  # `dataward datasets | head`: the reader left, nothing went wrong
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_OK) from None
        except Exception as exc:  # a bug, not bad input: one line here, the traceback on disk
            from dataward.errors import one_line

            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            fail(f"internal error ({type(exc).__name__}: {one_line(first, 160)}); "
                 f"traceback saved to {_save_traceback()}", EXIT_INTERNAL)

    return wrapper


def _save_traceback() -> str:
    import tempfile
    import traceback
    from datetime import datetime, timezone

    from dataward.config import load_settings

    try:
        folder = load_settings().home / "logs"
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    path = folder / f"crash-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}.txt"
    path.write_text(traceback.format_exc())
    return str(path)


def output_folder(path: Path, option: str = "--out") -> Path:
    """``path`` if it is, or can be created as, a folder this process can write in;
    BadInput (exit 2, nothing written) if not: an existing file, a parent that is a file,
    no permission. Checked before any work, so a refusal costs nothing."""
    from dataward.errors import BadInput

    if path.exists() and not path.is_dir():
        raise BadInput(f"{option} {path} is a file, not a folder")
    _check_can_create(path, option)
    return path


def output_file(path: Path, option: str = "--out") -> Path:
    """``path`` if it can be written as a file (replaced if it is one); BadInput if it is a
    folder or its folder cannot be created or written in."""
    from dataward.errors import BadInput

    if path.is_dir():
        raise BadInput(f"{option} {path} is a folder: name the file to write")
    if path.exists() and not path.is_file():
        raise BadInput(f"{option} {path} is not a regular file")
    _check_can_create(path.parent if path.parent != path else path, option, shown=path)
    return path


def _check_can_create(folder: Path, option: str, *, shown: Path | None = None) -> None:
    import os

    from dataward.errors import BadInput

    shown = shown or folder
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            raise BadInput(f"cannot write {option} {shown}: {existing} is a broken symlink")
        existing = existing.parent
    if not existing.is_dir():
        raise BadInput(f"cannot write {option} {shown}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write {option} {shown}: no permission to write in {existing}")


def writing(path: Path, option: str = "--out"):
    """A context in which an OSError while writing ``path`` (the disk is full, the folder
    went away) is one line and exit 2, not an internal error."""
    import contextlib

    from dataward.errors import BadInput

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except OSError as exc:
            raise BadInput(f"cannot write {option} {path}: {exc.strerror or exc}") from None

    return guard()


def context():
    """This installation's :class:`dataward.context.Context` (from the environment)."""
    from dataward.context import Context

    return Context()


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))


def print_summary(summary: dict[str, Any]) -> None:
    """A pipeline run's (or re-run's) outcome for people: decision, reasons, counts, files.

    The reasons in the report's words (:mod:`dataward.reports.words`): folders relative to
    ``DATAWARD_HOME`` or the project, remedies as ``dataward`` commands, also for reasons
    recorded by an earlier release."""
    from dataward.reports.words import for_people, path_roots

    roots = path_roots(context().settings)
    again = "" if summary.get("created", True) else " (already ingested: identical content)"
    print(f"{summary['ref']}: decision {summary['outcome'].upper()}{again}")
    for r in summary["reasons"]:
        why = for_people(str(r["why"]), roots=roots, ref=summary["ref"], kind=summary.get("kind"))
        print(f"  - {r['check']}: {why} -> {r['outcome']}")
    print(f"  rows: {summary['n_rows']}, flagged: {summary['n_flagged']}")
    if summary.get("flagged_by_screen"):
        print("  flagged per screen: " + ", ".join(f"{k} {v}" for k, v in summary["flagged_by_screen"].items()))
    if summary.get("reference"):
        print(f"  reference: {summary['reference']}")
    if summary.get("screening_power"):
        print(f"  {summary['screening_power']}")
    print(f"  report: {summary['report']}")
    if summary.get("snapshot"):
        print(f"  snapshot: {summary['snapshot_ref']} at {summary['snapshot']}")
