"""The lineage graph Dataward's OpenLineage events draw.

Who reads what, in OpenLineage terms (all files named ``file://HOST`` + absolute path):

=========  ===================================================  ==========================================
run        inputs                                               outputs
=========  ===================================================  ==========================================
ingest     the source URI, the landed files, the parents'        the stored data files (version = sha256,
           stored files                                          symlink ``NAME@V``), the stored reference
                                                                and evaluation sets
validate   the stored data files (+ ``dataQualityAssertions``,  -
           ``dataQualityMetrics``)
screen     the data, the reference and the evaluation sets      the per-row scores file
decide     the data                                             -
report     the data                                             the report files
publish    the data                                             the approved snapshot (``NAME.approved@N``),
                                                                its Croissant file and dataset card
=========  ===================================================  ==========================================

Every stage run's ``parent`` facet names the pipeline run (``dataward.pipeline``, run
id = the pipeline run id ``dataward run --json`` prints); under Airflow the pipeline
run's parent is the Airflow task that started it and its root the DAG run.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from dataward.context import Context
from lineage.ingest import resolve
from lineage.naming import catalog_name, database_namespace, file_dataset, uri_dataset
from lineage.openlineage import facets as f
from lineage.openlineage.emitter import new_run_id
from lineage.openlineage.refs import DatasetRef, ParentRef

STAGE_INPUT_ROLES = {"screen": ("data", "reference", "evaluation")}
# Past this many files of one role a version is one dataset (its logical name in the
# catalog, the version's content hash), so an image folder does not make 10,000 nodes.
MAX_FILE_DATASETS = 64


def _catalog(ctx: Context, ref: str) -> tuple[str, str]:
    return database_namespace(ctx.settings.db_url), catalog_name(ctx.settings.db_url, ref)


def version_datasets(ctx: Context, ref: str, roles: tuple[str, ...] = ("data",), *,
                     describe: bool = False, pii: list[dict] | None = None) -> list[DatasetRef]:
    """The stored files of version ``ref`` with ``roles`` as OpenLineage datasets.

    Each carries its content hash as ``version``, its logical name (``NAME@V`` for data
    files, ``NAME@V/ROLE/FILE`` for reference and evaluation sets) as ``symlinks`` and
    its type; with ``describe`` also the schema, owner and description (and ``pii`` as tags).
    """
    out = []
    with ctx.session() as s:
        v = resolve(s, ref)
        ds = v.dataset
        files = [x for x in v.files if x.role in roles]
        for role in roles:
            mine = [x for x in files if x.role == role]
            if len(mine) > MAX_FILE_DATASETS:  # a folder of images: one dataset, not thousands
                files = [x for x in files if x.role != role]
                out.append(_file_set(ctx, v, role, mine, describe=describe, pii=pii))
        for file in files:
            ns, name = file_dataset(ctx.store.path_for(file.sha256, file.format))
            logical = v.ref if file.role == "data" else f"{v.ref}/{file.relpath}"
            facets: dict[str, Any] = {
                "version": f.version(file.sha256),
                "symlinks": f.symlinks(*_catalog(ctx, logical)),
                "datasetType": f.dataset_type("FILE", file.role.upper()),
            }
            if describe and file.role == "data":
                if v.schema_json:
                    facets["schema"] = f.schema(v.schema_json)
                if ds.owner:
                    facets["ownership"] = f.ownership(ds.owner)
                if ds.description:
                    facets["documentation"] = f.documentation(ds.description)
                if pii:
                    facets["tags"] = f.pii_tags(pii)
            out.append(DatasetRef(ns, name, facets))
    return out


def _file_set(ctx: Context, v, role: str, files, *, describe: bool, pii) -> DatasetRef:
    logical = v.ref if role == "data" else f"{v.ref}/{role}"
    digest = v.content_hash if role == "data" else hashlib.sha256(
        "".join(f"{x.relpath}\0{x.sha256}\n" for x in files).encode()).hexdigest()
    facets: dict[str, Any] = {"version": f.version(digest),
                              "datasetType": f.dataset_type("FILE_SET", role.upper())}
    if describe and role == "data":
        if v.dataset.owner:
            facets["ownership"] = f.ownership(v.dataset.owner)
        if v.dataset.description:
            facets["documentation"] = f.documentation(v.dataset.description)
        if pii:
            facets["tags"] = f.pii_tags(pii)
    return DatasetRef(*_catalog(ctx, logical), facets)


def source_dataset(uri: str, base_dir: str | Path | None = None) -> DatasetRef:
    return DatasetRef(*uri_dataset(uri, base_dir=base_dir))


def file_datasets(paths, *, kind: str = "FILE") -> list[DatasetRef]:
    return [DatasetRef(*file_dataset(p), {"datasetType": f.dataset_type(kind)})
            for p in paths if p]


def ingest_inputs(ctx: Context, manifest, landed: list[Path]) -> list[DatasetRef]:
    """What an ingest reads: the source URI, the landed files, the parents' stored files."""
    out = [source_dataset(manifest.source_uri, manifest.base_dir)]
    out += file_datasets(landed)
    out += file_datasets(manifest.side_file(x) for x in
                         ([manifest.reference] if manifest.reference else []) + list(manifest.evaluation_sets))
    for parent in manifest.parents:
        try:
            out += version_datasets(ctx, parent)
        except Exception:  # an unknown parent: the ingest itself reports it
            pass
    return out


def stage_inputs(ctx: Context, stage: str, ref: str) -> list[DatasetRef]:
    return version_datasets(ctx, ref, STAGE_INPUT_ROLES.get(stage, ("data",)))


def stage_outputs(ctx: Context, stage: str, ref: str, output: dict[str, Any]) -> list[DatasetRef]:
    """The datasets a stage wrote, from its recorded output."""
    if stage == "publish":
        if not output.get("published") or not output.get("snapshot_ref"):
            return []
        snap = version_datasets(ctx, output["snapshot_ref"], describe=True)
        return snap + file_datasets([output.get("croissant"), output.get("card")])
    if stage == "report":
        return file_datasets([output.get(k) for k in ("html", "json", "pdf")])
    if stage == "screen":
        return file_datasets([output.get("scores_path")])
    return []


def stage_input_facets(ctx: Context, stage: str, ref: str, output: dict[str, Any],
                       inputs: list[DatasetRef]) -> list[DatasetRef]:
    """Validate's inputs carry the GX results and the row counts (standard input facets);
    screen's inputs gain the lineage version its reference came from (an approved snapshot
    through the trust chain, or a reviewer-confirmed ``NAME.reference@N``)."""
    if stage == "screen":
        source = (output.get("reference") or {}).get("source_ref")
        return inputs + (version_datasets(ctx, source) if source else [])
    if stage != "validate" or not inputs:
        return inputs
    with ctx.session() as s:
        v = resolve(s, ref)
        data = [x for x in v.files if x.role == "data"]
        rows = {ctx.store.path_for(x.sha256, x.format).resolve().as_posix(): x for x in data}
    out = []
    for d in inputs:
        extra: dict[str, Any] = {}
        file = rows.get(d.name)
        if file is not None:
            extra["dataQualityMetrics"] = f.quality_metrics(rows=file.row_count, size_bytes=file.size_bytes,
                                                            files=1)
            if output.get("outcomes"):
                extra["dataQualityAssertions"] = f.quality_assertions(output["outcomes"])
        out.append(DatasetRef(d.namespace, d.name, d.facets, {**d.input_facets, **extra}))
    return out


def stage_run_facets(stage: str, output: dict[str, Any], licence: dict | None = None) -> dict[str, Any]:
    status = output.get("status") or output.get("outcome") or (
        "published" if output.get("published") else "")
    out: dict[str, Any] = {"dataward_outcome": f.stage_outcome(
        stage, str(status), {k: v for k, v in output.items() if k != "reason"})}
    if stage == "decide" and output.get("outcome"):
        out["dataward_screening"] = f.screening_verdict(output)
    if licence:
        out["dataward_licence"] = f.licence_verdict(licence)
    return out


def version_licence(ctx: Context, ref: str) -> dict[str, Any] | None:
    with ctx.session() as s:
        lic = resolve(s, ref).licence
        if lic is None:
            return None
        return {"expression": lic.spdx_expression, "use_class": lic.use_class,
                "allowed_for_training": lic.allowed_for_training, "reason": lic.verdict_reason,
                "policy_version": lic.policy_version}


def run_with_events(ctx: Context, stage: str, ref: str, fn, *, pipeline_run: str | None = None,
                    root: ParentRef | None = None):
    """Run ``fn()`` (one stage on ``ref``) between its START and COMPLETE/FAIL events."""
    em = ctx.emitter
    parent = em.pipeline_parent(pipeline_run, root) if pipeline_run else None
    ol_run = new_run_id()
    inputs = _safe(lambda: stage_inputs(ctx, stage, ref), [])
    em.emit(job=stage, state="START", run_id=ol_run, inputs=inputs, parent=parent)
    try:
        output = fn()
    except Exception as exc:
        em.emit(job=stage, state="FAIL", run_id=ol_run, inputs=inputs, parent=parent,
                run_facets={"errorMessage": f.error_message(exc),
                            "dataward_outcome": f.stage_outcome(stage, "failed", {"error": str(exc)})})
        raise
    outputs = _safe(lambda: stage_outputs(ctx, stage, ref, output), [])
    full_inputs = _safe(lambda: stage_input_facets(ctx, stage, ref, output, inputs), inputs)
    licence = _safe(lambda: version_licence(ctx, output["snapshot_ref"]), None) \
        if stage == "publish" and output.get("snapshot_ref") else None
    em.emit(job=stage, state="COMPLETE", run_id=ol_run, inputs=full_inputs, outputs=outputs,
            parent=parent, run_facets=stage_run_facets(stage, output, licence))
    return output


def _safe(build, default):
    """Describing the graph must never fail a stage (a missing file, an odd row)."""
    try:
        return build()
    except Exception as exc:
        logging.getLogger(__name__).warning("OpenLineage datasets not described: %s", exc)
        return default


def pipeline_started(ctx: Context, run_id: str, parent: ParentRef | None = None) -> None:
    ctx.emitter.emit(job="pipeline", state="START", run_id=run_id, parent=parent)


def pipeline_finished(ctx: Context, run_id: str, status: str, parent: ParentRef | None = None) -> None:
    state = "COMPLETE" if status == "success" else "FAIL"
    ctx.emitter.emit(job="pipeline", state=state, run_id=run_id, parent=parent,
                     run_facets={"dataward_outcome": f.stage_outcome("pipeline", status)})
