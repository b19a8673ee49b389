"""From quarantine to a fixed version: the rules of a rerun and the history it keeps.

After a suite was committed, a policy changed or a screening fix landed, a rerun
(:func:`dataward.pipeline.rerun`) runs ``from_stage`` and every later stage again on the
same content. This module says when a rerun is refused (:func:`check_rerun`) and moves
what it replaces, verbatim, to ``superseded_results`` (stage outputs, the policy's
decision and any reviewer's sign-off, which was given on the old report) in one audited
transaction with the reset of the version's status (:func:`supersede`); history is never
overwritten (:func:`history`). Then the stages run as in any pipeline run, recording the
new outcome and decision.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dataward.context import Context
from dataward.errors import BadInput
from dataward.governance.policy import STATUS_FOR
from dataward.runs import live_runs_on, sweep_abandoned
from lineage import audit
from lineage.ingest import resolve
from lineage.licences import judge
from lineage.models import (
    STATUS_INGESTED,
    STATUS_QUARANTINED,
    STATUS_SCREENED,
    STATUS_VALIDATED,
    DatasetVersion,
    Decision,
    Snapshot,
    StageResult,
    SupersededResult,
)

# "licence" judges the declared licence again under the licence policy in force, then
# runs decide and report (the verdict feeds only the decision)
RERUN_STAGES = ("licence", "validate", "screen", "decide", "report")


def check_rerun(ctx: Context, ref: str, *, from_stage: str, reason: str, actor: str) -> tuple[str, int, str]:
    """Refuse (:class:`BadInput`, nothing changed) a rerun of an unknown stage, without a
    reason, of a version already published, or of one a live run is working on; runs whose
    process died are marked abandoned first and never block a rerun. Returns (canonical
    ref, version id, the reason stripped). :func:`dataward.pipeline.rerun` runs it."""
    if from_stage not in RERUN_STAGES:
        raise BadInput(f"--from must be one of {', '.join(RERUN_STAGES)}, not {from_stage!r}")
    reason = (reason or "").strip()
    if not reason:
        raise BadInput("a rerun needs a reason (--reason TEXT): it is recorded with the new outcome")
    sweep_abandoned(ctx, actor=actor)
    with ctx.session(read_only=True) as s:
        v = resolve(s, ref)
        ref, version_id = v.ref, v.id
        published = s.execute(select(Snapshot.id).where(Snapshot.source_version_id == v.id)).first()
    if published:
        raise BadInput(f"{ref} is already published: import the corrected data as a new version")
    busy = live_runs_on(ctx, version_id)
    if busy:
        raise BadInput(f"{ref} is being processed by run {busy[0]}: wait for it to finish "
                       f"(`dataward runs` shows it)")
    return ref, version_id, reason


def _archive_report(output: dict[str, Any], tag: str) -> dict[str, str]:
    """Copy the report files a superseded report stage wrote to ``superseded/`` beside them
    (the rerun rewrites them in place): the document a reviewer read stays readable."""
    kept = {}
    for key in ("html", "pdf", "json"):
        path = Path(output[key]) if output.get(key) else None
        if path is not None and path.is_file():
            dest = path.parent / "superseded" / f"{tag}-{path.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
            kept[key] = str(dest)
    return kept


def supersede(ctx: Context, version_id: int, stages: tuple[str, ...], *, run_id: str | None,
              reason: str, actor: str) -> list[dict[str, Any]]:
    """Move the version's results of ``stages`` (and, from ``decide`` on, its decisions; any
    reviewer's sign-off always) to ``superseded_results``, reset its status to what the
    kept stages left, and audit it: one transaction. Returns what was superseded."""
    moved: list[dict[str, Any]] = []
    with ctx.session() as s:
        v = s.get(DatasetVersion, version_id)
        rows = s.execute(select(StageResult).where(StageResult.version_id == version_id,
                                                   StageResult.stage.in_(stages))).scalars().all()
        decisions = s.execute(select(Decision).where(Decision.version_id == version_id)
                              .order_by(Decision.id)).scalars().all()
        drop = [d for d in decisions if d.decided_by != "policy" or "decide" in stages]
        for row in rows:
            s.add(SupersededResult(version_id=version_id, kind="stage", stage=row.stage, original_id=row.id,
                                   run_id=row.run_id, status=row.status, output=row.output,
                                   recorded_at=row.finished_at, superseded_by_run=run_id, reason=reason,
                                   actor=actor))
            entry = {"kind": "stage", "stage": row.stage, "status": row.status, "run_id": row.run_id}
            if row.stage == "report":
                entry["sha256"] = (row.output or {}).get("sha256")
                entry["archived"] = _archive_report(row.output or {}, f"result-{row.id}")
            moved.append(entry)
        for d in drop:
            s.add(SupersededResult(version_id=version_id, kind="decision", stage="decide" if d.decided_by == "policy"
                                   else "review", original_id=d.id, run_id=d.run_id, status=d.outcome,
                                   decided_by=d.decided_by, output=d.rationale, recorded_at=d.created_at,
                                   superseded_by_run=run_id, reason=reason, actor=actor))
            moved.append({"kind": "decision", "outcome": d.outcome, "decided_by": d.decided_by})
        if "licence" in stages and v.licence is not None:
            moved.append(_rejudge_licence(ctx, s, v, run_id=run_id, reason=reason, actor=actor))
        s.flush()
        for row in rows:
            s.delete(row)
        for d in drop:
            s.delete(d)
        previous = v.status
        kept = {r.stage: r.output for r in s.execute(select(StageResult).where(
            StageResult.version_id == version_id, StageResult.stage.not_in(stages))).scalars()}
        v.status, v.status_reason = _status_after(v, kept)
        audit.append(s, actor=actor, action="rerun", subject=v.ref, payload={
            "run_id": run_id, "stages": list(stages), "reason": reason, "superseded": moved,
            "previous_status": previous, "status": v.status})
    return moved


def _rejudge_licence(ctx: Context, s, v, *, run_id: str | None, reason: str, actor: str) -> dict[str, Any]:
    """Keep the licence verdict in the history and judge the licence again (the normalized
    expression, parents' terms included) under the licence policy in force."""
    lic = v.licence
    old = {"declared": lic.declared, "spdx_expression": lic.spdx_expression, "use_class": lic.use_class,
           "attribution_required": lic.attribution_required, "share_alike": lic.share_alike,
           "allowed_for_training": lic.allowed_for_training, "verdict_reason": lic.verdict_reason,
           "policy_version": lic.policy_version}
    s.add(SupersededResult(version_id=v.id, kind="licence", stage="licence", original_id=lic.id, run_id=None,
                           status="allowed" if lic.allowed_for_training else "not allowed", output=old,
                           recorded_at=None, superseded_by_run=run_id, reason=reason, actor=actor))
    verdict = judge(lic.spdx_expression, ctx.licence_policy)
    lic.use_class, lic.attribution_required = verdict.use_class, verdict.attribution_required
    lic.share_alike, lic.allowed_for_training = verdict.share_alike, verdict.allowed_for_training
    lic.verdict_reason, lic.policy_version = verdict.reason, ctx.licence_policy.version
    return {"kind": "licence", "stage": "licence", "status": old["allowed_for_training"],
            "now": verdict.allowed_for_training, "policy_version": ctx.licence_policy.version}


def _status_after(v, kept: dict[str, dict]) -> tuple[str, str | None]:
    """The status the version had after ingest and the kept stages (their recording rules,
    :func:`dataward.stage_results.record`: a quarantine sticks)."""
    status, reasons = STATUS_INGESTED, []
    if v.licence is not None and not v.licence.allowed_for_training:
        status, reasons = STATUS_QUARANTINED, [v.licence.verdict_reason]

    def move(new: str, why: str | None) -> None:
        nonlocal status
        if status not in (STATUS_QUARANTINED, "rejected") or new in (STATUS_QUARANTINED, "rejected"):
            status = new
            if why:
                reasons.append(why)

    if "validate" in kept:
        out = kept["validate"]
        move(STATUS_VALIDATED if out.get("success") else STATUS_QUARANTINED,
             None if out.get("success") else out.get("reason") or "validation failed")
    if "screen" in kept:
        out = kept["screen"]
        ok = out.get("status") == "done"
        move(STATUS_SCREENED if ok else STATUS_QUARANTINED, None if ok else out.get("reason"))
    if "decide" in kept:
        out = kept["decide"]
        why = "; ".join(r["why"] for r in out.get("reasons", []) if r["outcome"] in ("quarantine", "reject"))
        move(STATUS_FOR[out["outcome"]], why or None)
    return status, "; ".join(dict.fromkeys(r for r in reasons if r)) or None


def history(ctx: Context, ref: str) -> list[dict[str, Any]]:
    """Every outcome the version had, superseded ones first (oldest first), then the current."""
    def iso(t):
        return t.isoformat(timespec="seconds") if t else None

    with ctx.session(read_only=True) as s:
        v = resolve(s, ref)
        old = s.execute(select(SupersededResult).where(SupersededResult.version_id == v.id)
                        .order_by(SupersededResult.id)).scalars().all()
        out = [{"kind": o.kind, "stage": o.stage, "status": o.status, "decided_by": o.decided_by,
                "run_id": o.run_id, "recorded_at": iso(o.recorded_at), "superseded": True,
                "superseded_at": iso(o.superseded_at), "superseded_by_run": o.superseded_by_run,
                "reason": o.reason, "output": o.output} for o in old]
        for r in s.execute(select(StageResult).where(StageResult.version_id == v.id)
                           .order_by(StageResult.id)).scalars():
            out.append({"kind": "stage", "stage": r.stage, "status": r.status, "run_id": r.run_id,
                        "recorded_at": iso(r.finished_at), "superseded": False, "output": r.output})
        for d in s.execute(select(Decision).where(Decision.version_id == v.id).order_by(Decision.id)).scalars():
            out.append({"kind": "decision", "stage": "decide" if d.decided_by == "policy" else "review",
                        "status": d.outcome, "decided_by": d.decided_by, "run_id": d.run_id,
                        "recorded_at": iso(d.created_at), "superseded": False, "output": d.rationale})
    return out
