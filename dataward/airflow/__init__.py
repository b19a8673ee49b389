"""The one Airflow adapter of the app: task bodies (:mod:`.tasks`), the REST client
(:mod:`.rest`), DAG ids and the asset name (:mod:`.names`).

The DAG files in ``dags/`` and the plugin import from here; governance never does. Every
module here stays light at import (Airflow parses the DAG files that import it again and
again): Airflow, the pipeline and the heavy libraries are imported inside the functions.
"""
