"""The ``dataward`` command line: for people (tables) and scripts (``--json``, exit codes).

Exit codes: 0 ok, 1 the data was judged (quarantined or rejected), 2 bad input or
usage, 3 an internal error (a bug: the traceback is saved under DATAWARD_HOME/logs),
always with one readable line on stderr and never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dataward.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_JUDGED, EXIT_OK

app = typer.Typer(
    name="dataward",
    help="Data governance and poisoning screening before training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
lineage_app = typer.Typer(help="Provenance and parents of dataset versions.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
expectations_app = typer.Typer(help="Great Expectations suites per dataset kind.", no_args_is_help=True)
app.add_typer(lineage_app, name="lineage")
app.add_typer(audit_app, name="audit")
app.add_typer(expectations_app, name="expectations")


DATA_PATH_HELP = ("A Parquet, CSV, TSV, JSONL (optionally .gz) or Arrow/Feather file, a folder of "
                  "them (Spark output, datasets.save_to_disk), or an image folder with one "
                  "sub-folder per class.")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
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


def _ctx():
    from dataward.context import Context

    return Context()


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))


@app.command()
@handles_errors
def ingest(
    path: Annotated[Path, typer.Argument(help=DATA_PATH_HELP)],
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="The dataset's manifest (YAML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Record a dataset version: hash and store its files, provenance and licence verdict."""
    from dataward.stages.ingest import ingest as run_ingest

    result = run_ingest(_ctx(), path, manifest)
    out = {
        "ref": result.ref, "created": result.created, "status": result.status,
        "reason": result.reason, "rows": result.row_count, "content_hash": result.content_hash,
        "licence": result.licence.to_dict(),
    }
    if as_json:
        _print_json(out)
    else:
        verb = "ingested" if result.created else "already ingested (identical content)"
        print(f"{result.ref}: {verb}, {result.row_count} rows, "
              f"licence {result.licence.expression} ({result.licence.use_class})")
        if result.quarantined:
            print(f"{result.ref}: QUARANTINED: {result.reason}")
    raise typer.Exit(EXIT_JUDGED if result.quarantined else EXIT_OK)


@app.command()
@handles_errors
def datasets(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List every dataset version with its hash, status and licence."""
    from lineage.queries import list_versions

    ctx = _ctx()
    with ctx.session(read_only=True) as s:
        rows = list_versions(s)
    if as_json:
        _print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("version", "rows", "status", "licence", "content hash")
    for r in rows:
        table.add_row(r["ref"], str(r["rows"]), r["status"], r["licence"] or "-", r["content_hash"][:16])
    Console().print(table if rows else "no datasets yet: dataward ingest PATH --manifest M.yaml")


@lineage_app.command("show")
@handles_errors
def lineage_show(
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION]")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Provenance, licence, files and parents of a version (the latest if no version)."""
    from lineage.ingest import resolve
    from lineage.queries import describe

    ctx = _ctx()
    with ctx.session(read_only=True) as s:
        info = describe(s, resolve(s, ref))
    if as_json:
        _print_json(info)
        return
    _print_lineage(info)


def _print_lineage(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.tree import Tree

    p, lic = info["provenance"] or {}, info["licence"] or {}
    console = Console(soft_wrap=True)
    console.print(f"[bold]{info['ref']}[/bold]  status: {info['status']}"
                  + (f" ({info['status_reason']})" if info["status_reason"] else ""))
    console.print(f"  owner: {info['owner']}   rows: {info['rows']}   kind: {info['kind'] or '-'}")
    console.print(f"  content hash: {info['content_hash']}")
    console.print(f"  source: {p.get('source_uri')}   publisher: {p.get('publisher') or '-'}")
    if p.get("collection_method") or p.get("collected_from"):
        console.print(f"  collected: {p.get('collection_method') or '-'} "
                      f"({p.get('collected_from') or '?'} .. {p.get('collected_to') or '?'})")
    console.print(f"  acquired: {p.get('acquired_at')} by {p.get('acquired_by')}")
    console.print(f"  licence: {lic.get('expression')}  use: {lic.get('use_class')}  "
                  f"training: {'allowed' if lic.get('allowed_for_training') else 'NOT allowed'}")
    console.print(f"           {lic.get('reason')}", markup=False)
    for f in info["files"]:
        console.print(f"  file {f['path']}  {f['rows']} rows  {f['bytes']} B  sha256 {f['sha256'][:16]}",
                      markup=False)
    tree = Tree(f"{info['ref']} (parents)")

    def add(node, parents):
        for par in parents:
            add(node.add(f"{par['ref']}  [{par['status']}]  {par['licence']}"), par["parents"])

    add(tree, info["parents"])
    if info["parents"]:
        console.print(tree)


@audit_app.command("verify")
@handles_errors
def audit_verify(
    files: Annotated[bool, typer.Option("--files/--no-files", help="Also re-hash every stored file.")] = True,
) -> None:
    """Check the audit hash chain (and the stored files); exit 1 on any tampering."""
    from sqlalchemy import select

    from lineage.audit import verify_chain
    from lineage.models import DataFile

    ctx = _ctx()
    with ctx.session(read_only=True) as s:
        count, problems = verify_chain(s)
        checked = 0
        if files:
            seen = set()
            for f in s.execute(select(DataFile)).scalars():
                if (f.sha256, f.format) in seen:
                    continue
                seen.add((f.sha256, f.format))
                checked += 1
                issue = ctx.store.verify(f.sha256, f.format)
                if issue:
                    problems.append(f"{f.relpath}: {issue}")
    for p in problems:
        print(f"TAMPERED: {p}", file=sys.stderr)
    if problems:
        fail(f"audit verification failed: {len(problems)} problem(s)", EXIT_JUDGED)
    print(f"audit log intact: {count} entries verified" + (f", {checked} stored files verified" if files else ""))


@app.command()
@handles_errors
def run(
    path: Annotated[Path, typer.Argument(help=DATA_PATH_HELP)],
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="The dataset's manifest (YAML).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Run every stage in-process: ingest, validate, screen, decide, report, publish."""
    from dataward.pipeline import STAGES, run_pipeline
    from dataward.progress import progress_display

    with progress_display(total=len(STAGES) + 1, enabled=not quiet):
        summary = run_pipeline(_ctx(), path, manifest, trigger="cli")
    if as_json:
        _print_json(summary)
    else:
        print_summary(summary)
    raise typer.Exit(EXIT_OK if summary["outcome"] in ("approve", "trim") else EXIT_JUDGED)


def print_summary(summary: dict[str, Any]) -> None:
    again = "" if summary.get("created", True) else " (already ingested: identical content)"
    print(f"{summary['ref']}: decision {summary['outcome'].upper()}{again}")
    for r in summary["reasons"]:
        print(f"  - {r['check']}: {r['why']} -> {r['outcome']}")
    print(f"  rows: {summary['n_rows']}, flagged: {summary['n_flagged']}")
    if summary.get("flagged_by_screen"):
        print("  flagged per screen: " + ", ".join(f"{k} {v}" for k, v in summary["flagged_by_screen"].items()))
    if summary.get("screening_power"):
        print(f"  {summary['screening_power']}")
    print(f"  report: {summary['report']}")
    if summary.get("snapshot"):
        print(f"  snapshot: {summary['snapshot_ref']} at {summary['snapshot']}")


@app.command()
@handles_errors
def validate(
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION]")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Validate a version against its kind's Great Expectations suite (exit 1: quarantined)."""
    from dataward.stages.validate import validate as run_validate

    out = run_validate(_ctx(), ref)
    if as_json:
        _print_json(out)
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


@expectations_app.command("init")
@handles_errors
def expectations_init(
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION]")],
    kind: Annotated[str, typer.Option("--kind", help="The dataset kind the suite is for.")],
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
) -> None:
    """Scaffold a suite from an ingested version for a person to review and commit."""
    from lineage.ingest import data_paths, resolve
    from checks.validation import scaffold_suite

    ctx = _ctx()
    with ctx.session() as s:
        v = resolve(s, ref)
        paths = [p for p, _ in data_paths(ctx.store, v)]
        label = v.label_column
    path = scaffold_suite(paths, kind, project_root=ctx.settings.expectations_root,
                          label_col=label, overwrite=overwrite)
    print(f"suite for kind {kind!r} written to {path}: review it, then commit it")


@app.command()
@handles_errors
def screen(
    data: Annotated[Path, typer.Argument(help="A data file or folder to screen (any format `ingest` reads).")],
    label_col: Annotated[str, typer.Option("--label-col", help="The label column.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for scores.parquet and summary.json.")],
    reference: Annotated[Path | None, typer.Option("--reference", help="A trusted reference set (same columns).")] = None,
    features: Annotated[str | None, typer.Option("--features", help="Comma-separated feature columns.")] = None,
) -> None:
    """Screen a Parquet file for poisoned and mislabelled rows (no lineage records)."""
    from dataward.artifacts import write_results
    from screening import screen_table

    from dataward.progress import progress_display

    table = _read_table(data, "data")
    ref_table = _read_table(reference, "reference") if reference else None
    with progress_display():
        result = screen_table(table, label_col=label_col, reference=ref_table,
                              feature_cols=features.split(",") if features else None)
    write_results(result, out)
    n_flagged = int(result.scores["flagged"].sum())
    print(f"{len(result.scores)} rows screened, {n_flagged} flagged; wrote {out / 'scores.parquet'}")
    from screening.combine import power_statement

    line = power_statement(result.summary["combine"].get("detectable_attack") or [])
    if line:
        print(line)


def _read_table(path: Path, what: str):
    """A data file or folder in any format ingest reads, as one Arrow table."""
    import pyarrow as pa

    from lineage.errors import LineageInputError
    from lineage.files import read_path

    if not path.exists():
        fail(f"{what} file {path} does not exist")
    try:
        return read_path(path)  # any ingest format, an image folder as its index table
    except LineageInputError as exc:
        fail(f"{what}: {exc}")
    except (pa.ArrowException, OSError, ValueError) as exc:
        fail(f"{what} {path} is not readable: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")


def _register_command_modules() -> None:
    """Each module in :mod:`dataward.commands` adds its commands via ``register(app)``."""
    import importlib
    import pkgutil

    import dataward.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"dataward.commands.{info.name}").register(app)


_register_command_modules()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
