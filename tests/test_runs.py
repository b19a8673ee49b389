"""Runs whose process died: a run killed with SIGKILL stays ``running`` only until the next
command looks (the next run, a rerun or ``dataward runs``), which marks it ``abandoned``
with where and when it was last seen; it never blocks a rerun."""

from __future__ import annotations

import json
import socket

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from sqlalchemy import select


def _runs() -> list[tuple[str, str, int | None, str | None]]:
    from dataward.context import Context
    from lineage.models import PipelineRun

    with Context().session() as s:
        return [(r.id, r.status, r.pid, r.note) for r in
                s.execute(select(PipelineRun).order_by(PipelineRun.started_at)).scalars()]


def test_killed_run_is_marked_abandoned_by_the_next_command(home, cli, cli_process, tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table({**{f"p{i}": rng.integers(0, 17, 90) for i in range(16)},
                             "label": rng.integers(0, 3, 90)}), data / "tiles.parquet")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"name": "tiles-killed", "owner": "data@example.com",
                                        "license": "CC-BY-4.0", "kind": "tiles-killed",
                                        "label_column": "label", "source": {"uri": "https://example.org"}}))
    die = {"DATAWARD_FAULT": "stage:validate:before"}  # SIGKILL, as `kill -9` would
    first = cli_process("run", str(data), "-m", str(manifest), env=die)
    assert first.returncode == -9, first.stderr
    [(run1, status, pid1, _)] = _runs()
    assert status == "running" and pid1  # the dead process left it running
    # the next run marks it abandoned before it starts (and is killed the same way)
    second = cli_process("run", str(data), "-m", str(manifest), env=die)
    assert second.returncode == -9
    (r1, s1, _, note1), (run2, s2, pid2, _) = _runs()
    assert r1 == run1 and s1 == "abandoned" and s2 == "running"
    assert f"process {pid1} on {socket.gethostname()} is gone" in note1 and "last seen" in note1
    # `dataward runs` marks the second
    out = json.loads(cli("runs", "--json").stdout)
    assert [m["run_id"] for m in out["marked_abandoned"]] == [run2]
    assert {r["run_id"]: r["status"] for r in out["runs"]} == {run1: "abandoned", run2: "abandoned"}
    assert all(r["host"] == socket.gethostname() for r in out["runs"])
    assert "abandoned" in cli("runs").stdout
    # an abandoned run never blocks a rerun (this one is killed at its second stage)
    third = cli_process("rerun", "tiles-killed@1", "--from", "validate", "--reason", "after the crash",
                        env={"DATAWARD_FAULT": "stage:screen:before"})
    assert third.returncode == -9, third.stderr
    from dataward.context import Context
    from dataward.stage_results import finished

    assert finished(Context(), "tiles-killed@1", "validate")[2]["status"] == "missing_suite"
    assert cli("audit", "verify").returncode == 0
