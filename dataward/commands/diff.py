"""``dataward diff NAME@A NAME@B``: rows added, removed and relabelled, schema, labels, drift."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dataward.commands._common import context, handles_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)


@handles_errors
def diff(
    ref_a: Annotated[str, typer.Argument(metavar="NAME@A", help="The older version.")],
    ref_b: Annotated[str, typer.Argument(metavar="NAME@B", help="The newer version.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
) -> None:
    """Compare two versions: rows added / removed / relabelled, schema, label shift, drift."""
    from dataward.diff import diff_versions

    out = diff_versions(context(), ref_a, ref_b)
    if as_json:
        print_json(out)
    else:
        print_diff(out)


def print_diff(d: dict[str, Any]) -> None:
    r = d["rows"]
    print(f"{d['a']} -> {d['b']}" + ("  (identical content)" if d["same_content"] else ""))
    print(f"  rows: {r['n_a']} -> {r['n_b']}; unchanged {r['unchanged']}, added {r['added']}, "
          f"removed {r['removed']}, relabelled {r['changed']}")
    s = d["schema"]
    if s["changed"]:
        parts = ([f"+{c}" for c in s["added"]] + [f"-{c}" for c in s["removed"]]
                 + [f"{t['column']}: {t['from']} -> {t['to']}" for t in s["retyped"]])
        print("  schema: " + ", ".join(parts[:12]) + (" ..." if len(parts) > 12 else ""))
    else:
        print("  schema: unchanged")
    if d.get("labels"):
        lab = d["labels"]
        print(f"  label shift: total variation {lab['total_variation']:.4f}"
              + (f", new classes {lab['new_classes']}" if lab["new_classes"] else "")
              + (f", dropped classes {lab['dropped_classes']}" if lab["dropped_classes"] else ""))
    dr = d["drift"]
    if dr["columns"]:
        top = ", ".join(f"{c} (PSI {dr['columns'][c]['psi']:.3f}, KS {dr['columns'][c]['ks']:.3f})"
                        for c in dr["top"][:5])
        print(f"  drift: {dr['n_major']} column(s) PSI > 0.25, {dr['n_moderate']} moderate; top: {top}")
    nf = d.get("newly_flagged")
    if nf is not None:
        print(f"  flagged in {d['b']}: {nf['n_flagged_b']}, of which {nf['arrived_with_b']} arrived with it")
    else:
        print(f"  flagged: {d['b']} has not been screened")
