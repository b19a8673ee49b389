"""The Ray cluster of the screen task, from an Airflow connection.

``DATAWARD_RAY_ADDRESS`` wins wherever it is set (:mod:`dataward.stages.screen_engine`);
where it is not, the screen task looks up the Airflow connection named by
``DATAWARD_RAY_CONN_ID`` (default ``dataward_ray``) and, when there is one, screens on
the cluster it names. Without either the screen runs in-process, as before: a missing
connection is no error and logs nothing.

How a connection names a cluster (:func:`address_of`):

* ``extra`` ``{"address": "..."}``: that address as it stands (``auto``, a full
  ``ray://`` URI, ...);
* connection type ``ray`` (what the URI form ``ray://HOST:PORT`` gives) or schema
  ``ray``: the Ray Client URI ``ray://HOST:PORT`` (port default 10001, Ray Client's);
* any other type (``generic`` and the like) with a host: ``HOST:PORT``, the head node's
  GCS address as ``ray start --head --port`` opens it (port default 6379, Ray's);
* no host and no ``address``: it names no cluster (in-process, with a warning).

So ``AIRFLOW_CONN_DATAWARD_RAY='ray://head:10001'`` screens through Ray Client, and
``AIRFLOW_CONN_DATAWARD_RAY='{"conn_type": "generic", "host": "head", "port": 6379}'``
connects to the head as a driver on the cluster's network.

Airflow is imported inside :func:`connection_address` only (a task calls it), never when
this module is imported, so DAG parse stays fast.
"""

from __future__ import annotations

import logging
import os
from typing import Any

#: The environment variable naming the Airflow connection of the Ray cluster.
CONN_ID_ENV = "DATAWARD_RAY_CONN_ID"
#: The connection id looked up when ``DATAWARD_RAY_CONN_ID`` is unset.
DEFAULT_CONN_ID = "dataward_ray"
CLIENT_PORT = 10001  # Ray Client server (ray://)
GCS_PORT = 6379  # the head node's GCS, ray start --head's default

log = logging.getLogger(__name__)


def conn_id() -> str:
    return os.environ.get(CONN_ID_ENV) or DEFAULT_CONN_ID


def address_of(conn: Any) -> str | None:
    """The Ray address an Airflow ``Connection`` names (see the module docstring), or None."""
    extra = conn.extra_dejson if conn.extra else {}
    given = extra.get("address") if isinstance(extra, dict) else None
    if given:
        return str(given)
    host = (conn.host or "").strip()
    if not host:
        return None
    if host.startswith("ray://"):
        return host
    client = (conn.conn_type or "").lower().replace("-", "_") in ("ray", "ray_client") \
        or (conn.schema or "").lower() == "ray"
    port = conn.port or (CLIENT_PORT if client else GCS_PORT)
    return f"ray://{host}:{port}" if client else f"{host}:{port}"


def connection_address(conn_id_: str | None = None) -> tuple[str, str] | None:
    """(address, ``airflow connection ID``) of the Ray cluster the connection names, or
    None when there is no such connection (silently) or it names no cluster. Other
    failures to read it (the secrets backend or the API server is down) raise: the task
    fails and Airflow retries it, rather than screen in-process a table meant for a
    cluster."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    cid = conn_id_ or conn_id()
    try:
        conn = BaseHook.get_connection(cid)
    except AirflowNotFoundException:
        return None
    address = address_of(conn)
    if address is None:
        log.warning("Airflow connection %r names no Ray cluster (no host, no extra address): "
                    "screening in-process", cid)
        return None
    return address, f"airflow connection {cid}"
