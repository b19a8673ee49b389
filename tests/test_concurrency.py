"""Concurrent imports: separate ``dataward ingest`` processes against one lineage DB.

Four different datasets plus two imports of one more dataset with identical content,
all started at once: every import is recorded exactly once (the identical pair
yields one version, one ``created`` and one "already ingested"), none is lost, no
process deadlocks or fails, and the audit chain verifies. PostgreSQL (row locks,
advisory locks) is the production case; SQLite (one writer at a time) on request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import func, select

from lineage.db import get_engine, session_scope
from lineage.models import AuditEntry, DataFile, Dataset, DatasetVersion


def _dataset(root: Path, name: str, seed: int) -> tuple[Path, Path]:
    d = root / name
    d.mkdir()
    rng = np.random.default_rng(seed)
    pq.write_table(pa.table({"x": rng.normal(size=200), "y": rng.normal(size=200),
                             "label": rng.integers(0, 3, 200)}), d / "part-0.parquet")
    m = root / f"{name}.yaml"
    m.write_text(yaml.safe_dump({"name": name, "owner": "o@example.com", "license": "MIT",
                                 "source": {"uri": f"https://example.com/{name}"},
                                 "label_column": "label"}))
    return d, m


# SQLite serializes writers with BEGIN IMMEDIATE (verified by hand with this test); the six
# processes cost about a minute on a 2-core CI box, so the suite runs the production case.
@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_concurrent_ingests_all_recorded_once(home, db_url, tmp_path):
    names = [f"conc-{i}" for i in range(4)]
    jobs = [_dataset(tmp_path, n, i) for i, n in enumerate(names)]
    same = _dataset(tmp_path, "conc-same", 99)
    jobs += [same, same]
    exe = Path(sys.executable).with_name("dataward")
    env = {**os.environ, "DATAWARD_FAULT": ""}
    procs = [subprocess.Popen([str(exe), "ingest", str(d), "--manifest", str(m), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for d, m in jobs]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)  # a deadlock would end here
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out))
    assert sorted(r["ref"] for r in results[:4]) == sorted(f"{n}@1" for n in names)
    assert all(r["created"] for r in results[:4])
    pair = results[4:]
    assert {r["ref"] for r in pair} == {"conc-same@1"}
    assert sorted(r["created"] for r in pair) == [False, True]

    with session_scope(get_engine(db_url)) as s:
        count = lambda q: s.execute(q).scalar()  # noqa: E731
        assert count(select(func.count()).select_from(Dataset)) == 5
        assert count(select(func.count()).select_from(DatasetVersion)) == 5
        assert count(select(func.count()).select_from(DataFile)) == 5
        ingests = s.execute(select(AuditEntry.subject).where(AuditEntry.action == "ingest")).scalars().all()
        assert sorted(ingests) == sorted([f"{n}@1" for n in names] + ["conc-same@1"])
        from lineage.audit import verify_chain

        n, problems = verify_chain(s)
        assert problems == [] and n >= 5
