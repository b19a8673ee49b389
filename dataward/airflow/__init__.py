"""The one Airflow adapter of the app: task bodies (:mod:`.tasks`) and the asset name
(:mod:`.names`).

The DAG files in ``dags/`` and the plugin import from here. Every module here stays
light at import (Airflow parses the DAG files that import it again and again): Airflow,
the pipeline and the heavy libraries are imported inside the functions.
"""
