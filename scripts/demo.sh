#!/usr/bin/env bash
# The demo: the whole pipeline on the bundled example through Airflow's in-process
# `airflow dags test`, on the embedded defaults (SQLite lineage DB, file-backed GX
# project, content store and reports under DATAWARD_HOME, CPU or GPU).
#
# The example is scikit-learn's digits (shipped inside scikit-learn, CC-BY-4.0) with
# planted poisons: a BadNets patch on rows relabelled to one class, and label flips.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/airflow-env.sh
PY=.venv/bin/python
example="$DATAWARD_HOME/examples/digits"
# Each demo starts from a clean installation, so its output is the same every time.
rm -rf "$DATAWARD_HOME/lineage.db"* "$DATAWARD_HOME/store" "$DATAWARD_HOME/runs" \
       "$DATAWARD_HOME/reports" "$DATAWARD_HOME/openlineage" "$DATAWARD_HOME/data_docs"

echo "== 1. building the example in $example"
$PY examples/digits/build.py --out "$example"

echo "== 2. preparing Airflow (metadata DB in $AIRFLOW_HOME)"
airflow db migrate >"$DATAWARD_HOME/airflow-migrate.log" 2>&1 \
  || { tail -20 "$DATAWARD_HOME/airflow-migrate.log"; exit 1; }

echo "== 3. airflow dags test dataward_import (ingest, validate, screen, decide, report, publish)"
conf=$(printf '{"path": "%s", "manifest": "%s"}' "$example/train" "$example/manifest.yaml")
log="$DATAWARD_HOME/demo-dags-test.log"
if ! airflow dags test dataward_import -c "$conf" >"$log" 2>&1; then
  echo "airflow dags test failed; the last lines of $log:" >&2
  tail -40 "$log" >&2
  exit 1
fi

echo "== 4. what was decided"
$PY scripts/demo_summary.py "$example/planted.json"
