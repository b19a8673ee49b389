"""Ingest, provenance, licence verdicts and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from lineage import audit, licences
from lineage.db import get_engine, session_scope
from lineage.errors import LineageInputError, NotFound
from lineage.ingest import resolve
from lineage.models import AuditEntry, DataFile, Dataset, DatasetVersion, LicenceRecord


def write_manifest(path: Path, **overrides) -> Path:
    m = {"name": "toy", "owner": "data@example.com", "license": "MIT",
         "source": {"uri": "https://example.com/toy", "publisher": "Example Org"},
         "label_column": "label"}
    m.update(overrides)
    m = {k: v for k, v in m.items() if v is not None}
    path.write_text(yaml.safe_dump(m))
    return path


def toy_table(n: int = 20, seed: int = 0) -> pa.Table:
    import numpy as np

    rng = np.random.default_rng(seed)
    return pa.table({"x": rng.normal(size=n), "y": rng.normal(size=n),
                     "label": rng.integers(0, 2, size=n)})


@pytest.fixture
def toy(tmp_path):
    d = tmp_path / "toy"
    d.mkdir()
    pq.write_table(toy_table(), d / "part-0.parquet")
    pq.write_table(toy_table(seed=1), d / "part-1.parquet")
    return d


def counts(url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    with session_scope(get_engine(url)) as s:
        return {m.__tablename__: s.execute(select(func.count()).select_from(m)).scalar()
                for m in (Dataset, DatasetVersion, DataFile, LicenceRecord, AuditEntry)}


def store_files(home: Path) -> list[Path]:
    root = home / "store"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_ingest_records_provenance_and_is_idempotent(home, toy, tmp_path, cli, db_url):
    m = write_manifest(tmp_path / "m.yaml", collection={"method": "survey", "from": "2024-01-01"})
    r = cli("ingest", str(toy), "--manifest", str(m), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ref"] == "toy@1" and out["created"] and out["rows"] == 40
    assert out["licence"]["expression"] == "MIT" and out["licence"]["allowed_for_training"]

    again = cli("ingest", str(toy), "--manifest", str(m), "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["created"] is False
    assert counts(db_url)["dataset_versions"] == 1
    assert len(store_files(home)) == 2

    show = json.loads(cli("lineage", "show", "toy", "--json").stdout)
    assert show["provenance"]["source_uri"] == "https://example.com/toy"
    assert show["provenance"]["publisher"] == "Example Org"
    assert show["provenance"]["collection_method"] == "survey"
    assert show["provenance"]["acquired_by"] == "tester"
    assert [f["path"] for f in show["files"]] == ["part-0.parquet", "part-1.parquet"]
    assert show["schema"][0] == {"name": "x", "type": "double", "nullable": True}

    # New content -> version 2; listing shows both.
    pq.write_table(toy_table(seed=2), toy / "part-2.parquet")
    r2 = cli("ingest", str(toy), "--manifest", str(m), "--json")
    assert json.loads(r2.stdout)["ref"] == "toy@2"
    listing = json.loads(cli("datasets", "--json").stdout)
    assert [v["ref"] for v in listing] == ["toy@1", "toy@2"]
    assert listing[1]["rows"] == 60 and len(listing[1]["content_hash"]) == 64
    assert cli("audit", "verify").returncode == 0


def test_formats_csv_and_jsonl(home, tmp_path, cli):
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "a.csv").write_text("x,y,label\n1.5,2,0\n3.0,4,1\n")
    (d / "b.csv").write_text("x,y,label\n5.5,6,1\n")
    m = write_manifest(tmp_path / "m.yaml")
    r = cli("ingest", str(d), "--manifest", str(m), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == 3
    j = tmp_path / "rows.jsonl"
    j.write_text('{"x": 1.0, "label": 0}\n{"x": 2.0, "label": 1}\n')
    r = cli("ingest", str(j), "--manifest", str(write_manifest(tmp_path / "j.yaml", name="jl")), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == 2


def test_licence_quarantine_unknown_and_disallowed(home, toy, tmp_path, cli, db_url):
    r = cli("ingest", str(toy), "--manifest",
            str(write_manifest(tmp_path / "nc.yaml", license="CC-BY-NC-4.0")))
    assert r.returncode == 1
    assert "QUARANTINED" in r.stdout and "non-commercial" in r.stdout
    r = cli("ingest", str(toy), "--manifest",
            str(write_manifest(tmp_path / "ref.yaml", name="toy2", license="LicenseRef-internal-v3")))
    assert r.returncode == 1 and "not classified" in r.stdout
    listing = {v["ref"]: v for v in json.loads(cli("datasets", "--json").stdout)}
    assert listing["toy@1"]["status"] == "quarantined"
    assert listing["toy2@1"]["licence"] == "LicenseRef-internal-v3"
    with session_scope(get_engine(db_url)) as s:
        actions = [e.action for e in s.query(AuditEntry).order_by(AuditEntry.id)]
    assert actions == ["ingest", "quarantine", "ingest", "quarantine"]


def test_derived_dataset_licence_is_and_of_parents(home, toy, tmp_path, cli):
    assert cli("ingest", str(toy), "--manifest", str(write_manifest(
        tmp_path / "p.yaml", name="base", license="CC-BY-SA-4.0"))).returncode == 0
    child = tmp_path / "child.parquet"
    pq.write_table(toy_table(seed=9), child)
    r = cli("ingest", str(child), "--manifest", str(write_manifest(
        tmp_path / "c.yaml", name="derived", license="MIT", parents=["base@1"])), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["licence"]["expression"] == "CC-BY-SA-4.0 AND MIT"
    show = json.loads(cli("lineage", "show", "derived@1", "--json").stdout)
    assert show["parents"][0]["ref"] == "base@1"
    assert show["licence"]["share_alike"] is True
    tree = cli("lineage", "show", "derived")
    assert "base@1" in tree.stdout


BAD_CASES = {
    "missing path": lambda d, t: (str(t / "nope"), {}),
    "corrupt parquet": lambda d, t: (_write(t / "bad.parquet", b"PAR1 this is not parquet"), {}),
    "truncated parquet": lambda d, t: (_truncated(d, t), {}),
    "not a data file": lambda d, t: (_write(t / "notes.txt", b"hello"), {}),
    "empty dataset": lambda d, t: (_empty(t), {}),
    "empty folder": lambda d, t: (str(_mkdir(t / "void")), {}),
    "invalid spdx": lambda d, t: (str(d), {"license": "Foo-License-9"}),
    "broken expression": lambda d, t: (str(d), {"license": "MIT AND ("}),
    "missing key": lambda d, t: (str(d), {"owner": None}),
    "unknown parent": lambda d, t: (str(d), {"parents": ["ghost@3"]}),
    "label column absent": lambda d, t: (str(d), {"label_column": "target"}),
    "symlink outside": lambda d, t: (_symlinked(d, t), {}),
    "non-utf8 csv": lambda d, t: (_write(t / "latin.csv", b"a,b\n1,caf\xe9\n"), {}),
    "mismatched schemas": lambda d, t: (_mismatched(t), {}),
}


def _write(p: Path, data: bytes) -> str:
    p.write_bytes(data)
    return str(p)


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _truncated(d: Path, t: Path) -> str:
    raw = (d / "part-0.parquet").read_bytes()
    return _write(t / "trunc.parquet", raw[: len(raw) // 2])


def _empty(t: Path) -> str:
    pq.write_table(toy_table().slice(0, 0), t / "empty.parquet")
    return str(t / "empty.parquet")


def _symlinked(d: Path, t: Path) -> str:
    outside = t / "secret.parquet"
    pq.write_table(toy_table(), outside)
    folder = _mkdir(t / "linked")
    shutil.copy(d / "part-0.parquet", folder / "ok.parquet")
    os.symlink(outside, folder / "sneaky.parquet")
    return str(folder)


def _mismatched(t: Path) -> str:
    folder = _mkdir(t / "mm")
    pq.write_table(toy_table(), folder / "a.parquet")
    pq.write_table(pa.table({"z": [1, 2]}), folder / "b.parquet")
    return str(folder)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_exit_2_and_nothing_written(case, home, toy, tmp_path, cli, db_url):
    path, overrides = BAD_CASES[case](toy, tmp_path)
    m = write_manifest(tmp_path / "m.yaml", **overrides)
    if "owner" in overrides:  # write_manifest drops None values: the key is missing
        assert "owner" not in yaml.safe_load(m.read_text())
    r = cli("ingest", path, "--manifest", str(m))
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("dataward: "), r.stderr
    assert "Traceback" not in r.stderr
    assert counts(db_url) == {"datasets": 0, "dataset_versions": 0, "data_files": 0,
                              "licences": 0, "audit_log": 0}
    assert store_files(home) == []


def test_bad_manifest_yaml_and_data_root(home, toy, tmp_path, cli, monkeypatch):
    m = tmp_path / "m.yaml"
    m.write_text("name: [unclosed\n")
    r = cli("ingest", str(toy), "--manifest", str(m))
    assert r.returncode == 2 and "not valid YAML" in r.stderr
    good = write_manifest(tmp_path / "good.yaml")
    root = tmp_path / "root"
    root.mkdir()
    r = cli("ingest", str(toy), "--manifest", str(good), env={"DATAWARD_DATA_ROOT": str(root)})
    assert r.returncode == 2 and "outside the data root" in r.stderr


def test_audit_chain_detects_tampering(home, toy, tmp_path, cli, db_url):
    for name in ("a", "b", "c"):
        assert cli("ingest", str(toy), "--manifest",
                   str(write_manifest(tmp_path / f"{name}.yaml", name=name))).returncode == 0
    ok = cli("audit", "verify")
    assert ok.returncode == 0 and "3 entries verified" in ok.stdout
    engine = get_engine(db_url)
    with session_scope(engine) as s:
        entry = s.get(AuditEntry, 2)
        entry.payload = {**entry.payload, "licence": "CC0-1.0"}
    bad = cli("audit", "verify")
    assert bad.returncode == 1 and "audit entry 2" in bad.stderr


def test_audit_detects_stored_file_tampering(home, toy, tmp_path, cli):
    assert cli("ingest", str(toy), "--manifest", str(write_manifest(tmp_path / "m.yaml"))).returncode == 0
    blob = store_files(home)[0]
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes() + b"x")
    r = cli("audit", "verify")
    assert r.returncode == 1 and "was modified" in r.stderr


def test_audit_append_chains_in_caller_transaction(db_url):
    engine = get_engine(db_url)
    with pytest.raises(RuntimeError):
        with session_scope(engine) as s:
            audit.append(s, actor="a", action="x", subject="s")
            raise RuntimeError("rolled back")
    with session_scope(engine) as s:
        first = audit.append(s, actor="a", action="x", subject="s", payload={"k": 1})
        second = audit.append(s, actor="a", action="y", subject="s")
        assert first.id == 1 and second.prev_hash == first.entry_hash
    with session_scope(engine) as s:
        assert audit.verify_chain(s) == (2, [])
        s.delete(s.get(AuditEntry, 1))
    with session_scope(engine) as s:
        count, problems = audit.verify_chain(s)
        assert count == 1 and problems


def test_resolve_refs(home, toy, tmp_path, cli, db_url):
    cli("ingest", str(toy), "--manifest", str(write_manifest(tmp_path / "m.yaml")))
    with session_scope(get_engine(db_url)) as s:
        assert resolve(s, "toy").version == 1
        assert resolve(s, "toy@1").version == 1
        with pytest.raises(NotFound):
            resolve(s, "toy@2")
        with pytest.raises(LineageInputError):
            resolve(s, "toy@x")
    r = cli("lineage", "show", "ghost")
    assert r.returncode == 2 and "no dataset named ghost" in r.stderr


@pytest.mark.parametrize("expr,use,allowed", [
    ("mit", "commercial", True),
    ("Apache-2.0 OR CC-BY-NC-4.0", "commercial", True),
    ("CC-BY-4.0 AND CC-BY-NC-4.0", "non-commercial", False),
    ("CC-BY-ND-4.0", "commercial", False),
    ("LicenseRef-Academic-Research-Only", "academic-only", False),
    ("GPL-2.0-only WITH Classpath-exception-2.0", "commercial", True),
    ("LicenseRef-unknown", "unspecified", False),
])
def test_licence_policy(expr, use, allowed):
    v = licences.judge(expr, licences.load_policy())
    assert (v.use_class, v.allowed_for_training) == (use, allowed)


def test_licence_policy_file_can_allow_non_commercial(tmp_path):
    p = tmp_path / "policy.yaml"
    p.write_text("version: research\nallowed_use_classes: [commercial, non-commercial]\n"
                 "licences:\n  CC-BY-NC-4.0: non-commercial\n")
    v = licences.judge("CC-BY-NC-4.0", licences.load_policy(p))
    assert v.allowed_for_training and v.policy_version == "research"
    p.write_text("licences:\n  MIT: {use_class: free-for-all}\n")
    with pytest.raises(LineageInputError, match="use_class"):
        licences.load_policy(p)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_internal_error_is_one_line_with_saved_traceback(home, toy, tmp_path, cli, monkeypatch):
    import lineage.ingest

    def broken(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(lineage.ingest, "ingest", broken)
    r = cli("ingest", str(toy), "--manifest", str(write_manifest(tmp_path / "m.yaml")))
    assert r.returncode == 3
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "internal error (RuntimeError: simulated bug)" in lines[0]
    saved = Path(lines[0].rsplit("traceback saved to ", 1)[1])
    assert saved.parent == home / "logs" and "simulated bug" in saved.read_text()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_console_script_bad_input_is_one_line(home, tmp_path, cli_process):
    """The installed `dataward` script itself: exit 2, one stderr line, no traceback."""
    r = cli_process("ingest", str(tmp_path / "missing"), "--manifest", str(tmp_path / "m.yaml"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_read_only_scope_does_not_block_writers(db_url):
    """A long read (listing, audit walk, report) must not hold SQLite's write lock."""
    import sqlite3

    from sqlalchemy import text

    select_one = text("select count(*) from audit_log")
    engine = get_engine(db_url)
    path = db_url.split("///", 1)[1]
    with session_scope(engine, read_only=True) as s:
        s.execute(select_one).scalar()
        other = sqlite3.connect(path, timeout=0.5, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # would raise 'database is locked' under a write lock
        other.execute("ROLLBACK")
        other.close()
    with session_scope(engine) as s:
        s.execute(select_one).scalar()
        other = sqlite3.connect(path, timeout=0.5, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
