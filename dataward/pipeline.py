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
from dataward.progress import stage_logged
from dataward.stages.outputs import PipelineSummary, StageOutputs
from lineage.openlineage.emitter import ParentRef, new_run_id

STAGES = ("validate", "screen", "decide", "report", "publish")


def start_run(ctx: Context, *, trigger: str, external_id: str | None = None,
              run_id: str | None = None, triggered_by: str | None = None,
              lineage_parent: ParentRef | None = None) -> str:
    """Record a pipeline run held by this process and return its id (a UUID, also the
    OpenLineage run id). Runs whose process died are marked abandoned first
    (:mod:`dataward.runs`). ``triggered_by``: who started it (None: a schedule).

    Emits the pipeline run's OpenLineage START; ``lineage_parent`` is the run that started
    it (the Airflow task), so Airflow's and Dataward's events form one tree.
    """
    from dataward.export.lineage_events import pipeline_started
    from dataward.runs import claim, sweep_abandoned
    from lineage.models import PipelineRun

    sweep_abandoned(ctx)
    run_id = run_id or new_run_id()
    with ctx.session() as s:
        if s.get(PipelineRun, run_id) is None:
            s.add(PipelineRun(id=run_id, trigger=trigger, external_id=external_id,
                              code_version=code_version(), triggered_by=triggered_by))
    claim(ctx, run_id)
    pipeline_started(ctx, run_id, lineage_parent)
    return run_id


def attach_run(ctx: Context, run_id: str, ref: str) -> None:
    from lineage.ingest import resolve
    from lineage.models import PipelineRun

    with ctx.session() as s:
        s.get(PipelineRun, run_id).version_id = resolve(s, ref).id


def finish_run(ctx: Context, run_id: str, status: str, *,
               lineage_parent: ParentRef | None = None) -> None:
    from dataward.export.lineage_events import pipeline_finished
    from lineage.models import PipelineRun

    with ctx.session() as s:
        run = s.get(PipelineRun, run_id)
        run.status, run.finished_at = status, datetime.now(timezone.utc)
        run.pid, run.last_seen_at = None, run.finished_at
    pipeline_finished(ctx, run_id, status, lineage_parent)


def run_stage(ctx: Context, stage: str, ref: str, *, run_id: str | None = None,
              lineage_root: ParentRef | None = None) -> dict[str, Any]:
    """Run one stage by name, with its OpenLineage START/COMPLETE (or FAIL) events.

    The stage run's ``parent`` facet names the pipeline run ``run_id``; ``lineage_root``
    is the tree's root above it (the Airflow DAG run), when there is one.
    """
    from dataward.export.lineage_events import run_with_events
    from dataward.stages import decide, publish, report, screen, validate

    fn = {"validate": validate.validate, "screen": screen.screen, "decide": decide.decide,
          "report": report.report, "publish": publish.publish}[stage]
    if run_id is not None:
        from dataward.runs import claim

        claim(ctx, run_id)  # heartbeat: where and when the run was last seen

    def work() -> dict[str, Any]:
        checkpoint(f"stage:{stage}:before")
        with stage_logged(stage, ref):
            output = fn(ctx, ref, run_id=run_id)
        checkpoint(f"stage:{stage}:after")
        return output

    return run_with_events(ctx, stage, ref, work, pipeline_run=run_id, root=lineage_root)


def run_pipeline(ctx: Context, path: str | os.PathLike[str], manifest_path=None, *,
                 manifest: dict | None = None, trigger: str = "cli",
                 external_id: str | None = None) -> PipelineSummary:
    """Ingest ``path`` and run every stage on the new (or already known) version."""
    from dataward.stages.ingest import ingest

    run_id = start_run(ctx, trigger=trigger, external_id=external_id, triggered_by=ctx.settings.actor)
    try:
        with stage_logged("ingest", str(path)):
            result = ingest(ctx, path, manifest_path, manifest=manifest, pipeline_run=run_id)
        attach_run(ctx, run_id, result.ref)
        outputs: StageOutputs = {stage: run_stage(ctx, stage, result.ref, run_id=run_id)  # type: ignore[misc]
                                 for stage in STAGES}
    except BaseException:
        finish_run(ctx, run_id, "failed")
        raise
    finish_run(ctx, run_id, "success")
    return PipelineSummary(**summarize(result.ref, run_id, outputs), created=result.created)


def summarize(ref: str, run_id: str, outputs: StageOutputs) -> PipelineSummary:
    """The run's outcome from its stages' outputs (what ``dataward run --json`` prints)."""
    from dataward.reports.verdict_text import power_statement

    decision, screen = outputs["decide"], outputs["screen"]
    combine = ((screen.get("summary") or {}).get("combine") or {}) if screen.get("status") == "done" else {}
    return PipelineSummary(
        ref=ref, run_id=run_id, outcome=decision["outcome"],
        reasons=decision["reasons"], n_rows=decision["n_rows"],
        n_flagged=decision["n_flagged"],
        flagged_by_screen=({name: info.get("flagged") for name, info in
                            ((screen.get("summary") or {}).get("screens") or {}).items()
                            if isinstance(info, dict) and info.get("flagged") is not None}
                           if screen.get("status") == "done" else None),
        screening_status=screen.get("status"),
        screening_power=power_statement(combine.get("detectable_attack") or []),
        reference=(screen.get("reference") or {}).get("label") if screen.get("status") == "done" else None,
        validation=outputs["validate"].get("status"),
        report=outputs["report"].get("html"), report_json=outputs["report"].get("json"),
        snapshot=outputs["publish"].get("path"), snapshot_ref=outputs["publish"].get("snapshot_ref"),
    )
