"""The Airflow asset every published snapshot updates, by name and URI: the Airflow
adapter declares it, governance notifies it over the REST API after a sign-off."""

SNAPSHOT_ASSET_URI = "dataward://snapshots/approved"
SNAPSHOT_ASSET_NAME = "dataward_approved_snapshots"
