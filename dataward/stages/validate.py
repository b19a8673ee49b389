"""Validate stage: run the dataset kind's Great Expectations suite (GX imported lazily)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from dataward.context import Context
from dataward.reports.words import path_roots
from dataward.stage_results import finished, record
from dataward.stages.outputs import ValidateOutput
from lineage.ingest import data_paths
from lineage.models import STATUS_QUARANTINED, STATUS_VALIDATED, CheckResult, DatasetVersion, StageResult


def validate(ctx: Context, ref: str, *, run_id: str | None = None) -> ValidateOutput:
    """Validate ``ref`` against the suite for its ``kind``; idempotent.

    Returns the recorded output: ``success``, ``status`` (passed | failed | missing_suite),
    ``failed`` (one line per failing expectation), ``outcomes`` and ``data_docs``.
    A failing suite, or a kind without a suite, quarantines the version.
    """
    from checks.validation import SuiteNotFound, validate_files
    version_id, ref, done = finished(ctx, ref, "validate")
    if done is not None:
        stale = stale_outcome(ctx, version_id, done, ref)
        return {**done, "stale": stale} if stale else done
    with ctx.session() as s:
        v = s.get(DatasetVersion, version_id)
        kind = v.kind
        paths = [p for p, _ in data_paths(ctx.store, v)]
    docs_dir = ctx.settings.home / "data_docs"
    if not kind:
        output = ValidateOutput(success=False, status="missing_suite", kind=None, failed=[],
                                reason="the manifest names no 'kind', so no expectation suite applies")
    else:
        try:
            outcome = validate_files(paths, kind, project_root=ctx.settings.expectations_root,
                                     data_docs_dir=docs_dir, run_name=f"{ref}",
                                     gx_root=ctx.settings.home / "gx")
        except SuiteNotFound as exc:
            output = ValidateOutput(success=False, status="missing_suite", kind=kind, failed=[],
                                    reason=missing_suite_reason(ctx, ref, exc))
        else:
            failed = [_describe(o) for o in outcome.failed]
            output = ValidateOutput(
                success=bool(outcome.success), status="passed" if outcome.success else "failed",
                kind=kind, suite=outcome.suite_name, failed=failed,
                suite_sha256=_suite_digest(ctx, kind),
                n_expectations=len(outcome.outcomes), n_rows=outcome.n_rows,
                elapsed_s=round(outcome.elapsed_s, 3), data_docs=outcome.data_docs_path,
                n_batches=outcome.n_batches,
                checkpoint=next((o.details.get("checkpoint") for o in outcome.outcomes
                                 if o.details.get("checkpoint")), None),
                outcomes=outcome.to_dict().get("outcomes", []),
            )
    ok = output["success"]
    reason = None if ok else (output.get("reason") or "validation failed: " + "; ".join(output["failed"][:3]))

    def add_check(s, v):
        s.add(CheckResult(version_id=v.id, run_id=run_id, check=f"gx:{kind or '-'}", success=ok,
                          summary="passed" if ok else reason, details=output))

    return record(ctx, version_id, "validate", output, status=output["status"], run_id=run_id,
                  new_status=STATUS_VALIDATED if ok else STATUS_QUARANTINED, reason=reason,
                  extra=add_check)


def missing_suite_reason(ctx: Context, ref: str, exc) -> str:
    """The missing-suite finding for people (terminal, report, review page): the suites'
    folder relative to the project or ``DATAWARD_HOME``, and the command that drafts one."""
    from checks.validation import SuiteNotFound
    where = Path(exc.suites_dir).resolve()
    shown = ".../" + "/".join(where.parts[-2:])  # outside every known root: its last two parts
    for root, label in path_roots(ctx.settings):  # most specific first
        if where.is_relative_to(root):
            rest = where.relative_to(root).as_posix()
            shown = "/".join(p for p in (label, "" if rest == "." else rest) if p) or "."
            break
    return str(SuiteNotFound(exc.kind, shown, remedy=f"Create one with `dataward expectations init {ref} "
                                                    f"--kind {exc.kind}`, review it and commit it"))


def _suite_file(ctx: Context, kind: str):
    return ctx.settings.expectations_root / "gx" / "expectations" / f"{kind}.json"


def _suite_digest(ctx: Context, kind: str) -> str | None:
    try:
        return hashlib.sha256(_suite_file(ctx, kind).read_bytes()).hexdigest()
    except OSError:
        return None


def stale_outcome(ctx: Context, version_id: int, done: ValidateOutput, ref: str = "NAME@VERSION") -> str | None:
    """Why the recorded validation outcome is older than the suite it used (None: it is not).

    A kind that had no suite and has one now, a suite whose content changed since (its
    recorded SHA-256), or, for outcomes recorded before the hash was kept, a suite file
    modified after the outcome was recorded.
    """
    kind = done.get("kind")
    if not kind:
        return None
    path = _suite_file(ctx, kind)
    with ctx.session(read_only=True) as s:
        at = s.execute(select(StageResult.finished_at).where(StageResult.version_id == version_id,
                                                             StageResult.stage == "validate")).scalar()
    at = at.replace(tzinfo=timezone.utc) if at is not None and at.tzinfo is None else at
    when = at.isoformat(timespec="seconds") if at else "?"
    hint = f"re-run it with `dataward rerun {ref} --from validate --reason TEXT`"
    if done.get("status") == "missing_suite":
        if path.is_file():
            return f"this outcome ({when}) predates the suite for kind {kind!r} now at {path}: {hint}"
        return None
    if not path.is_file():
        return f"the suite for kind {kind!r} that this outcome used is gone from {path}"
    recorded = done.get("suite_sha256")
    if recorded:
        if recorded != _suite_digest(ctx, kind):
            return f"the suite for kind {kind!r} changed after this outcome ({when}): {hint}"
        return None
    modified = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    if at is not None and modified > at:
        return (f"the suite for kind {kind!r} was modified ({modified.isoformat(timespec='seconds')}) "
                f"after this outcome ({when}): {hint}")
    return None


def _describe(o) -> str:
    where = f" on {o.column}" if o.column else ""
    return f"{o.expectation_type}{where} (observed {o.observed_value!r})"
