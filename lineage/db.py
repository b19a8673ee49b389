"""Engine and session handling for the lineage database.

``DATAWARD_DB_URL`` selects any SQLAlchemy URL (PostgreSQL in production); the
default is a SQLite file under ``DATAWARD_HOME``. Alembic migrations are applied
automatically the first time an engine is opened in a process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from lineage.errors import LineageInputError

_MIGRATIONS = Path(__file__).with_name("migrations")
_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
# Any fixed 64-bit key: serializes concurrent migrations on PostgreSQL.
_PG_MIGRATION_LOCK = 0x0DA7A3A2D


def default_url(home: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(home).resolve() / 'lineage.db'}"


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to print or log (also when malformed)."""
    import re

    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: still never show what may be a password
        return re.sub(r"(://[^/@]*?:)[^@/]*@", r"\1***@", str(url))


class DatabaseUnavailable(LineageInputError):
    """The lineage DB URL is unusable or the server cannot be reached (message: one line,
    the URL's password redacted)."""


def _unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    lines = [ln.strip() for ln in str(getattr(exc, "orig", None) or exc).splitlines() if ln.strip()]
    detail = lines[0] if lines else type(exc).__name__
    secret = _password(url)
    if secret:
        detail = detail.replace(secret, "***")
    return DatabaseUnavailable(f"cannot use the lineage database {redact_url(url)}: {detail}")


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password or None
    except Exception:
        return None


def _sqlite_pragmas(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and so lets two writers
    # race to upgrade a read lock; take the write lock at BEGIN instead.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - driver hook
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - driver hook
        # Read-only scopes take no write lock: under WAL they never block a writer.
        read_only = conn.get_execution_options().get("dataward_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def get_engine(url: str) -> Engine:
    """The process-wide engine for ``url``, migrated to the newest schema."""
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            try:
                if url.startswith("sqlite"):
                    path = url.split("///", 1)[-1]
                    if path and path != ":memory:":
                        Path(path).parent.mkdir(parents=True, exist_ok=True)
                    engine = create_engine(url, connect_args={"timeout": 30})
                    _sqlite_pragmas(engine)
                else:
                    engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
                upgrade(engine)
            except (ArgumentError, NoSuchModuleError, ValueError) as exc:
                raise _unavailable(url, exc) from None
            except DBAPIError as exc:
                if not exc.connection_invalidated and "connect" not in str(exc).lower():
                    raise
                raise _unavailable(url, exc) from None
            _ENGINES[url] = engine
        return engine


def dispose_all() -> None:
    """Close every cached engine (tests and forked workers call this)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def _alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Apply pending Alembic migrations; cheap when the schema is current."""
    head = head_revision()
    if current_revision(engine) == head:
        return
    from alembic import command

    cfg = _alembic_config()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextmanager
def session_scope(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    ``read_only=True`` is for long reads (listings, audit verification, reports): on
    SQLite it starts a deferred transaction, so it never holds the write lock that
    other processes' writers wait for. Writing in such a scope is a bug.
    """
    bind = engine.execution_options(dataward_read_only=True) if read_only else engine
    factory = sessionmaker(bind=bind, expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
