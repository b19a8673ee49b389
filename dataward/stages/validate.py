"""Validate stage: run the dataset kind's Great Expectations suite (GX imported lazily)."""

from __future__ import annotations

from typing import Any

from dataward.context import Context
from dataward.stages.common import finished, record
from lineage.models import STATUS_QUARANTINED, STATUS_VALIDATED, CheckResult, DatasetVersion


def validate(ctx: Context, ref: str, *, run_id: str | None = None) -> dict[str, Any]:
    """Validate ``ref`` against the suite for its ``kind``; idempotent.

    Returns the recorded output: ``success``, ``status`` (passed | failed | missing_suite),
    ``failed`` (one line per failing expectation), ``outcomes`` and ``data_docs``.
    A failing suite, or a kind without a suite, quarantines the version.
    """
    from lineage.ingest import data_paths
    from screening.validation import SuiteNotFound, validate_files

    version_id, ref, done = finished(ctx, ref, "validate")
    if done is not None:
        return done
    with ctx.session() as s:
        v = s.get(DatasetVersion, version_id)
        kind = v.kind
        paths = [p for p, _ in data_paths(ctx.store, v)]
    docs_dir = ctx.settings.home / "data_docs"
    if not kind:
        output = {"success": False, "status": "missing_suite", "kind": None, "failed": [],
                  "reason": "the manifest names no 'kind', so no expectation suite applies"}
    else:
        try:
            outcome = validate_files(paths, kind, project_root=ctx.settings.expectations_root,
                                     data_docs_dir=docs_dir, run_name=f"{ref}",
                                     gx_root=ctx.settings.home / "gx")
        except SuiteNotFound as exc:
            output = {"success": False, "status": "missing_suite", "kind": kind, "failed": [],
                      "reason": str(exc)}
        else:
            failed = [_describe(o) for o in outcome.failed]
            output = {
                "success": bool(outcome.success), "status": "passed" if outcome.success else "failed",
                "kind": kind, "suite": outcome.suite_name, "failed": failed,
                "n_expectations": len(outcome.outcomes), "n_rows": outcome.n_rows,
                "elapsed_s": round(outcome.elapsed_s, 3), "data_docs": outcome.data_docs_path,
                "n_batches": outcome.n_batches,
                "checkpoint": next((o.details.get("checkpoint") for o in outcome.outcomes
                                    if o.details.get("checkpoint")), None),
                "outcomes": outcome.to_dict().get("outcomes", []),
            }
    ok = output["success"]
    reason = None if ok else (output.get("reason") or "validation failed: " + "; ".join(output["failed"][:3]))

    def add_check(s, v):
        s.add(CheckResult(version_id=v.id, run_id=run_id, check=f"gx:{kind or '-'}", success=ok,
                          summary="passed" if ok else reason, details=output))

    return record(ctx, version_id, "validate", output, status=output["status"], run_id=run_id,
                  new_status=STATUS_VALIDATED if ok else STATUS_QUARANTINED, reason=reason,
                  extra=add_check)


def _describe(o) -> str:
    where = f" on {o.column}" if o.column else ""
    return f"{o.expectation_type}{where} (observed {o.observed_value!r})"
