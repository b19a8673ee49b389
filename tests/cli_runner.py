"""The ``dataward`` CLI run in the test process (a module of its own, not conftest:
``tests/screening/conftest.py`` is also importable as ``conftest``)."""

from __future__ import annotations

import os


class CliResult:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def invoke_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run the CLI in this process (fast); same app, exit codes and output as the script."""
    from typer.testing import CliRunner

    from dataward.cli import app

    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        result = CliRunner().invoke(app, list(args), catch_exceptions=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # an unhandled error would be a traceback for the user
    return CliResult(result.exit_code, result.stdout, result.stderr)
