"""Version diff on versions with known differences (checks/diff.py, dataward/diff.py, `dataward diff`)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from checks.diff import diff_tables, ks_statistic, psi


def versions(seed: int = 0):
    """A (500 rows) and B: 20 rows removed, 15 relabelled, 30 new rows, one extra copy of a row,
    feature f0 shifted by +3 in the new rows, a new column; B's last new row is flagged."""
    rng = np.random.default_rng(seed)
    n, d = 500, 4
    x = rng.normal(size=(n, d))
    y = rng.integers(0, 3, size=n)
    a = pa.table({**{f"f{i}": x[:, i] for i in range(d)}, "label": pa.array(y, pa.int64())})
    xb, yb = x[20:].copy(), y[20:].copy()
    yb[:15] = (yb[:15] + 1) % 3
    new = rng.normal(size=(30, d))
    new[:, 0] += 3.0
    xb = np.vstack([xb, new, x[100:101]])
    yb = np.concatenate([yb, np.full(30, 2), y[100:101]])
    b = pa.table({**{f"f{i}": xb[:, i] for i in range(d)}, "label": pa.array(yb, pa.int64()),
                  "source": ["s"] * len(yb)})
    return a, b


def test_rows_schema_labels_drift_and_newly_flagged():
    a, b = versions()
    n_b = b.num_rows
    d = diff_tables(a, b, label_col="label", flagged_b=[0, 3, 480, n_b - 2, 200])
    r = d["rows"]
    assert (r["n_a"], r["n_b"]) == (500, 511)
    assert (r["removed"], r["changed"], r["added"], r["unchanged"]) == (20, 15, 31, 465)
    assert r["examples"]["removed"][:3] == [0, 1, 2]
    assert r["examples"]["changed"][0]["row_b"] == 0 and r["examples"]["changed"][0]["row_a"] == 20
    assert d["schema"] == {"added": ["source"], "removed": [], "retyped": [], "changed": True}
    lab = d["labels"]
    na, nb = lab["counts_a"], lab["counts_b"]
    assert sum(na.values()) == 500 and sum(nb.values()) == 511
    expected_tvd = 0.5 * sum(abs(na[c] / 500 - nb[c] / 511) for c in na)
    assert lab["total_variation"] == pytest.approx(expected_tvd, abs=1e-6)
    cols = d["drift"]["columns"]
    assert d["drift"]["top"][0] == "f0" and d["drift"]["max_psi"] == cols["f0"]["psi"]
    assert all(cols["f0"]["psi"] > 2 * cols[c]["psi"] and cols["f0"]["ks"] > cols[c]["ks"] for c in ("f1", "f2", "f3"))
    # rows 0 and 3 were relabelled, 480 and n_b - 2 are new; 200 was already in A
    assert d["newly_flagged"] == {"n_flagged_b": 5, "arrived_with_b": 4, "already_in_a": 1,
                                  "examples": [0, 3, 480, n_b - 2]}


def test_identical_tables_and_duplicates_by_occurrence():
    a, _ = versions()
    d = diff_tables(a, a, label_col="label")
    assert (d["rows"]["added"], d["rows"]["removed"], d["rows"]["changed"]) == (0, 0, 0)
    doubled = pa.concat_tables([a, a.slice(0, 1)])
    d = diff_tables(a, doubled, label_col="label")
    assert (d["rows"]["added"], d["rows"]["removed"]) == (1, 0)


def test_drift_statistics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    assert psi(x, rng.normal(size=5000)) < 0.02 and psi(x, x + 1.0) > 0.5
    assert ks_statistic(x, x) == 0.0 and ks_statistic(np.zeros(10), np.ones(10)) == 1.0


def _ingest(ctx, tmp_path, table, name="dv"):
    from dataward.stages.ingest import ingest

    path = tmp_path / f"{name}-{table.num_rows}.parquet"
    pq.write_table(table, path)
    return ingest(ctx, path, manifest={"name": name, "owner": "t@example.com", "license": "CC-BY-4.0",
                                       "source": {"uri": "https://example.com"}, "label_column": "label"})


def test_cli_and_diff_against_previous_approved(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("DATAWARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATAWARD_DB_URL", f"sqlite:///{tmp_path / 'lineage.db'}")
    monkeypatch.delenv("DATAWARD_POLICY", raising=False)
    from dataward.context import Context
    from dataward.diff import diff_against_previous_approved, previous_approved
    from lineage.db import dispose_all
    from lineage.ingest import resolve

    try:
        ctx = Context()
        a, b = versions()
        r1 = _ingest(ctx, tmp_path, a)
        r2 = _ingest(ctx, tmp_path, b.drop(["source"]))
        assert diff_against_previous_approved(ctx, r2.ref) is None
        with ctx.session() as s:
            resolve(s, r1.ref).status = "approved"
        assert previous_approved(ctx, r2.ref) == r1.ref
        d = diff_against_previous_approved(ctx, r2.ref, flagged_b=[0, 480])
        assert d["a"] == r1.ref and d["rows"]["changed"] == 15 and d["newly_flagged"]["arrived_with_b"] == 2

        res = cli("diff", r1.ref, r2.ref, "--json")
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert (out["rows"]["added"], out["rows"]["removed"], out["rows"]["changed"]) == (31, 20, 15)
        assert out["newly_flagged"] is None  # B not screened
        res = cli("diff", r1.ref, r2.ref)
        assert "added 31, removed 20, relabelled 15" in res.stdout
        res = cli("diff", r1.ref, "dv@9")
        assert res.returncode == 2 and "dv@9" in res.stderr
    finally:
        dispose_all()
