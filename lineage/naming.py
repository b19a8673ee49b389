"""Dataset namespaces and names under the OpenLineage naming spec.

OpenLineage identifies a dataset by ``(namespace, name)``: the namespace names the
place that holds it (``scheme://authority``: ``file://HOST``, ``s3://BUCKET``,
``postgres://HOST:PORT``, ``https://HOST``), the name locates it there (a path, a
key, ``DATABASE.SCHEMA.TABLE``). Two producers that name the same data the same way
meet in one node of the lineage graph, which is the point of following the spec.

Files are named where they lie: ``file://HOST`` and the absolute path, as the
OpenLineage client's ``RemoteFileSystem`` naming does. The host matters because a
path is only meaningful on the machine that holds it (an Airflow worker, say).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Database schemes OpenLineage names as SCHEME://HOST:PORT with DATABASE.SCHEMA.TABLE
_DB_SCHEMES = {"postgres": 5432, "postgresql": 5432, "mysql": 3306}


def host() -> str:
    """This machine's name as OpenLineage file namespaces use it (``DATAWARD_HOST`` wins)."""
    return os.environ.get("DATAWARD_HOST") or socket.gethostname() or "localhost"


def file_dataset(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(namespace, name) of a local file or folder: ``file://HOST`` and its absolute path."""
    return f"file://{host()}", Path(path).expanduser().resolve().as_posix()


def uri_dataset(uri: str, *, base_dir: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """(namespace, name) of the dataset a source URI names.

    ``s3://b/k`` -> (``s3://b``, ``k``); ``gs://``, ``abfss://``, ``hdfs://``, ``http(s)://``
    likewise (the name keeps the path); ``postgres://h:p/db/schema.table`` ->
    (``postgres://h:p``, ``db.schema.table``); ``file:///p``, ``file://host/p`` and plain
    paths -> ``file://HOST`` and the absolute path (relative to ``base_dir``). Anything
    else (``urn:...``, ``doi:...``) keeps its scheme as namespace and the rest as name.
    """
    uri = uri.strip()
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] in (":\\", ":/")):  # C:\ paths
        if scheme == "file":
            path = unquote(parts.path)
            if parts.netloc and parts.netloc not in ("localhost", host()):
                return f"file://{parts.netloc}", path
        else:
            path = uri
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = Path(base_dir or Path.cwd()) / p
        return file_dataset(p)
    if scheme in _DB_SCHEMES:
        port = parts.port or _DB_SCHEMES[scheme]
        name = ".".join(s for s in parts.path.split("/") if s)
        return f"postgres://{parts.hostname}:{port}" if scheme.startswith("postgres") \
            else f"{scheme}://{parts.hostname}:{port}", name
    if parts.netloc:
        authority = parts.hostname or ""  # never the credentials a URI may carry
        if parts.port:
            authority += f":{parts.port}"
        if "@" in parts.netloc and scheme in ("wasbs", "abfss"):
            authority = parts.netloc  # container@account is the authority there
        name = parts.path.lstrip("/") if scheme in ("s3", "s3a", "gs", "abfss", "wasbs") else (parts.path or "/")
        if parts.query:
            name += "?" + parts.query
        return f"{scheme}://{authority}", name or "/"
    return scheme, uri[len(scheme) + 1:]


def database_namespace(db_url: str) -> str:
    """The namespace of Dataward's own catalog (the lineage database) for logical names.

    PostgreSQL: ``postgres://HOST:PORT``; SQLite: ``sqlite://HOST`` (the database file
    is local to this machine, like a file).
    """
    parts = urlsplit(db_url)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme.startswith("postgres"):
        return f"postgres://{parts.hostname or 'localhost'}:{parts.port or 5432}"
    if scheme == "sqlite":
        return f"sqlite://{host()}"
    return f"{scheme}://{parts.hostname or host()}" + (f":{parts.port}" if parts.port else "")


def catalog_name(db_url: str, ref: str) -> str:
    """The logical name ``NAME@VERSION`` qualified by the catalog's database."""
    parts = urlsplit(db_url)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme == "sqlite":  # sqlite:///relative or sqlite:////absolute
        db = unquote(parts.path)[1:]
        return f"{Path(db).resolve().as_posix() if db and db != ':memory:' else 'memory'}#{ref}"
    db = parts.path.lstrip("/") or "dataward"
    return f"{db}.dataward.{ref}"
