"""The whole pipeline in-process: what ``dataward run`` and the Airflow DAGs both call.

ingest -> validate -> screen -> decide -> report -> publish. Each stage is idempotent,
so re-running a pipeline after a crash redoes only the stages that had not finished.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from dataward.config import code_version
from dataward.context import Context
from dataward.faults import checkpoint
from lineage.events import new_run_id

STAGES = ("validate", "screen", "decide", "report", "publish")


def start_run(ctx: Context, *, trigger: str, external_id: str | None = None,
              run_id: str | None = None, triggered_by: str | None = None) -> str:
    """Record a pipeline run held by this process and return its id (a UUID, also the
    OpenLineage run id). Runs whose process died are marked abandoned first
    (:mod:`dataward.runs`). ``triggered_by``: who started it (None: a schedule)."""
    from dataward.runs import claim, sweep_abandoned
    from lineage.models import PipelineRun

    sweep_abandoned(ctx)
    run_id = run_id or new_run_id()
    with ctx.session() as s:
        if s.get(PipelineRun, run_id) is None:
            s.add(PipelineRun(id=run_id, trigger=trigger, external_id=external_id,
                              code_version=code_version(), triggered_by=triggered_by))
    claim(ctx, run_id)
    return run_id


def attach_run(ctx: Context, run_id: str, ref: str) -> None:
    from lineage.ingest import resolve
    from lineage.models import PipelineRun

    with ctx.session() as s:
        s.get(PipelineRun, run_id).version_id = resolve(s, ref).id


def finish_run(ctx: Context, run_id: str, status: str) -> None:
    from lineage.models import PipelineRun

    with ctx.session() as s:
        run = s.get(PipelineRun, run_id)
        run.status, run.finished_at = status, datetime.now(timezone.utc)
        run.pid, run.last_seen_at = None, run.finished_at


def run_stage(ctx: Context, stage: str, ref: str, *, run_id: str | None = None) -> dict[str, Any]:
    """Run one stage by name, with its OpenLineage START/COMPLETE (or FAIL) events."""
    from dataward.stages import decide, publish, report, screen, validate

    fn = {"validate": validate.validate, "screen": screen.screen, "decide": decide.decide,
          "report": report.report, "publish": publish.publish}[stage]
    if run_id is not None:
        from dataward.runs import claim

        claim(ctx, run_id)  # heartbeat: where and when the run was last seen
    ol_run = new_run_id()
    name, _, number = ref.partition("@")
    ctx.emitter.emit(job=stage, state="START", run_id=ol_run, dataset=name, version=number or None)
    try:
        checkpoint(f"stage:{stage}:before")
        output = fn(ctx, ref, run_id=run_id)
        checkpoint(f"stage:{stage}:after")
    except Exception as exc:
        ctx.emitter.emit(job=stage, state="FAIL", run_id=ol_run, dataset=name,
                         outcome={"stage": stage, "status": "failed", "summary": {"error": str(exc)}})
        raise
    status = output.get("status") or output.get("outcome") or ("published" if output.get("published") else "")
    ctx.emitter.emit(job=stage, state="COMPLETE", run_id=ol_run, dataset=name, version=number or None,
                     outcome={"stage": stage, "status": str(status),
                              "summary": {k: v for k, v in output.items()
                                          if isinstance(v, (str, int, float, bool)) and k != "reason"}})
    return output


def run_pipeline(ctx: Context, path: str | os.PathLike[str], manifest_path=None, *,
                 manifest: dict | None = None, trigger: str = "cli",
                 external_id: str | None = None) -> dict[str, Any]:
    """Ingest ``path`` and run every stage on the new (or already known) version."""
    from dataward.stages.ingest import ingest

    run_id = start_run(ctx, trigger=trigger, external_id=external_id, triggered_by=ctx.settings.actor)
    try:
        result = ingest(ctx, path, manifest_path, manifest=manifest)
        attach_run(ctx, run_id, result.ref)
        outputs = {stage: run_stage(ctx, stage, result.ref, run_id=run_id) for stage in STAGES}
    except BaseException:
        finish_run(ctx, run_id, "failed")
        raise
    finish_run(ctx, run_id, "success")
    return summarize(result.ref, run_id, outputs)


def summarize(ref: str, run_id: str, outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from screening.combine import power_statement

    decision, screen = outputs["decide"], outputs["screen"]
    combine = ((screen.get("summary") or {}).get("combine") or {}) if screen.get("status") == "done" else {}
    return {
        "ref": ref, "run_id": run_id, "outcome": decision["outcome"],
        "reasons": decision["reasons"], "n_rows": decision["n_rows"],
        "n_flagged": decision["n_flagged"],
        "flagged_by_screen": ((screen.get("summary") or {}).get("flagged_counts")
                              if screen.get("status") == "done" else None),
        "screening_power": power_statement(combine.get("detectable_attack") or []),
        "validation": outputs["validate"].get("status"),
        "report": outputs["report"].get("html"), "report_json": outputs["report"].get("json"),
        "snapshot": outputs["publish"].get("path"), "snapshot_ref": outputs["publish"].get("snapshot_ref"),
    }
