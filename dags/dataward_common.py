"""The stage tasks both Dataward DAGs share (wiring only; no DAG is defined here).

``stage_chain(info)`` adds validate -> screen -> decide -> report -> publish after the
ingest task's output ``info``; called inside a task group, the tasks join that group.
"""

from __future__ import annotations

from airflow.sdk import task

from dataward.airflow_support import SCREEN_QUEUE, approved_asset

APPROVED = approved_asset()


@task
def validate(info: dict) -> dict:
    from dataward.airflow_support import stage_task

    return stage_task("validate", info)


@task(queue=SCREEN_QUEUE)
def screen(info: dict) -> dict:
    from dataward.airflow_support import stage_task

    return stage_task("screen", info)


@task
def decide(info: dict) -> dict:
    from dataward.airflow_support import stage_task

    return stage_task("decide", info)


@task
def report(info: dict) -> dict:
    from dataward.airflow_support import stage_task

    return stage_task("report", info)


@task(outlets=[APPROVED])
def publish(info: dict, *, outlet_events=None) -> dict:
    """Publish, close the pipeline run, and update the approved-snapshots asset."""
    from dataward.airflow_support import finish_task, stage_task

    info = stage_task("publish", info)
    summary = finish_task(info)
    print(f"dataward: {summary}")
    if info["publish"].get("published"):
        outlet_events[APPROVED].extra = {"ref": summary["snapshot"], "source": info["ref"],
                                         "path": info["publish"]["path"]}
    return summary


def stage_chain(info):
    return publish(report(decide(screen(validate(info)))))
