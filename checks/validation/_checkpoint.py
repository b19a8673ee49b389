"""Validate a dataset that fits one batch the GX way: a ``Checkpoint`` in a file context.

The reviewed suite is registered in a run-time GX file project (``gx_root``, under
``DATAWARD_HOME``, apart from the committed suites), with a pandas data source, a
whole-dataframe batch definition, a ``ValidationDefinition`` joining the two and a
``Checkpoint`` with an ``UpdateDataDocsAction``. Running the checkpoint stores the
validation result in GX's own validation-results store and lets GX build the Data Docs
site; the result is read back into Dataward's :class:`ValidationOutcome`. Column and
type expectations are answered from the table's Arrow schema, as on the batch path
(``_answers.eval_schema``): the pandas frame GX reads has lost what the schema says (an
int column with nulls is float64 there; a date, decimal, struct or binary column is
``object``), so the suite that ``expectations init`` drafts from a table would fail on
that same table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from ._answers import eval_schema
from ._outcome import ExpectationOutcome, ValidationInputError, ValidationOutcome
from ._plan import SCHEMA, planned_expectation

SITE = "dataward"
_SUMMARY_KEYS = ("element_count", "unexpected_count", "unexpected_percent", "missing_count",
                 "partial_unexpected_list")


def validate_table(table: pa.Table, suite: dict, *, gx_root: str | Path,
                   data_docs_dir: str | Path | None, run_name: str | None) -> ValidationOutcome:
    """Run ``suite`` over ``table`` (one batch) through a GX Checkpoint in ``gx_root``.

    One validation at a time per project (a file lock): GX rewrites its config and object
    files, which concurrent writers (parallel Airflow tasks) would otherwise interleave.
    """
    import fcntl

    root = Path(gx_root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".dataward.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _validate_locked(table, suite, gx_root=root, data_docs_dir=data_docs_dir,
                                    run_name=run_name)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _validate_locked(table: pa.Table, suite: dict, *, gx_root: Path,
                     data_docs_dir: str | Path | None, run_name: str | None) -> ValidationOutcome:
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from .._json import jsonable_tree
    from ._gx_batches import exception_message

    kind = suite["name"]
    ctx = gx.get_context(mode="file", project_root_dir=str(Path(gx_root)))
    try:
        if ctx.variables.progress_bars is None or ctx.variables.progress_bars.globally is not False:
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            ctx.variables.save()
    except Exception:  # progress bars are cosmetic
        pass
    actions = []
    if data_docs_dir is not None:
        out = Path(data_docs_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        site = {"class_name": "SiteBuilder", "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
        sites = ctx.variables.data_docs_sites or {}
        if SITE not in sites:
            ctx.add_data_docs_site(site_name=SITE, site_config=site)
        elif sites[SITE].get("store_backend", {}).get("base_directory") != str(out):
            ctx.update_data_docs_site(site_name=SITE, site_config=site)
        actions.append(UpdateDataDocsAction(name="update_data_docs", site_names=[SITE]))

    exps = []
    by_index: dict[int, ExpectationOutcome] = {}
    for i, e in enumerate(suite["expectations"]):
        try:  # GX checks every expectation's configuration, the schema ones too
            exp = ExpectationConfiguration(type=e["type"], kwargs=dict(e.get("kwargs") or {}),
                                           meta={**(e.get("meta") or {}), "dataward_index": i}).to_domain_obj()
        except Exception as exc:
            raise ValidationInputError(f"suite {kind!r}: expectation #{i} ({e['type']}) is invalid: "
                                       f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if e["type"] in SCHEMA:  # from the Arrow schema, as on the batch path: pandas has lost it
            by_index[i] = eval_schema(planned_expectation(i, e, "schema"), table.schema)
        else:
            exps.append(exp)
    gx_suite = ctx.suites.add_or_update(gx.ExpectationSuite(name=kind, expectations=exps))
    source = ctx.data_sources.add_or_update_pandas("dataward")
    asset = next((a for a in source.assets if a.name == kind), None) or source.add_dataframe_asset(kind)
    batch_def = next((b for b in asset.batch_definitions if b.name == "whole"), None) \
        or asset.add_batch_definition_whole_dataframe("whole")
    definition = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=kind, data=batch_def, suite=gx_suite))
    checkpoint = ctx.checkpoints.add_or_update(gx.Checkpoint(
        name=f"dataward-{kind}", validation_definitions=[definition], actions=actions,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20}))

    result = checkpoint.run(batch_parameters={"dataframe": table.to_pandas()},
                            run_id=RunIdentifier(run_name=run_name or kind))
    (key, svr), = result.run_results.items()
    for r in svr.results:
        cfg = r.expectation_config
        idx = int((cfg.meta or {}).get("dataward_index"))
        kwargs = dict(suite["expectations"][idx].get("kwargs") or {})
        res = dict(r.result or {})
        observed = res["observed_value"] if "observed_value" in res else (
            {k: res[k] for k in _SUMMARY_KEYS if k in res} or None)
        details: dict[str, Any] = {"checkpoint": checkpoint.name, "validation_result": str(key)}
        error = exception_message(r.exception_info)
        if error:
            details["error"] = error
        by_index[idx] = ExpectationOutcome(
            expectation_type=cfg.type, column=kwargs.get("column") if isinstance(kwargs.get("column"), str) else None,
            kwargs=kwargs, success=bool(r.success), observed_value=jsonable_tree(observed), details=details)
    outcomes = [by_index[i] for i in sorted(by_index)]
    return ValidationOutcome(
        suite_name=kind, success=bool(outcomes) and all(o.success for o in outcomes), outcomes=outcomes,
        n_rows=table.num_rows, n_batches=1,
        data_docs_path=_docs_page(data_docs_dir, key) if data_docs_dir is not None else None,
        elapsed_s=0.0)


def _docs_page(data_docs_dir: str | Path, key) -> str:
    out = Path(data_docs_dir).resolve()
    page = out / "validations" / Path(*key.to_tuple()).with_suffix(".html")
    if page.is_file():
        return str(page)
    found = sorted(out.glob("validations/**/*.html"), key=lambda p: p.stat().st_mtime)
    return str(found[-1]) if found else str(out / "index.html")
