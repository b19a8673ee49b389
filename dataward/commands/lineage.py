"""``dataward lineage show|graph``: a version's provenance and parents, and the lineage
graph the OpenLineage events describe (Mermaid flowchart)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dataward.commands._common import JsonFlag, VersionRef, command_group, context, handles_errors, print_json

lineage_app, register = command_group("lineage", "Provenance and parents of dataset versions.")


@lineage_app.command("show")
@handles_errors
def lineage_show(
    ref: VersionRef,
    as_json: JsonFlag = False,
) -> None:
    """Provenance, licence, files and parents of a version (the latest if no version)."""
    from lineage.ingest import resolve
    from lineage.queries import describe

    ctx = context()
    with ctx.session(read_only=True) as s:
        info = describe(s, resolve(s, ref))
    if as_json:
        print_json(info)
        return
    _print_lineage(info)


def _print_lineage(info: dict[str, Any]) -> None:
    """Every value here came from a manifest or the data: printed as text, never as rich
    markup (an owner '[/bold]' is a name, not a closing tag)."""
    from rich.console import Console
    from rich.text import Text
    from rich.tree import Tree

    p, lic = info["provenance"] or {}, info["licence"] or {}
    console = Console(soft_wrap=True, highlight=False)

    def say(line: str) -> None:
        console.print(line, markup=False)

    title = Text(str(info["ref"]), style="bold")
    title.append(f"  status: {info['status']}" + (f" ({info['status_reason']})" if info["status_reason"] else ""))
    console.print(title)
    say(f"  owner: {info['owner']}   rows: {info['rows']}   kind: {info['kind'] or '-'}")
    say(f"  content hash: {info['content_hash']}")
    say(f"  source: {p.get('source_uri')}   publisher: {p.get('publisher') or '-'}")
    if p.get("collection_method") or p.get("collected_from"):
        say(f"  collected: {p.get('collection_method') or '-'} "
            f"({p.get('collected_from') or '?'} .. {p.get('collected_to') or '?'})")
    say(f"  acquired: {p.get('acquired_at')} by {p.get('acquired_by')}")
    say(f"  licence: {lic.get('expression')}  use: {lic.get('use_class')}  "
        f"training: {'allowed' if lic.get('allowed_for_training') else 'NOT allowed'}")
    say(f"           {lic.get('reason')}")
    for f in info["files"]:
        say(f"  file {f['path']}  {f['rows']} rows  {f['bytes']} B  sha256 {f['sha256'][:16]}")
    snap = info.get("snapshot")
    if snap:
        changes = snap["relabels"]
        say(f"  snapshot: {snap['excluded_rows']} row(s) left out, {len(changes)} relabelled"
            + (": " + ", ".join(f"source row {r}: {old!r} -> {new!r}" for r, old, new in changes[:10])
               + (" ..." if len(changes) > 10 else "") if changes else ""))
    tree = Tree(Text(f"{info['ref']} (parents)"))

    def add(node, parents):
        for par in parents:
            add(node.add(Text(f"{par['ref']}  [{par['status']}]  {par['licence']}")), par["parents"])

    add(tree, info["parents"])
    if info["parents"]:
        console.print(tree)


@lineage_app.command("graph")
@handles_errors
def graph(
    run: Annotated[str | None, typer.Option("--run", help="Only this pipeline run (the run id "
                                            "`dataward run --json` prints) and its stage runs.")] = None,
    events: Annotated[Path | None, typer.Option("--events", help="An OpenLineage JSON-lines file "
                                                "(default: this installation's).")] = None,
) -> None:
    """Print the lineage graph the OpenLineage events describe (Mermaid flowchart)."""
    from dataward.errors import BadInput
    from dataward.export.lineage_graph import NotAnEvent, in_run, mermaid, read_events

    path = events or context().emitter.events_file
    if not path.is_file():
        raise BadInput(f"no OpenLineage events at {path}")
    try:
        found = read_events(path)
    except (NotAnEvent, UnicodeDecodeError) as exc:
        raise BadInput(f"{path} is not OpenLineage JSON lines: {exc}") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    if run:
        found = in_run(found, run)
        if not found:
            raise BadInput(f"no events of run {run} in {path}")
    print(mermaid(found), end="")
