"""Render a merged validation outcome as GX Data Docs HTML.

The merged outcome (all batches) is turned back into a GX ``ExpectationSuiteValidationResult``
and rendered by GX's own SiteBuilder into ``data_docs_dir``. An ephemeral context is used
so that nothing (validation results, site config) is written into the committed project.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ._outcome import ValidationOutcome

_SITE = "dataward"


def build_data_docs(outcome: ValidationOutcome, suite: dict, *, data_docs_dir: str | Path,
                    run_name: str | None, files: list[str]) -> str:
    """Build the site and return the path of this validation's HTML page."""
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    out = Path(data_docs_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.data_docs_sites = {
        _SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }
    now = dt.datetime.now(dt.timezone.utc)
    run_id = RunIdentifier(run_name=run_name or f"{outcome.suite_name}-{now:%Y%m%dT%H%M%S}", run_time=now)

    evrs = []
    for o in outcome.outcomes:
        cfg = ExpectationConfiguration(type=o.expectation_type, kwargs=o.kwargs)
        result: dict[str, Any] = {}
        if isinstance(o.observed_value, dict) and "unexpected_count" in o.observed_value:
            result.update(o.observed_value)
            result.update({k: v for k, v in o.details.items()
                           if k in ("missing_count", "partial_unexpected_index_list")})
        else:
            result["observed_value"] = o.observed_value
        error = o.details.get("error")
        evrs.append(ExpectationValidationResult(
            success=o.success,
            expectation_config=cfg,
            result=result,
            exception_info={"raised_exception": bool(error), "exception_message": error,
                            "exception_traceback": None},
        ))
    n_ok = sum(o.success for o in outcome.outcomes)
    n = len(outcome.outcomes)
    svr = ExpectationSuiteValidationResult(
        success=outcome.success,
        results=evrs,
        suite_name=outcome.suite_name,
        statistics={
            "evaluated_expectations": n,
            "successful_expectations": n_ok,
            "unsuccessful_expectations": n - n_ok,
            "success_percent": 100.0 * n_ok / n if n else None,
        },
        meta={
            "great_expectations_version": gx.__version__,
            "run_id": run_id,
            "batch_spec": {"files": files},
            "batch_markers": {"n_rows": outcome.n_rows, "n_batches": outcome.n_batches},
            "active_batch_definition": {
                "datasource_name": "dataward",
                "data_connector_name": "files",
                "data_asset_name": outcome.suite_name,
                "batch_identifiers": {},
            },
            "validation_time": now.strftime("%Y%m%dT%H%M%S.%fZ"),
        },
    )
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=outcome.suite_name),
        run_id=run_id,
        batch_identifier="dataset",
    )
    ctx.validation_results_store.set(key, svr)
    ctx.build_data_docs(site_names=[_SITE], resource_identifiers=[key])
    page = out / "validations" / outcome.suite_name / _path_part(run_id.run_name) / \
        _path_part(run_id.run_time.strftime("%Y%m%dT%H%M%S.%fZ")) / "dataset.html"
    if page.is_file():
        return str(page)
    found = sorted(out.glob(f"validations/{outcome.suite_name}/**/*.html"), key=lambda p: p.stat().st_mtime)
    return str(found[-1]) if found else str(out / "index.html")


def _path_part(s: str) -> str:
    return s
