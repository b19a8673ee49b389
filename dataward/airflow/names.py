"""The names Airflow and Dataward share: DAG ids, the triggers the DAGs record on a
pipeline run, and the asset every published snapshot updates (the DAGs declare it, the
sign-off doors notify it over the REST API)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataward.context import Context

IMPORT_DAG = "dataward_import"
NIGHTLY_DAG = "dataward_nightly"
TRAIN_EXAMPLE_DAG = "dataward_train_example"

# the pipeline run's ``trigger`` as each DAG records it
IMPORT_TRIGGER = "airflow:import"
NIGHTLY_TRIGGER = "airflow:nightly"
RERUN_TRIGGER = "airflow:rerun"

SNAPSHOT_ASSET_URI = "dataward://snapshots/approved"
SNAPSHOT_ASSET_NAME = "dataward_approved_snapshots"


def dag_of(ctx: Context, ref: str) -> str:
    """The Airflow DAG whose right to act governs signing ``ref``: the nightly DAG for a
    version it processed, else the import DAG (also for versions imported from the CLI)."""
    # imported here: DAG files import this module, and their parse must stay light
    from sqlalchemy import select

    from lineage.ingest import resolve
    from lineage.models import PipelineRun

    with ctx.session(read_only=True) as s:
        triggers = set(s.execute(select(PipelineRun.trigger).where(
            PipelineRun.version_id == resolve(s, ref).id)).scalars())
    return NIGHTLY_DAG if NIGHTLY_TRIGGER in triggers else IMPORT_DAG
