"""dataward_import: a manually triggered import of one dataset, every stage in order.

Trigger it from the UI form (the Params below render it) or the REST API with a
conf such as ``{"path": "/data/incoming/x", "manifest": "/data/incoming/x.yaml"}``.
Wiring only: the work is in ``dataward.airflow_support`` and the stage functions.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task

from dataward_common import stage_chain

_opt = {"type": ["null", "string"], "default": None}


@dag(
    dag_id="dataward_import",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=["dataward"],
    doc_md=__doc__,
    params={
        "path": Param(type="string", minLength=1, title="Data path",
                      description="A Parquet/CSV/JSONL file or folder, readable by the workers."),
        "manifest": Param(**_opt, title="Manifest file",
                          description="YAML manifest; fields below override it."),
        "name": Param(**_opt, pattern="^[a-z0-9][a-z0-9._-]{0,127}$", title="Dataset name"),
        "owner": Param(**_opt, title="Owner"),
        "license": Param(**_opt, title="Licence (SPDX expression)"),
        "source_uri": Param(**_opt, title="Source URI"),
        "publisher": Param(**_opt, title="Publisher"),
        "description": Param(**_opt, title="Description"),
        "kind": Param(**_opt, title="Dataset kind (selects the GX suite)"),
        "label_column": Param(**_opt, title="Label column"),
        "reference": Param(**_opt, title="Trusted reference set"),
        "policy": Param(**_opt, title="Decision policy file", description="Default: the packaged policy."),
    },
)
def dataward_import():
    @task
    def ingest() -> dict:
        from dataward.airflow_support import ingest_task

        ctx = get_current_context()
        return ingest_task(dict(ctx["params"]), trigger="airflow:import", external_id=ctx["run_id"])

    stage_chain(ingest())


dataward_import()
