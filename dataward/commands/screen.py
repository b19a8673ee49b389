"""``dataward screen DATA --label-col COL --out DIR``: the screens on a file, no lineage records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dataward.commands._common import fail, handles_errors, output_folder, writing


def register(app: typer.Typer) -> None:
    app.command("screen")(screen)


@handles_errors
def screen(
    data: Annotated[Path, typer.Argument(help="A data file or folder to screen (any format `ingest` reads).")],
    label_col: Annotated[str, typer.Option("--label-col", help="The label column.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for scores.parquet and summary.json.")],
    reference: Annotated[Path | None, typer.Option(
        "--reference", help="A trusted reference set (same columns).")] = None,
    features: Annotated[str | None, typer.Option("--features", help="Comma-separated feature columns.")] = None,
) -> None:
    """Screen a Parquet file for poisoned and mislabelled rows (no lineage records)."""
    from dataward.artifacts import write_results
    from dataward.progress import progress_display
    from dataward.reports.verdict_text import power_statement, with_rule_text
    from screening import screen_table

    output_folder(out)
    from dataward.labels import missing_labels

    table = read_data(data, "data")
    ref_table = read_data(reference, "reference") if reference else None
    for what, t in (("data", table), ("reference", ref_table)):
        why = missing_labels(t, label_col) if t is not None else None
        if why:
            fail(f"{what}: {why}")
    with progress_display():
        result = screen_table(table, label_col=label_col, reference=ref_table,
                              feature_cols=features.split(",") if features else None)
    with writing(out):
        with_rule_text(result.summary)
        write_results(result, out)
    n_flagged = int(result.scores["flagged"].sum())
    print(f"{len(result.scores)} rows screened, {n_flagged} flagged; wrote {out / 'scores.parquet'}")
    line = power_statement(result.summary["combine"].get("detectable_attack") or [])
    if line:
        print(line)


def read_data(path: Path, what: str):
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"{what} {path} is not readable: {first}")
