"""The ``dataward`` command line: for people (tables) and scripts (``--json``, exit codes).

Exit codes: 0 ok, 1 the data was judged (quarantined or rejected), 2 bad input or
usage, always with one readable line on stderr and never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dataward.errors import EXIT_BAD_INPUT, EXIT_JUDGED, EXIT_OK

app = typer.Typer(
    name="dataward",
    help="Data governance and poisoning screening before training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
lineage_app = typer.Typer(help="Provenance and parents of dataset versions.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(lineage_app, name="lineage")
app.add_typer(audit_app, name="audit")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    print(f"dataward: {message}", file=sys.stderr)
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

    return wrapper


def _ctx():
    from dataward.context import Context

    return Context()


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))


@app.command()
@handles_errors
def ingest(
    path: Annotated[Path, typer.Argument(help="A Parquet, CSV or JSONL file, or a folder of them.")],
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
    with ctx.session() as s:
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
    with ctx.session() as s:
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
    with ctx.session() as s:
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


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
