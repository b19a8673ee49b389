"""Fault injection for the crash-safety tests: die at a named point, like a power cut.

``checkpoint(name)`` sends SIGKILL to the current process when the environment
variable ``DATAWARD_FAULT`` equals ``name`` (a comma-separated list of names also
works); otherwise it does nothing. SIGKILL cannot be caught, so no ``finally``
block, ``atexit`` hook or rollback runs: what is on disk and in the database at
that instant is exactly what a crash would leave.

The checkpoints the pipeline passes through (see ``tests/test_crash_safety.py``):

| name | where |
|---|---|
| ``ingest:stored`` | lineage ingest: blobs are in the content store, no DB row yet |
| ``ingest:recorded`` | lineage ingest: the version's transaction is about to commit |
| ``stage:<stage>:before`` | ``run_stage`` before the stage function runs |
| ``stage:<stage>:after`` | ``run_stage`` after the stage function returned |
| ``record:<stage>`` | ``stage_results.record``: the stage's transaction is about to commit |
| ``publish:blob`` | publish: the snapshot blob is stored, its DB transaction not begun |
| ``publish:staging`` | publish: the snapshot is half written to the staging folder |

A test-only hook: production never sets ``DATAWARD_FAULT``, and the check is one
environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "DATAWARD_FAULT"


def checkpoint(name: str) -> None:
    """SIGKILL this process if ``DATAWARD_FAULT`` names ``name``; a no-op otherwise."""
    wanted = os.environ.get(ENV)
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
