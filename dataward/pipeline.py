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
from dataward.export.lineage_events import pipeline_finished, pipeline_started, run_with_events
from dataward.faults import checkpoint
from dataward.governance.remediation import check_rerun, supersede
from dataward.progress import stage_logged
from dataward.reports.verdict_text import power_statement
from dataward.runs import claim, sweep_abandoned
from dataward.stages import decide, publish, report, screen, validate
from dataward.stages.ingest import ingest
from dataward.stages.outputs import PipelineSummary, StageOutputs
from lineage.ingest import resolve
from lineage.models import PipelineRun
from lineage.openlineage.emitter import new_run_id
from lineage.openlineage.refs import ParentRef

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
    with ctx.session() as s:
        s.get(PipelineRun, run_id).version_id = resolve(s, ref).id


def finish_run(ctx: Context, run_id: str, status: str, *,
               lineage_parent: ParentRef | None = None) -> None:
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
    fn = {"validate": validate.validate, "screen": screen.screen, "decide": decide.record_decision,
          "report": report.report, "publish": publish.publish}[stage]
    if run_id is not None:
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


def rerun(ctx: Context, ref: str, *, from_stage: str = "validate", reason: str, actor: str,
          trigger: str = "rerun", external_id: str | None = None) -> dict[str, Any]:
    """Re-run ``from_stage`` and the stages after it on ``ref``; returns the pipeline summary
    plus ``superseded`` (what was replaced) and ``reason``.

    Refused (:class:`BadInput`, nothing changed) for an unknown stage, a missing reason, a
    version already published, or one a live run is working on
    (:func:`dataward.governance.remediation.check_rerun`); runs whose process died are
    marked abandoned first and never block a rerun.
    """
    prepared = prepare_rerun(ctx, ref, from_stage=from_stage, reason=reason, actor=actor,
                             trigger=trigger, external_id=external_id)
    ref, run_id = prepared["ref"], prepared["run_id"]
    try:
        # stages before from_stage return their recorded output (every stage is idempotent)
        outputs = {stage: run_stage(ctx, stage, ref, run_id=run_id) for stage in STAGES}
    except BaseException:
        finish_run(ctx, run_id, "failed")
        raise
    finish_run(ctx, run_id, "success")
    return {**summarize(ref, run_id, outputs), "from_stage": from_stage, "reason": prepared["reason"],
            "superseded": prepared["superseded"]}


def prepare_rerun(ctx: Context, ref: str, *, from_stage: str, reason: str, actor: str,
                  trigger: str = "rerun", external_id: str | None = None) -> dict[str, Any]:
    """Check, start the rerun's pipeline run and supersede what it replaces
    (:mod:`dataward.governance.remediation`); the stages then run as in any run (the CLI
    in-process, Airflow as its tasks). Returns ``ref``, ``run_id``, ``reason`` and
    ``superseded``."""
    ref, version_id, reason = check_rerun(ctx, ref, from_stage=from_stage, reason=reason, actor=actor)
    run_id = start_run(ctx, trigger=trigger, external_id=external_id, triggered_by=actor)
    try:
        attach_run(ctx, run_id, ref)
        _note(ctx, run_id, f"rerun from {from_stage}: {reason}")
        stages = (("licence", "decide", "report", "publish") if from_stage == "licence"
                  else STAGES[STAGES.index(from_stage):])
        superseded = supersede(ctx, version_id, stages, run_id=run_id, reason=reason, actor=actor)
    except BaseException:
        finish_run(ctx, run_id, "failed")
        raise
    return {"ref": ref, "run_id": run_id, "reason": reason, "superseded": superseded}


def _note(ctx: Context, run_id: str, note: str) -> None:
    with ctx.session() as s:
        s.get(PipelineRun, run_id).note = note


def summarize(ref: str, run_id: str, outputs: StageOutputs) -> PipelineSummary:
    """The run's outcome from its stages' outputs (what ``dataward run --json`` prints)."""
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
