"""Configuration from the environment: one ``DATAWARD_HOME`` is one installation.

| variable | meaning | default |
|---|---|---|
| ``DATAWARD_HOME`` | data root: content store, snapshots, reports, logs, events | ``./.dataward`` |
| ``DATAWARD_DB_URL`` | SQLAlchemy URL of the lineage DB | SQLite in ``DATAWARD_HOME`` |
| ``DATAWARD_DATA_ROOT`` | if set, ingest refuses paths outside it | unset |
| ``DATAWARD_LANDING`` | landing folder the nightly DAG scans | ``$DATAWARD_HOME/landing`` |
| ``DATAWARD_LICENCE_POLICY`` | licence policy YAML | the packaged default |
| ``DATAWARD_POLICY`` | decision policy YAML | the packaged default |
| ``DATAWARD_EXPECTATIONS`` | folder holding the GX project (``gx/``) | ``expectations/`` of the checkout |
| ``DATAWARD_ACTOR`` | who is acting (recorded in provenance and audit) | the OS user |
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    data_root: Path | None
    landing: Path
    licence_policy: Path | None
    decision_policy: Path | None
    expectations_root: Path
    actor: str

    @property
    def store_root(self) -> Path:
        return self.home / "store"

    @property
    def snapshots_root(self) -> Path:
        return self.home / "snapshots"

    @property
    def reports_root(self) -> Path:
        return self.home / "reports"

    @property
    def runs_root(self) -> Path:
        return self.home / "runs"


def _actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid-{os.getuid()}"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("DATAWARD_HOME") or ".dataward").expanduser().resolve()
    from lineage.db import default_url

    def opt_path(key: str) -> Path | None:
        value = env.get(key)
        return Path(value).expanduser().resolve() if value else None

    return Settings(
        home=home,
        db_url=env.get("DATAWARD_DB_URL") or default_url(home),
        data_root=opt_path("DATAWARD_DATA_ROOT"),
        landing=opt_path("DATAWARD_LANDING") or home / "landing",
        licence_policy=opt_path("DATAWARD_LICENCE_POLICY"),
        decision_policy=opt_path("DATAWARD_POLICY"),
        expectations_root=opt_path("DATAWARD_EXPECTATIONS") or REPO_ROOT / "expectations",
        actor=env.get("DATAWARD_ACTOR") or _actor(),
    )


def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("dataward")
    except PackageNotFoundError:  # pragma: no cover
        v = "0+unknown"
    head = REPO_ROOT / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref = (REPO_ROOT / ".git" / ref[5:]).read_text().strip()
        return f"{v}+g{ref[:10]}"
    except OSError:
        return v
