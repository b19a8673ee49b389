"""``dataward audit verify``: check the audit hash chain and the stored files."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dataward.commands._common import command_group, context, fail, handles_errors
from dataward.errors import EXIT_JUDGED

audit_app, register = command_group("audit", "The hash-chained audit log.")


@audit_app.command("verify")
@handles_errors
def audit_verify(
    files: Annotated[bool, typer.Option("--files/--no-files", help="Also re-hash every stored file.")] = True,
) -> None:
    """Check the audit hash chain (and the stored files); exit 1 on any tampering."""
    from sqlalchemy import select

    from lineage.audit import verify_chain
    from lineage.models import DataFile

    ctx = context()
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
