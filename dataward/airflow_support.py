"""What the Airflow DAGs call: thin task bodies over :mod:`dataward.pipeline`.

Nothing here imports Airflow, torch, GX or pandas at module level, so DAG files
that import it still parse fast; the work happens inside the task functions.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

SNAPSHOT_ASSET_URI = "dataward://snapshots/approved"
SNAPSHOT_ASSET_NAME = "dataward_approved_snapshots"
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


def ingest_task(params: dict[str, Any], *, trigger: str, external_id: str | None) -> dict[str, Any]:
    """Start a pipeline run and ingest; returns the info later tasks take."""
    from dataward.pipeline import attach_run, start_run
    from dataward.stages.ingest import ingest

    ctx = context(params.get("policy"))
    manifest_path, manifest = manifest_from_params(params)
    parent = airflow_lineage_parent()
    run_id = start_run(ctx, trigger=trigger, external_id=external_id, lineage_parent=parent)
    result = ingest(ctx, params["path"], manifest_path, manifest=manifest, pipeline_run=run_id)
    attach_run(ctx, run_id, result.ref)
    return {"ref": result.ref, "run_id": run_id, "policy": params.get("policy") or None,
            "status": result.status, "created": result.created,
            "lineage_parent": parent.to_dict() if parent else None}


def airflow_lineage_parent(task_instance=None):
    """The running Airflow task as the OpenLineage parent of the pipeline run, the DAG run
    as the root: the names and run ids the OpenLineage provider's parent-run macros give
    (``lineage_job_namespace``, ``lineage_job_name``, ``lineage_run_id``,
    ``lineage_root_*``), so Airflow's events and Dataward's form one tree. None when the
    provider is not installed (then Airflow emits no events to link to) or outside a task.
    """
    from lineage.events import ParentRef

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


def stage_task(stage: str, info: dict[str, Any]) -> dict[str, Any]:
    from dataward.pipeline import run_stage

    from lineage.events import ParentRef

    parent = ParentRef.from_dict(info.get("lineage_parent"))
    output = run_stage(context(info.get("policy")), stage, info["ref"], run_id=info["run_id"],
                       lineage_root=parent.root if parent else None)
    return {**info, stage: {k: v for k, v in output.items()
                            if k not in ("summary", "outcomes", "excluded_row_ids")}}


def finish_task(info: dict[str, Any]) -> dict[str, Any]:
    from dataward.pipeline import finish_run

    from lineage.events import ParentRef

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
