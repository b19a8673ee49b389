"""dataward_nightly: every night, process each new arrival in the landing folder.

An arrival is a sub-folder of ``DATAWARD_LANDING`` holding a ``manifest.yaml``
(and its data, in ``data/`` or beside the manifest). Each arrival runs through
every stage as one mapped task group; a marker file records it as processed.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task, task_group
from dataward_common import stage_chain

from dataward.airflow.names import NIGHTLY_DAG, NIGHTLY_TRIGGER


@dag(
    dag_id=NIGHTLY_DAG,
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["dataward"],
    doc_md=__doc__,
    params={"landing": Param(type=["null", "string"], default=None, title="Landing folder",
                             description="Default: DATAWARD_LANDING or $DATAWARD_HOME/landing."),
            "wait_for_review": Param(True, type="boolean", title="Wait for a reviewer",
                                     description="A version the policy quarantines waits under Required actions "
                                                 "for a reviewer's decision."),
            "review_timeout_hours": Param(None, type=["null", "number"], exclusiveMinimum=0,
                                          title="Review timeout (hours)",
                                          description="Default: the policy's review.timeout_hours; "
                                                      "then it stays quarantined."),
            },
)
def dataward_nightly():
    @task
    def find_arrivals() -> list[dict]:
        from dataward.airflow.tasks import find_arrivals as scan

        arrivals = scan(get_current_context()["params"].get("landing"))
        print(f"dataward: {len(arrivals)} new arrival(s)")
        return arrivals

    @task_group
    def process(arrival: dict):
        @task
        def ingest(arrival: dict) -> dict:
            from dataward.airflow.tasks import ingest_task

            ctx = get_current_context()
            params = ctx["params"]
            info = ingest_task({"path": arrival["path"], "manifest": arrival["manifest"],
                                "wait_for_review": params.get("wait_for_review"),
                                "review_timeout_hours": params.get("review_timeout_hours")},
                               trigger=NIGHTLY_TRIGGER, external_id=ctx["run_id"],
                               triggered_by=ctx["dag_run"].triggering_user_name)
            return {**info, "arrival_marker": arrival["marker"]}

        return stage_chain(ingest(arrival))

    process.expand(arrival=find_arrivals())


dataward_nightly()
