"""Pipeline stages: one function per stage, shared by the CLI and the Airflow DAGs."""
