"""``dataward reference sample|confirm|show``: a trusted reference set a reviewer confirmed
from the version's own rows (see :mod:`dataward.governance.reference_review`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataward.commands._common import (
    JsonFlag,
    VersionRef,
    command_group,
    context,
    handles_errors,
    output_file,
    print_json,
    print_summary,
    writing,
)

reference_app, register = command_group(
    "reference", "Trusted reference sets: sample rows, have a reviewer confirm them.")


@reference_app.command("sample")
@handles_errors
def sample(
    ref: VersionRef,
    per_class: Annotated[int, typer.Option("--per-class", help="Rows drawn per class (all when fewer).")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the sample (JSON); default "
                                             "DATAWARD_HOME/references/NAME-vV-sample.json.")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the draw (0 to 2^32-1).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the sample document.")] = False,
) -> None:
    """Draw a seeded, class-stratified sample of a version's rows for a reviewer to check."""
    from dataward.governance.reference_review import default_sample_path, sample_reference, write_sample

    if out is not None:
        output_file(out)
    ctx = context()
    doc = sample_reference(ctx, ref, per_class=per_class, seed=seed)
    target = out or default_sample_path(ctx, doc["ref"])
    with writing(target):
        path, html = write_sample(doc, target)
    if as_json:
        print_json({**doc, "path": str(path), "html": str(html)})
        return
    for row in doc["rows"]:
        print(f"row {row['row_id']:>7}  label {row['label']!s:<12} {_shown(row['shown'])}")
    print(f"{len(doc['rows'])} rows of {doc['ref']} ({per_class} per class, seed {seed}) written to {path}"
          f" (to look at: {html})")
    print("check each row's label; write corrections as `ROW_ID: LABEL` lines (null leaves a row out), then: "
          f"dataward reference confirm {doc['ref']} --sample {path} --reviewer YOU [--corrections FILE]")


def _shown(shown: dict) -> str:
    if shown.get("image"):
        img = shown["image"]
        where = img.get("source") or "the version's row"
        return f"image {img.get('height')}x{img.get('width')} ({where})"
    if shown.get("text"):
        text = shown["text"]
        return text if len(text) <= 100 else text[:97] + "..."
    cells = ", ".join(f"{c}={v}" for c, v in shown.get("cells") or [])
    more = (shown.get("n_cells") or 0) - len(shown.get("cells") or [])
    return cells + (f" (+{more} columns)" if more > 0 else "")


@reference_app.command("confirm")
@handles_errors
def confirm(
    ref: VersionRef,
    sample_file: Annotated[Path, typer.Option("--sample", help="The file `dataward reference sample` wrote.")],
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Who confirms (must be you: "
                                                 "DATAWARD_ACTOR or the OS user).")] = None,
    corrections: Annotated[Path | None, typer.Option("--corrections", help="YAML/JSON `row_id: label` "
                                                     "(null: leave the row out).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record the sampled rows, with your corrections, as the version's trusted reference
    (NAME.reference@N) and re-run its screens with it (exit 1: the new decision judges the data)."""
    from dataward.errors import EXIT_JUDGED, EXIT_OK
    from dataward.governance.reference_review import confirm_reference
    from dataward.pipeline import rerun

    ctx = context()
    out = confirm_reference(ctx, ref, sample_path=sample_file, actor=ctx.settings.actor, reviewer=reviewer,
                            corrections_path=corrections, rerun=rerun)
    if as_json:
        print_json(out)
    else:
        print(f"{out['ref']}: reference {out['reference']} confirmed by {out['reviewer']} at {out['at']}: "
              f"{out['rows']} rows, {len(out['corrected'])} label(s) corrected, {len(out['dropped'])} left out"
              + ("" if out["created"] else " (identical to an earlier confirmation)"))
        if out.get("rerun"):
            print_summary(out["rerun"])
    summary = out.get("rerun") or {}
    raise typer.Exit(EXIT_OK if summary.get("outcome", "approve") in ("approve", "trim") else EXIT_JUDGED)


@reference_app.command("show")
@handles_errors
def show(
    ref: VersionRef,
    as_json: JsonFlag = False,
) -> None:
    """Which reference the version's last screen used, and which its next screen will use."""
    from dataward.governance.reference import latest_confirmed, previous_approval
    from dataward.stage_results import finished

    ctx = context()
    version_id, ref, screen = finished(ctx, ref, "screen")
    confirmed = latest_confirmed(ctx, version_id)
    info = {"ref": ref, "last_screen": (screen or {}).get("reference"),
            "confirmed": {k: v for k, v in confirmed.items() if k != "version_id"} if confirmed else None,
            "previous_approval": previous_approval(ctx, version_id)}
    if as_json:
        print_json(info)
        return
    last = info["last_screen"] or {}
    print(f"{ref}: last screen: {last.get('label') or ('not screened yet' if screen is None else 'not recorded')}")
    if confirmed:
        print(f"  confirmed reference (the next screen uses it): {confirmed['label']}")
    prev = info["previous_approval"]
    if prev:
        print(f"  last approved version: {prev['source_ref']} -> {prev['snapshot_ref']} "
              f"({prev['approval']}: {prev['approved_by']} on {prev['approved_on']})")
