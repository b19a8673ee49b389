"""Screen stage: the poisoning and label-noise screens over a stored version.

Artefacts (under ``DATAWARD_HOME/runs/NAME/VERSION/screen/``): ``scores.parquet``
(the per-row contract of ``dataward screen``), ``summary.json``, ``projection.npy``
and ``canary.parquet``, written and read through :mod:`dataward.artifacts`.
"""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa

from dataward import artifacts
from dataward.context import Context
from dataward.diff import diff_against_previous_approved
from dataward.governance.policy import CanaryPolicy, load_policy
from dataward.governance.reference import reference_for_screen
from dataward.labels import missing_labels, missing_labels_in_batches
from dataward.reports.verdict_text import with_rule_text
from dataward.stage_results import StoredRows, finished, json_safe, read_table, record, version_dir
from dataward.stages.outputs import ScreenStageOutput
from dataward.stages.screen_engine import cluster_address, screen_on_ray
from lineage.files import iter_file_batches
from lineage.models import STATUS_QUARANTINED, STATUS_SCREENED, CheckResult, DatasetVersion


def screen(ctx: Context, ref: str, *, run_id: str | None = None) -> ScreenStageOutput:
    """Run the screens on ``ref``; idempotent. Returns the recorded output.

    Output keys: ``status`` (done | error), ``n_rows``, ``n_flagged``, ``flagged_fraction``,
    ``scores_path``, ``projection_path``, ``used_reference``, ``reference`` (which trusted
    set, named for the report: :mod:`dataward.governance.reference`), ``summary`` (the screens' own
    summary) or ``reason`` on error; and the self-tests: ``canary`` (recall on planted
    canaries, per screen and for ``flagged``), ``leakage`` (duplicates inside the data and
    against the evaluation sets), ``diff`` (against the previous approved version, or None).
    """
    version_id, ref, done = finished(ctx, ref, "screen")
    if done is not None:
        return done
    with ctx.session() as s:
        label_col = s.get(DatasetVersion, version_id).label_column
    out_dir = version_dir(ctx, ref) / "screen"
    started = time.perf_counter()
    output = _run(ctx, version_id, label_col, out_dir, ref)
    output["elapsed_s"] = round(time.perf_counter() - started, 3)
    ok = output["status"] == "done"
    judged_ok = ok or output["status"] == "not_applicable"

    def add_check(s, v):
        s.add(CheckResult(version_id=v.id, run_id=run_id, check="screening", success=judged_ok,
                          summary=(f"{output['n_flagged']} of {output['n_rows']} rows flagged" if ok
                                   else output["reason"]),
                          details={k: output[k] for k in output if k != "summary"}))

    return record(ctx, version_id, "screen", output, status=output["status"], run_id=run_id,
                  new_status=STATUS_SCREENED if judged_ok else STATUS_QUARANTINED,
                  reason=None if judged_ok else output["reason"], extra=add_check)


def _run(ctx: Context, version_id: int, label_col: str | None, out_dir, ref: str | None = None
         ) -> ScreenStageOutput:
    from screening import ScreenConfig, ScreeningInputError, ScreeningNotApplicable, VerdictConfig, screen_table

    if not label_col:
        return ScreenStageOutput(status="not_applicable", reason="the manifest names no label_column, so the "
                                 "label-consistency and backdoor screens cannot run")
    # a version too large to hold, on Ray: its stored batches, streamed; else the table
    data = StoredRows(ctx, version_id) if _too_large_to_hold(ctx, version_id) else read_table(ctx, version_id)
    why = (missing_labels_in_batches(data.batches(columns=[label_col]), label_col) if isinstance(data, StoredRows)
           else missing_labels(data, label_col))
    if why:
        return ScreenStageOutput(status="error", reason=f"screening refused the data: {why}")
    policy = load_policy(ctx.settings.decision_policy)
    # a reviewer-confirmed set, the version's own file, or the trust chain (dataward/governance/reference.py)
    reference, reference_info = reference_for_screen(ctx, version_id, data, label_col, policy)
    settings = policy.canary
    config = ScreenConfig(verdict=VerdictConfig(**policy.verdict.config_fields()))
    # a Ray cluster (DATAWARD_RAY_ADDRESS, or the Airflow task's connection): the sharded screen
    # on it, or why not (dataward/stages/screen_engine.py)
    on_ray = screen_on_ray(ctx, version_id, label_col=label_col, reference=reference, config=config,
                           out_dir=out_dir, ref=ref)
    if on_ray is not None and on_ray.output is not None:
        if on_ray.output["status"] == "done":
            on_ray.output.update(used_reference=reference is not None, reference=reference_info,
                                 **_ray_checks(ctx, version_id, data, label_col, on_ray, ref))
        return on_ray.output
    if isinstance(data, StoredRows):  # the cluster cannot serve this data: in-process, holding it
        data = read_table(ctx, version_id)
    canaries, canary_error = None, None
    if settings.enabled:
        try:
            canaries = _plant(data, label_col, settings, with_reference=reference is not None)
        except Exception as exc:  # the self-test must never stop the real screening
            canary_error = f"{type(exc).__name__}: {exc}"
    n = data.num_rows
    screened = data if canaries is None or not len(canaries) else _with_canaries(data, canaries)
    try:
        result = screen_table(screened, label_col=label_col, reference=reference, config=config)
    except ScreeningNotApplicable as exc:
        return ScreenStageOutput(status="not_applicable", reason=str(exc))
    except ScreeningInputError as exc:
        if screened is data:
            return ScreenStageOutput(status="error", reason=f"screening refused the data: {exc}")
        # never let the self-test cost the real screening: retry on the real rows alone
        canaries, canary_error = None, f"screening refused the data with canaries: {exc}"
        try:
            result = screen_table(data, label_col=label_col, reference=reference, config=config)
        except ScreeningInputError as exc2:
            return ScreenStageOutput(status="error", reason=f"screening refused the data: {exc2}")
    m = result.scores.shape[0] - n
    real = _real_rows(result, n, m, data.column(label_col))
    with_rule_text(real.summary)
    artifacts.write_results(real, out_dir)
    n_flagged = int(real.scores["flagged"].sum())
    flagged_ids = [int(i) for i in real.scores["row_id"][real.scores["flagged"]]]
    output = ScreenStageOutput(status="done", n_rows=n, n_flagged=n_flagged,
                               flagged_fraction=n_flagged / n if n else 0.0,
                               scores_path=str(out_dir / artifacts.SCORES),
                               projection_path=str(out_dir / artifacts.PROJECTION),
                               used_reference=reference is not None, reference=reference_info,
                               summary=real.summary)
    output["canary"] = _canary_output(result, canaries, n, out_dir, canary_error, settings)
    output["leakage"] = _leakage_output(ctx, version_id, data, label_col, real)
    output["diff"] = _diff_output(ctx, ref, flagged_ids) if ref else None
    if on_ray is not None:  # the Ray path could not serve this data: say so and why
        output["engine"] = on_ray.engine
    return output


#: Above this many rows, when a Ray cluster screens the version, the stage never holds the
#: table: it streams the label check and the trust chain's overlap, and records the
#: leakage check and the version diff (which need the whole table in one process) as not
#: run, with why (docs/operations.md, "Ray").
STREAMED_ROWS = 5_000_000
#: The environment variable that sets :data:`STREAMED_ROWS`.
STREAMED_ROWS_ENV = "DATAWARD_STREAMED_ROWS"


def streamed_rows() -> int:
    import os

    value = os.environ.get(STREAMED_ROWS_ENV, "").strip()
    return int(value) if value.isdigit() else STREAMED_ROWS


def _too_large_to_hold(ctx: Context, version_id: int) -> bool:
    if cluster_address() is None:
        return False
    with ctx.session(read_only=True) as s:
        return int(s.get(DatasetVersion, version_id).row_count or 0) > streamed_rows()


def _ray_checks(ctx: Context, version_id: int, data, label_col: str, on_ray, ref: str | None
                ) -> dict[str, Any]:
    """The leakage check and the version diff beside a screen on Ray: run on the table, or,
    for a version too large to hold (``data`` a :class:`StoredRows`), the leakage check's
    exact part streamed over the stored batches (near duplicates not searched) and the
    diff recorded as not run, each with why (they need the whole table in one process).
    The flagged row ids are read from the scores file's two columns, not the whole file."""
    result = on_ray.result
    if isinstance(data, StoredRows):
        why = (f"the version has {data.num_rows:,} rows, more than the {streamed_rows():,} the screen stage holds "
               "when a Ray cluster screens it, and this needs the whole table in one process")
        return {"leakage": _leakage_output(ctx, version_id, data, label_col, result, near_not_run=why),
                "diff": {"status": "not_run", "reason": f"not run: {why}"} if ref else None}
    return {"leakage": _leakage_output(ctx, version_id, data, label_col, result),
            "diff": _diff_output(ctx, ref, artifacts.flagged_row_ids(on_ray.output)) if ref else None}


def _plant(data, label_col: str, settings: CanaryPolicy, *, with_reference: bool):
    """The canaries of the kinds this run claims to catch (with or without a trusted reference)."""
    from screening.canary import plant_canaries

    return plant_canaries(data, label_col=label_col, fraction=settings.fraction,
                          min_per_kind=settings.min_per_kind, max_fraction=settings.max_fraction,
                          with_reference=with_reference, seed=settings.seed)


def _with_canaries(data, canaries):
    return pa.concat_tables([data, canaries.table.cast(data.schema)])


def _real_rows(result, n: int, m: int, labels=None):
    """The ScreenResult restricted to the first ``n`` (real) rows; summary counts re-done for them."""
    from screening import ScreenResult

    if m == 0:
        return result
    scores = result.scores.iloc[:n].reset_index(drop=True)
    summary = json_safe(result.summary)
    flagged = scores["flagged"].to_numpy(dtype=bool)
    summary["n_rows"] = n
    summary["n_rows_screened"] = n + m
    comb = summary.get("combine") or {}
    comb["flagged"] = int(flagged.sum())
    if labels is not None and "flagged_per_class" in comb:
        import numpy as np

        values, counts = np.unique(labels.to_numpy(zero_copy_only=False)[flagged].astype(str),
                                   return_counts=True)
        per = dict(zip(values.tolist(), counts.tolist()))
        comb["flagged_per_class"] = {str(c): int(per.get(str(c), 0)) for c in result.classes}
    summary["canary_note"] = (f"{m} canary rows were screened together with the {n} real rows; "
                              "n_rows, combine.flagged(_per_class) and scores exclude them; "
                              "the per-screen counts under 'screens', estimated_poison_rate and "
                              "combine.detectable_attack (rows per class) include them")
    return ScreenResult(scores=scores, summary=summary, representations=result.representations[:n],
                        pred_probs=result.pred_probs[:n], cv_pred_probs=result.cv_pred_probs[:n],
                        classes=list(result.classes))


def _canary_output(result, canaries, n: int, out_dir, error: str | None, settings) -> dict[str, Any]:
    """Write canary.parquet and return the canary figures (recall per screen and for ``flagged``)."""
    from screening.canary import canary_recall

    if canaries is None or not len(canaries):
        why = error or ("disabled by the policy" if not settings.enabled else
                        "; ".join(canaries.notes) if canaries is not None else "not planted")
        return {"status": "not_run", "reason": why, "n_canaries": 0}
    m = len(canaries)
    budgets = {k: int(v.get("flagged", 0)) for k, v in (result.summary.get("screens") or {}).items()
               if isinstance(v, dict) and v.get("flagged") is not None}
    figures = canary_recall(result.scores, canaries.kinds, n_real=n, screen_budgets=budgets)
    sc = result.scores.iloc[n:n + m].reset_index(drop=True).copy()
    sc["canary_id"] = range(m)
    sc["kind"] = [str(k) for k in canaries.kinds]
    sc["source_row"] = canaries.source_rows
    sc["original_label"] = [str(v) for v in canaries.original_labels]
    sc["planted_label"] = [str(v) for v in canaries.labels]
    artifacts.write_parquet(sc.drop(columns=["row_id"]), out_dir / artifacts.CANARY)
    return {"status": "done", **canaries.describe(), "recall": figures["flagged"]["recall"],
            "flagged": figures["flagged"], "screens": figures["screens"],
            "canary_path": str(out_dir / artifacts.CANARY), "min_recall": settings.min_recall}


def _leakage_output(ctx: Context, version_id: int, data, label_col: str, real, near_not_run: str | None = None
                    ) -> dict[str, Any]:
    """The leakage check on the table, or, for a :class:`StoredRows` (a version too large to
    hold), its exact part streamed over the stored batches, near duplicates not searched
    (``near_not_run`` says why)."""
    from checks.leakage import exact_leakage_report, leakage_report

    try:
        feats = [c for c in (real.summary.get("feature_cols") or []) if c in data.column_names]
        feats = feats or [c for c in data.column_names if c != label_col]
        evaluation = _evaluation_tables(ctx, version_id)
        if isinstance(data, StoredRows):
            return {"status": "done", **exact_leakage_report(
                data.batches(), label_col=label_col, feature_cols=feats, evaluation=evaluation,
                near_reason=near_not_run or "the version is too large to hold")}
        # Not the probe's representations: ScreenResult.representations come from k fold
        # models (each row from the model that did not see it), so rows of different folds
        # live in different bases and their cosine means nothing. Standardized raw features
        # it is, inside the data and against the evaluation sets alike.
        return {"status": "done", **leakage_report(data, label_col=label_col, feature_cols=feats,
                                                   evaluation=evaluation)}
    except Exception as exc:  # a report section, not a reason to lose the screening result
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}


def _evaluation_tables(ctx: Context, version_id: int) -> dict[str, Any]:
    """The version's evaluation sets by their stored name (``evaluation/FILE``), one table each."""
    with ctx.session() as s:
        files = [(f.relpath, ctx.store.path_for(f.sha256, f.format), f.format)
                 for f in s.get(DatasetVersion, version_id).files if f.role == "evaluation"]
    out = {}
    for rel, path, fmt in files:
        batches = list(iter_file_batches(path, fmt))
        if batches:
            out[rel] = pa.Table.from_batches(batches)
    return out


def _diff_output(ctx: Context, ref: str, flagged_ids: list[int]) -> dict[str, Any] | None:
    try:
        return diff_against_previous_approved(ctx, ref, flagged_b=flagged_ids)
    except Exception as exc:
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
