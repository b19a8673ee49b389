"""What the Airflow DAGs call: thin task bodies over :mod:`dataward.pipeline`.

Nothing here imports Airflow, the pipeline, torch, GX or pandas at module level, so DAG
files that import it still parse fast; the work (and its imports) happens inside the
task functions.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from dataward.airflow.names import RERUN_TRIGGER, SNAPSHOT_ASSET_NAME, SNAPSHOT_ASSET_URI

SCREEN_QUEUE = os.environ.get("DATAWARD_SCREEN_QUEUE", "default")
DONE_MARKER = ".dataward-done"
MANIFEST_FIELDS = ("name", "owner", "license", "source_uri", "publisher", "description", "kind",
                   "label_column", "reference")


def approved_asset():
    """The Airflow Asset every published snapshot updates (training DAGs schedule on it)."""
    from airflow.sdk import Asset

    return Asset(name=SNAPSHOT_ASSET_NAME, uri=SNAPSHOT_ASSET_URI)


def context(policy: str | None = None):
    from dataward.config import load_settings
    from dataward.context import Context

    settings = load_settings()
    if policy:
        settings = replace(settings, decision_policy=Path(policy).expanduser().resolve())
    return Context(settings)


def manifest_from_params(params: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """(manifest path, manifest dict): a named manifest file, with any given fields on top."""
    from dataward.errors import BadInput

    fields = {k: params.get(k) for k in MANIFEST_FIELDS if params.get(k)}
    path = params.get("manifest") or None
    if path and not fields:
        return path, None
    raw: dict[str, Any] = {}
    if path:
        import yaml

        from lineage import croissant_manifest

        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise BadInput(f"cannot read manifest {path}: {exc}") from None
        if croissant_manifest.is_croissant(path):  # JSON is YAML: read it as Croissant
            raw = croissant_manifest.to_manifest_dict(raw, where=str(path))
    if "source_uri" in fields:
        raw["source"] = {**(raw.get("source") or {}), "uri": fields.pop("source_uri")}
    if "publisher" in fields:
        raw["source"] = {**(raw.get("source") or {}), "publisher": fields.pop("publisher")}
    raw.update(fields)
    return None, raw


def ingest_task(params: dict[str, Any], *, trigger: str, external_id: str | None,
                triggered_by: str | None = None) -> dict[str, Any]:
    """Start a pipeline run and ingest; returns the info later tasks take.

    ``triggered_by``: the Airflow user who triggered the DAG run: recorded on the run and
    as the version's importer (separation of duties keeps them from signing it off).
    With ``params["rerun"]`` (``NAME@VERSION``) nothing is ingested: the version's results
    from ``params["rerun_from"]`` on are superseded and the stage tasks run them again.
    """
    from dataward.errors import BadInput
    from dataward.pipeline import attach_run, start_run
    from dataward.runs import release
    from dataward.stages.ingest import ingest

    ctx = context(params.get("policy"))
    if triggered_by:
        ctx = type(ctx)(replace(ctx.settings, actor=triggered_by))
    if params.get("rerun"):
        from dataward.pipeline import prepare_rerun

        prepared = prepare_rerun(ctx, params["rerun"], from_stage=params.get("rerun_from") or "validate",
                                 reason=params.get("rerun_reason") or "", actor=triggered_by or ctx.settings.actor,
                                 trigger=RERUN_TRIGGER, external_id=external_id)
        release(ctx, prepared["run_id"])
        return {"ref": prepared["ref"], "run_id": prepared["run_id"], "policy": params.get("policy") or None,
                "status": "rerun", "created": False, **_review_params(params)}
    if not params.get("path"):
        raise BadInput("give a data path (or rerun: NAME@VERSION)")
    manifest_path, manifest = manifest_from_params(params)
    parent = airflow_lineage_parent()
    run_id = start_run(ctx, trigger=trigger, external_id=external_id, triggered_by=triggered_by,
                       lineage_parent=parent)
    result = ingest(ctx, params["path"], manifest_path, manifest=manifest, pipeline_run=run_id)
    attach_run(ctx, run_id, result.ref)
    release(ctx, run_id)
    return {"ref": result.ref, "run_id": run_id, "policy": params.get("policy") or None,
            "status": result.status, "created": result.created,
            "lineage_parent": parent.to_dict() if parent else None, **_review_params(params)}


def airflow_lineage_parent(task_instance=None):
    """The running Airflow task as the OpenLineage parent of the pipeline run, the DAG run
    as the root: the names and run ids the OpenLineage provider's parent-run macros give
    (``lineage_job_namespace``, ``lineage_job_name``, ``lineage_run_id``,
    ``lineage_root_*``), so Airflow's events and Dataward's form one tree. None when the
    provider is not installed (then Airflow emits no events to link to) or outside a task.
    """
    from lineage.openlineage.refs import ParentRef

    try:
        from airflow.providers.openlineage.plugins import macros
    except ImportError:
        return None
    try:
        if task_instance is None:
            from airflow.sdk import get_current_context

            task_instance = get_current_context()["ti"]
        root = ParentRef(macros.lineage_root_job_namespace(task_instance),
                         macros.lineage_root_job_name(task_instance),
                         str(macros.lineage_root_run_id(task_instance)))
        return ParentRef(macros.lineage_job_namespace(), macros.lineage_job_name(task_instance),
                         str(macros.lineage_run_id(task_instance)), root)
    except Exception as exc:  # lineage must never fail the task
        import logging

        logging.getLogger(__name__).warning("no OpenLineage parent for the pipeline run: %s", exc)
        return None


def _review_params(params: dict[str, Any]) -> dict[str, Any]:
    return {"wait_for_review": params.get("wait_for_review", True) is not False,
            "review_timeout_hours": params.get("review_timeout_hours")}


def stage_task(stage: str, info: dict[str, Any]) -> dict[str, Any]:
    from dataward.pipeline import run_stage
    from dataward.runs import release
    from lineage.openlineage.refs import ParentRef

    parent = ParentRef.from_dict(info.get("lineage_parent"))
    ctx = context(info.get("policy"))
    with _ray_cluster_of_connection(stage):
        output = run_stage(ctx, stage, info["ref"], run_id=info["run_id"],
                           lineage_root=parent.root if parent else None)
    release(ctx, info["run_id"])
    return {**info, stage: {k: v for k, v in output.items()
                            if k not in ("summary", "outcomes", "excluded_row_ids", "relabels")}}


def _ray_cluster_of_connection(stage: str):
    """For the screen: the Ray cluster the Airflow connection ``DATAWARD_RAY_CONN_ID``
    (default ``dataward_ray``) names, given to the stage (:mod:`.ray_connection`).
    Not looked up where ``DATAWARD_RAY_ADDRESS`` is set: that wins anyway."""
    import contextlib

    from dataward.ray_engine import ray_address

    if stage != "screen" or ray_address():
        return contextlib.nullcontext()
    from dataward.airflow.ray_connection import connection_address
    from dataward.stages.screen_engine import ray_address_given

    found = connection_address()
    if found is None:
        return contextlib.nullcontext()
    return ray_address_given(found[0], source=found[1])


# the options of the review task in Airflow's "Required actions"
REVIEW_APPROVE, REVIEW_REJECT, REVIEW_KEEP = "Approve", "Reject", "Keep quarantined"
REVIEW_OPTIONS = [REVIEW_APPROVE, REVIEW_REJECT, REVIEW_KEEP]


def review_request(info: dict[str, Any], *, base_url: str | None = None) -> dict[str, Any] | None:
    """What the review task asks a person, or None when the version awaits no sign-off.

    Returns ``subject``, ``body`` (Markdown: the policy's reasons, the report's links and
    hash), ``timeout_hours`` (the DAG param, else the policy's ``review.timeout_hours``)
    and ``assigned_users`` (the policy's named reviewers, or None: anyone the auth manager
    lets act on the DAG's required actions).
    """
    from dataward.governance.review import awaiting_review, review_policy

    ctx = context(info.get("policy"))
    pending = {q["ref"]: q for q in awaiting_review(ctx)}.get(info["ref"])
    if pending is None:
        return None
    rules = review_policy(ctx)
    base = (base_url or "").rstrip("/")
    report = f"{base}/dataward/files/reports/{pending['report_dir']}/report.html"
    why = "\n".join(f"- **{r['check']}**: {r['why']} → {r['outcome']}" for r in pending["reasons"]
                    if r["outcome"] in ("quarantine", "reject")) or f"- {pending['status_reason']}"
    body = (f"The policy quarantined **{pending['ref']}** ({pending['rows']} rows, licence "
            f"{pending['licence'] or '-'}):\n\n{why}\n\n"
            f"Read the [report]({report}) (SHA-256 `{pending['report_sha256']}`; "
            f"[PDF]({report[:-4]}pdf), [review page]({base}/dataward/review/{pending['ref']})) and decide. "
            f"**Approve** publishes it (an override: give your reason, at least "
            f"{rules.override_min_reason} characters"
            + (", and a second reviewer must approve too" if rules.override_reviewers == 2 else "")
            + "); **Reject** rejects it; **Keep quarantined** leaves it for later. "
            f"Without an answer in {rules.timeout_hours:g} h it "
            + ("stays quarantined." if rules.on_timeout == "quarantine" else "is rejected."))
    hours = info.get("review_timeout_hours") or rules.timeout_hours
    return {"subject": f"Dataward sign-off: {pending['ref']}", "body": body, "timeout_hours": float(hours),
            "assigned_users": [{"id": r, "name": r} for r in rules.reviewers] or None,
            "report_sha256": pending["report_sha256"]}


def review_response(info: dict[str, Any], *, chosen: list[str], reason: str | None,
                    user: dict[str, Any] | None, timed_out: bool, report_sha256: str | None) -> dict[str, Any]:
    """Turn the answer to the review task into the same :func:`dataward.governance.review.sign_off` the
    other doors call (audit entry, report hash, publication); a timeout follows the
    policy's ``review.on_timeout``. Returns ``info`` with ``review``; a refused sign-off
    (separation of duties, say) raises, after it was audited."""
    from dataward.governance.review import APPROVE, REJECT, review_policy, sign_off
    from dataward.stages.publish import publish_approved
    from lineage import audit

    ctx = context(info.get("policy"))
    choice = chosen[0] if chosen else REVIEW_KEEP
    if timed_out:
        rules = review_policy(ctx)
        with ctx.session() as s:
            audit.append(s, actor="airflow", action="review-timeout", subject=info["ref"],
                         payload={"run_id": info["run_id"], "on_timeout": rules.on_timeout})
        if rules.on_timeout == "reject":
            result = sign_off(ctx, info["ref"], outcome=REJECT, reviewer="airflow:timeout", publish=publish_approved,
                              reason="no reviewer answered in time", via="airflow-hitl-timeout")
            return {**info, "review": {"outcome": result.outcome, "timed_out": True}}
        return {**info, "review": {"outcome": "timeout", "timed_out": True}}
    who = (user or {}).get("name") or (user or {}).get("id") or ""
    if choice == REVIEW_KEEP:
        return {**info, "review": {"outcome": "kept", "by": who}}
    result = sign_off(ctx, info["ref"], outcome=APPROVE if choice == REVIEW_APPROVE else REJECT,
                      reviewer=who, reason=reason or "", report_sha256=report_sha256, via="airflow-hitl",
                      publish=publish_approved)
    return {**info, "review": {"outcome": result.outcome, "by": result.reviewer, "at": result.at,
                               "audit_entry": result.audit_entry, "report_sha256": result.report_sha256}}


def finish_task(info: dict[str, Any]) -> dict[str, Any]:
    from dataward.pipeline import finish_run
    from lineage.openlineage.refs import ParentRef

    finish_run(context(info.get("policy")), info["run_id"], "success",
               lineage_parent=ParentRef.from_dict(info.get("lineage_parent")))
    marker = info.get("arrival_marker")
    if marker:
        Path(marker).write_text(info["ref"] + "\n")
    return {"ref": info["ref"], "outcome": info["decide"]["outcome"],
            "n_flagged": info["decide"].get("n_flagged"), "report": info["report"].get("html"),
            "snapshot": info["publish"].get("snapshot_ref")}


def find_arrivals(landing: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Arrivals in the landing folder: sub-folders holding a ``manifest.yaml``.

    The data is the arrival's ``data/`` folder when it has one, else the arrival
    folder itself. An arrival already processed carries a ``.dataward-done`` marker.
    """
    root = Path(landing) if landing else context().settings.landing
    if not root.is_dir():
        return []
    out = []
    for arrival in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        manifest = arrival / "manifest.yaml"
        if not manifest.is_file() or (arrival / DONE_MARKER).exists():
            continue
        data = arrival / "data" if (arrival / "data").is_dir() else arrival
        out.append({"path": str(data), "manifest": str(manifest),
                    "marker": str(arrival / DONE_MARKER)})
    return out
