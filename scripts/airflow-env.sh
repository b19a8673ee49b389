# Source this: Airflow on the embedded defaults, pointed at this checkout's DAGs and plugins.
_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DATAWARD_HOME=${DATAWARD_HOME:-$_repo/.dataward}
export AIRFLOW_HOME=${AIRFLOW_HOME:-$DATAWARD_HOME/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$_repo/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$_repo/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}
export AIRFLOW__LOGGING__LOGGING_LEVEL=${AIRFLOW__LOGGING__LOGGING_LEVEL:-WARNING}
export PATH=$_repo/.venv/bin:$PATH
unset _repo
# A busy 2-core machine answers the execution API slowly: give workers time.
export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT=${AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT:-60}
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
