#!/bin/bash
# Runs once, when the PostgreSQL volume is first created: one database and one role
# for Airflow's metadata, one for the Dataward lineage DB. Passwords come from the
# environment (docker/dataward.env), never from this file.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=airflow_pw="$AIRFLOW_DB_PASSWORD" --set=dataward_pw="$DATAWARD_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_pw';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE dataward LOGIN PASSWORD :'dataward_pw';
CREATE DATABASE lineage OWNER dataward;
SQL
