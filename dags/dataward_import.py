"""dataward_import: a manually triggered import of one dataset, every stage in order.

Trigger it from the UI form (the Params below render it) or the REST API with a
conf such as ``{"path": "/data/incoming/x", "manifest": "/data/incoming/x.yaml"}``.
A version the policy quarantines waits in the ``review`` task under "Required actions";
``{"rerun": "NAME@VERSION", "rerun_from": "validate", "rerun_reason": "..."}`` re-runs a
version's stages instead of importing.
Wiring only: the work is in ``dataward.airflow.tasks`` and the stage functions.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task
from dataward_common import stage_chain

from dataward.airflow.names import IMPORT_DAG, IMPORT_TRIGGER

_opt = {"type": ["null", "string"], "default": None}


@dag(
    dag_id=IMPORT_DAG,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=["dataward"],
    doc_md=__doc__,
    params={
        "path": Param(None, type=["null", "string"], minLength=1, title="Data path",
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
        "wait_for_review": Param(True, type="boolean", title="Wait for a reviewer",
                                 description="A version the policy quarantines waits under Required actions "
                                             "for a reviewer's decision."),
        "review_timeout_hours": Param(None, type=["null", "number"], exclusiveMinimum=0,
                                      title="Review timeout (hours)",
                                      description="Default: the policy's review.timeout_hours; "
                                                  "then it stays quarantined."),
        "rerun": Param(**_opt, pattern="^[a-z0-9][a-z0-9._-]{0,127}(@[0-9]+)?$", title="Re-run a version",
                       description="NAME@VERSION: re-run its stages (no import) after a suite, policy or "
                                   "reference changed; the earlier outcomes stay as superseded."),
        "rerun_from": Param("validate", enum=["licence", "validate", "screen", "decide", "report"],
                            title="Re-run from stage"),
        "rerun_reason": Param(**_opt, title="Why re-run (recorded)"),
    },
)
def dataward_import():
    @task
    def ingest() -> dict:
        from dataward.airflow.tasks import ingest_task

        ctx = get_current_context()
        return ingest_task(dict(ctx["params"]), trigger=IMPORT_TRIGGER, external_id=ctx["run_id"],
                           triggered_by=ctx["dag_run"].triggering_user_name)

    stage_chain(ingest())


dataward_import()
