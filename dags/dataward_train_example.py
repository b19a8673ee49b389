"""dataward_train_example: training that starts only on approved data.

Scheduled on the ``dataward://snapshots/approved`` asset: each published snapshot
triggers a run, which trains a small model on exactly that snapshot.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, get_current_context, task

from dataward.airflow.names import TRAIN_EXAMPLE_DAG
from dataward.airflow.tasks import approved_asset

APPROVED = approved_asset()


@dag(dag_id=TRAIN_EXAMPLE_DAG, schedule=[APPROVED], start_date=datetime(2026, 1, 1),
     catchup=False, tags=["dataward", "example"], doc_md=__doc__)
def dataward_train_example():
    @task
    def train() -> dict:
        from dataward.examples_training import train_on_snapshot

        events = get_current_context()["triggering_asset_events"][APPROVED]
        return train_on_snapshot(events[-1].extra)

    train()


dataward_train_example()
