"""Crash safety: SIGKILL the pipeline inside each stage, re-run it, check nothing is lost or doubled.

``DATAWARD_FAULT=NAME`` makes :func:`dataward.faults.checkpoint` kill the process at that
point (see the table in ``dataward/faults.py``). One installation is killed at every
checkpoint in pipeline order (each run resumes where the previous one died, so the
screens run once), then run to the end without a fault; the invariants hold after it:

* the run completes (exit 0 or 1 with a decision), every killed run died by SIGKILL;
* one dataset version, one row per stage in ``stage_results``, one ``Snapshot``, one
  audit entry per stage action; the snapshot file's hash is the recorded one and it has
  the recorded rows;
* no temporary file is left in the content store, and no unreferenced blob either;
* ``dataward audit verify`` passes.
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lineage.db import get_engine, session_scope
from lineage.models import AuditEntry, DataFile, DatasetVersion, Snapshot, StageResult

# Pipeline order; each kill lands one step further than the previous run got.
KILL_POINTS = (
    "ingest:stored",          # blobs stored, no version row
    "ingest:recorded",        # version transaction flushed, not committed
    "stage:validate:before",
    "record:validate",        # validation done, its transaction not committed
    "stage:screen:before",
    "stage:screen:after",     # screen recorded; the process dies before going on
    "record:decide",
    "record:report",          # report files written, not recorded
    "publish:staging",        # snapshot half written in staging
    "publish:blob",           # snapshot blob in the store, no DB rows
    "record:publish",         # snapshot rows flushed, not committed
)
STAGE_ACTIONS = ("validate", "screen", "decide", "report", "publish")


def _run(cli_process, data: Path, manifest: Path, fault: str | None):
    env = {"DATAWARD_FAULT": fault} if fault else {"DATAWARD_FAULT": ""}
    return cli_process("run", str(data), "--manifest", str(manifest), "--json", env=env, timeout=900)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_invariants(home: Path, db_url: str, name: str, cli_process) -> dict:
    """The crash-safety invariants of one installation; returns a few figures."""
    import pyarrow.parquet as pq

    with session_scope(get_engine(db_url)) as s:
        versions = s.execute(select(DatasetVersion).join(DatasetVersion.dataset)).scalars().all()
        sources = [v for v in versions if v.dataset.name == name]
        assert len(sources) == 1, [v.ref for v in versions]
        src = sources[0]
        stages = Counter(s.execute(select(StageResult.stage)
                                   .where(StageResult.version_id == src.id)).scalars())
        assert stages == Counter(STAGE_ACTIONS), stages
        snaps = s.execute(select(Snapshot)).scalars().all()
        assert len(snaps) == 1 and snaps[0].source_version_id == src.id
        snap = snaps[0]
        assert _sha256(Path(snap.path)) == snap.sha256
        assert pq.ParquetFile(snap.path).metadata.num_rows == snap.row_count
        assert snap.row_count == src.row_count - len(snap.excluded_row_ids)
        derived = [v for v in versions if v.dataset.name == f"{name}.approved"]
        assert len(derived) == 1
        actions = Counter((a, subj) for a, subj in s.execute(
            select(AuditEntry.action, AuditEntry.subject)))
        assert actions[("ingest", src.ref)] == 1
        for stage in STAGE_ACTIONS:
            assert actions[(stage, src.ref)] == 1, (stage, actions)
        assert actions[("snapshot", derived[0].ref)] == 1
        referenced = {(f.sha256) for f in s.execute(select(DataFile)).scalars()}
        n_audit = s.execute(select(func.count()).select_from(AuditEntry)).scalar()
    store = home / "store"
    temps = [p for p in store.rglob("*") if p.is_file() and (p.name.startswith(".incoming-")
                                                             or p.parent.name == "staging")]
    assert temps == [], temps
    blobs = {p.parent.name + p.name.split(".")[0] for p in (store / "sha256").rglob("*") if p.is_file()}
    assert blobs == referenced, f"unreferenced blobs: {blobs - referenced}"
    verify = cli_process("audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "intact" in verify.stdout
    return {"audit_entries": n_audit, "snapshot_rows": snap.row_count}


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL: test_sigkill_during_ingest
def test_sigkill_in_every_stage_then_rerun(home, db_url, digits_example, cli_process, request):
    data, manifest = digits_example / "train", digits_example / "manifest.yaml"
    for point in KILL_POINTS:
        r = _run(cli_process, data, manifest, point)
        assert r.returncode == -signal.SIGKILL, (point, r.returncode, r.stderr[-2000:])
    final = _run(cli_process, data, manifest, None)
    assert final.returncode in (0, 1), final.stderr[-2000:]
    summary = json.loads(final.stdout)
    assert summary["outcome"] in ("approve", "trim"), summary
    assert summary["snapshot_ref"] == "digits-example.approved@1"
    check_invariants(home, db_url, "digits-example", cli_process)
    # A second clean run changes nothing.
    again = _run(cli_process, data, manifest, None)
    assert again.returncode == final.returncode
    assert json.loads(again.stdout)["snapshot_ref"] == "digits-example.approved@1"
    check_invariants(home, db_url, "digits-example", cli_process)


def test_sigkill_during_ingest(home, db_url, tmp_path, cli_process):
    """The ingest transaction on both databases: killed after storing, and before commit."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    d = tmp_path / "toy"
    d.mkdir()
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"x": rng.normal(size=50), "label": rng.integers(0, 2, 50)}),
                   d / "part-0.parquet")
    m = tmp_path / "m.yaml"
    m.write_text(yaml.safe_dump({"name": "toy", "owner": "o@example.com", "license": "MIT",
                                 "source": {"uri": "https://example.com"}, "label_column": "label"}))
    for point in ("ingest:stored", "ingest:recorded"):
        r = cli_process("ingest", str(d), "--manifest", str(m), env={"DATAWARD_FAULT": point})
        assert r.returncode == -signal.SIGKILL, (point, r.stderr[-1000:])
        with session_scope(get_engine(db_url)) as s:
            assert s.execute(select(func.count()).select_from(DatasetVersion)).scalar() == 0
    ok = cli_process("ingest", str(d), "--manifest", str(m), "--json", env={"DATAWARD_FAULT": ""})
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["created"] is True
    with session_scope(get_engine(db_url)) as s:
        assert s.execute(select(func.count()).select_from(DatasetVersion)).scalar() == 1
        assert s.execute(select(func.count()).select_from(AuditEntry)
                         .where(AuditEntry.action == "ingest")).scalar() == 1
    assert not [p for p in (home / "store").rglob(".incoming-*")]
    v = cli_process("audit", "verify")
    assert v.returncode == 0, v.stderr


def test_faults_hook_is_inert_without_env(monkeypatch):
    from dataward import faults

    monkeypatch.delenv("DATAWARD_FAULT", raising=False)
    faults.checkpoint("stage:screen:before")  # no effect
    monkeypatch.setenv("DATAWARD_FAULT", "something-else")
    faults.checkpoint("stage:screen:before")


def test_stale_temp_files_are_swept_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from lineage.store import ContentStore, temp_tag

    store = ContentStore(tmp_path / "store")
    live = store.staging_file("snapshot", ".parquet")  # this process: alive
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
    host = temp_tag().rsplit("-", 1)[0]
    dead = store.staging / f"snapshot-{host}-{dead_pid}-abc.parquet"
    dead.write_bytes(b"partial")
    shard = store.root / "sha256" / "ab"
    shard.mkdir(parents=True)
    dead_in = shard / f".incoming-{host}-{dead_pid}-xyz"
    dead_in.write_bytes(b"partial")
    foreign = store.staging / "snapshot-otherhost-1-abc.parquet"  # another host: kept while young
    foreign.write_bytes(b"x")
    removed = set(store.sweep())
    assert removed == {dead, dead_in}
    assert live.exists() and foreign.exists()
    old = os.path.getmtime(foreign) - 7 * 3600
    os.utime(foreign, (old, old))
    assert store.sweep() == [foreign]
