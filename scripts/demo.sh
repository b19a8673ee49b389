#!/usr/bin/env bash
# The demo: build the bundled example (scikit-learn's digits with planted poisons),
# ingest it with its manifest, and show its lineage. Embedded defaults throughout:
# SQLite lineage DB and content store under DATAWARD_HOME (./.dataward).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DW=.venv/bin/dataward
export DATAWARD_HOME=${DATAWARD_HOME:-$PWD/.dataward}
example="$DATAWARD_HOME/examples/digits"

echo "== building the example in $example"
$PY examples/digits/build.py --out "$example"

echo "== dataward ingest"
set +e
$DW ingest "$example/train" --manifest "$example/manifest.yaml"
rc=$?
set -e
[ $rc -le 1 ] || exit $rc

echo "== dataward lineage show digits-example"
$DW lineage show digits-example
echo "== dataward datasets"
$DW datasets
echo "== dataward audit verify"
$DW audit verify
