"""A throwaway PostgreSQL cluster on loopback, for tests and CI (stdlib only).

    python tests/pgcluster.py start DIR   # prints the SQLAlchemy URL
    python tests/pgcluster.py stop DIR

PostgreSQL refuses to run as root, so as root the cluster is made and run by an
unprivileged user (``postgres`` if it exists, else ``nobody``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def available() -> bool:
    return find_bin("pg_ctl") is not None and find_bin("initdb") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as(user: str | None, argv: list[str]) -> None:
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=120)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def _service_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL")


def start(base: str | os.PathLike[str]) -> str:
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    data, sock = base / "data", base / "sock"
    sock.mkdir(exist_ok=True)
    user = _service_user()
    if user:
        pw = pwd.getpwnam(user)
        for p in (base, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o755)
    port = _free_port()
    _run_as(user, [find_bin("initdb"), "-D", str(data), "-U", "dataward", "-A", "trust",
                   "-E", "UTF8", "--no-locale"])
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock} "
            "-c fsync=off -c max_connections=100")
    _run_as(user, [find_bin("pg_ctl"), "-D", str(data), "-l", str(base / "server.log"),
                   "-o", opts, "-w", "-t", "60", "start"])
    (base / "port").write_text(str(port))
    return f"postgresql+psycopg://dataward@127.0.0.1:{port}/postgres"


def stop(base: str | os.PathLike[str]) -> None:
    base = Path(base)
    if (base / "data").exists():
        try:
            _run_as(_service_user(), [find_bin("pg_ctl"), "-D", str(base / "data"), "-m",
                                      "immediate", "-w", "stop"])
        except RuntimeError:
            pass


def fresh_database(server_url: str):
    """A new, empty database on the server: (its URL, a function that drops it)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"dw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop():
        from lineage.db import dispose_all

        dispose_all()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


if __name__ == "__main__":
    cmd, where = sys.argv[1], sys.argv[2]
    if cmd == "start":
        print(start(where))
    elif cmd == "stop":
        stop(where)
    else:
        sys.exit(f"usage: {sys.argv[0]} start|stop DIR")
