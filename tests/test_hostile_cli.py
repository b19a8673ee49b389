"""Hostile input at every command (issue 29): each class that once ended in an internal
error (exit 3), a wrong message or a silent acceptance, kept as a regression case.

Every case must end in exit 0, 1 or 2 with one readable ``dataward: ...`` line on stderr
for a refusal, never exit 3 or a traceback; a refusal leaves nothing behind. The
property test over all commands is ``test_cli_property.py``; its helpers live here.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

GOOD_MANIFEST = {"name": "hostile", "owner": "o@example.com", "license": "MIT",
                 "source": {"uri": "https://example.com/h"}, "label_column": "label"}


@pytest.fixture
def sqlite_home(tmp_path, monkeypatch):
    """A fresh installation on SQLite (these cases are about input, not the database)."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("DATAWARD_HOME", str(h))
    monkeypatch.setenv("DATAWARD_ACTOR", "tester")
    for var in ("DATAWARD_DB_URL", "DATAWARD_DATA_ROOT", "DATAWARD_LANDING", "DATAWARD_FAULT",
                "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    yield h
    from lineage.db import dispose_all

    dispose_all()


def state(home: Path) -> tuple:
    """(versions, audit entries, stored files, files under runs/): what a refusal must not change."""
    from sqlalchemy import func, inspect, select

    from dataward.context import Context
    from lineage.models import AuditEntry, DatasetVersion

    ctx = Context()
    if not inspect(ctx.engine).has_table("dataset_versions"):
        counts: tuple = (0, 0)
    else:
        with ctx.session() as s:
            counts = (s.execute(select(func.count()).select_from(DatasetVersion)).scalar(),
                      s.execute(select(func.count()).select_from(AuditEntry)).scalar())
    stored = sorted(str(p) for d in ("store", "snapshots") if (home / d).exists()
                    for p in (home / d).rglob("*") if p.is_file())
    return (*counts, stored)


def assert_clean_outcome(r, before=None, home: Path | None = None, *, refused: bool | None = None) -> None:
    """Exit 0, 1 or 2; a refusal (2) is one ``dataward:`` line and, given ``before``,
    leaves the installation as it was."""
    assert r.returncode in (0, 1, 2), (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    if refused is not None:
        assert (r.returncode == 2) == refused, (r.returncode, r.stdout, r.stderr)
    if r.returncode == 2:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("dataward: "), r.stderr
        if before is not None:
            assert state(home) == before, "a refusal must leave nothing behind"


def write_manifest(path: Path, **overrides) -> Path:
    path.write_text(yaml.safe_dump({**GOOD_MANIFEST, **overrides}, allow_unicode=True), encoding="utf-8")
    return path


def small_table(n: int = 30, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"x": rng.normal(size=n), "y": rng.normal(size=n), "label": rng.integers(0, 2, n)})


def image_folder(root: Path, n: int = 6) -> Path:
    from PIL import Image

    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            px = (np.random.default_rng(i + 10 * (c == "b")).random((8, 8)) * 255).astype("uint8")
            Image.fromarray(px).save(root / c / f"{i}.png")
    return root


# ------------------------------------------------------------ symlink loops


@pytest.mark.parametrize("kind", ["self", "pair", "dir"])
@pytest.mark.parametrize("command", ["ingest", "screen"])
def test_symlink_loop_in_image_folder_is_refused(sqlite_home, cli, tmp_path, kind, command):
    folder = image_folder(tmp_path / "imgs")
    if kind == "self":
        (folder / "a" / "loop.png").symlink_to("loop.png")
    elif kind == "pair":
        (folder / "a" / "one.png").symlink_to("two.png")
        (folder / "a" / "two.png").symlink_to("one.png")
    else:
        (folder / "b" / "sub").symlink_to("sub")
    before = state(sqlite_home)
    if command == "ingest":
        r = cli("ingest", str(folder), "--manifest", str(write_manifest(tmp_path / "m.yaml")))
    else:
        r = cli("screen", str(folder), "--label-col", "label", "--out", str(tmp_path / "out"))
    assert_clean_outcome(r, before, sqlite_home, refused=True)
    assert "symlink" in r.stderr and "loop" in r.stderr


# ------------------------------------------------------------ data printed as text


MARKUP = ["[/bold]", "[red]owner[/red", "[/]", "[link=file:///etc/passwd]x", "[bold]]", "\\[x]"]


@pytest.mark.parametrize("text", MARKUP)
def test_manifest_text_prints_as_text_not_markup(sqlite_home, cli, tmp_path, text):
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(small_table(), d / "a.parquet")
    m = write_manifest(tmp_path / "m.yaml", owner=f"ana {text}", description=text,
                       source={"uri": f"https://example.com/{text}", "publisher": text},
                       collection={"method": text})
    assert cli("ingest", str(d), "--manifest", str(m)).returncode == 0
    r = cli("lineage", "show", "hostile")
    assert_clean_outcome(r, refused=False)
    assert f"owner: ana {text}" in r.stdout
    assert f"https://example.com/{text}" in r.stdout and f"publisher: {text}" in r.stdout


# ------------------------------------------------------------ OpenLineage event files


GOOD_EVENT = {"eventType": "COMPLETE", "eventTime": "2026-01-01T00:00:00Z",
              "run": {"runId": "r1"}, "job": {"namespace": "dataward", "name": "dataward.ingest"},
              "inputs": [{"namespace": "file://h", "name": "/d"}],
              "outputs": [{"namespace": "sqlite://h", "name": "db#x@1"}]}

BAD_EVENTS = [
    [1, 2], "text", 3, None, {},
    {**GOOD_EVENT, "run": None}, {**GOOD_EVENT, "run": []}, {**GOOD_EVENT, "run": {}},
    {**GOOD_EVENT, "run": {"runId": 7}}, {**GOOD_EVENT, "job": "x"}, {**GOOD_EVENT, "job": {"name": "j"}},
    {**GOOD_EVENT, "job": {"namespace": 1, "name": ["j"]}}, {**GOOD_EVENT, "inputs": "x"},
    {**GOOD_EVENT, "inputs": [1]}, {**GOOD_EVENT, "inputs": [{}]}, {**GOOD_EVENT, "outputs": [{"name": "n"}]},
    {**GOOD_EVENT, "outputs": [{"namespace": "n", "name": None}]},
    {**GOOD_EVENT, "inputs": [{**GOOD_EVENT["inputs"][0], "facets": []}]},
    {**GOOD_EVENT, "inputs": [{**GOOD_EVENT["inputs"][0], "facets": {"symlinks": {"identifiers": [3]}}}]},
    {**GOOD_EVENT, "inputs": [{**GOOD_EVENT["inputs"][0], "facets": {"symlinks": {"identifiers": [{}]}}}]},
    {**GOOD_EVENT, "run": {"runId": "r", "facets": {"parent": {"job": {}, "run": {}}}}},
    {**GOOD_EVENT, "run": {"runId": "r", "facets": {"parent": "p"}}},
    {**GOOD_EVENT, "run": {"runId": "r", "facets": []}},
]


@pytest.mark.parametrize("event", BAD_EVENTS, ids=[f"bad{i}" for i in range(len(BAD_EVENTS))])
@pytest.mark.parametrize("with_run", [False, True])
def test_lineage_graph_refuses_events_that_are_not_run_events(sqlite_home, cli, tmp_path, event, with_run):
    f = tmp_path / "events.jsonl"
    f.write_text(json.dumps(GOOD_EVENT) + "\n" + json.dumps(event) + "\n")
    r = cli("lineage", "graph", "--events", str(f), *(["--run", "r1"] if with_run else []))
    assert_clean_outcome(r, refused=True)
    assert "line 2" in r.stderr


def test_lineage_graph_still_draws_good_events(sqlite_home, cli, tmp_path):
    f = tmp_path / "events.jsonl"
    f.write_text(json.dumps(GOOD_EVENT) + "\n")
    r = cli("lineage", "graph", "--events", str(f))
    assert r.returncode == 0 and "flowchart LR" in r.stdout and "ingest" in r.stdout


# ------------------------------------------------------------ NAME@VERSION and durations


HUGE = ["hostile@99999999999999999999999", "hostile@2147483648", "hostile@\u00b2", "hostile@\u0663",
        "hostile@" + "9" * 5000, "hostile@" + "0" * 5000 + "1"]
REF_COMMANDS = [("history",), ("report", "show"), ("lineage", "show"), ("validate",), ("reference", "show"),
                ("review",), ("rerun",)]


@pytest.mark.parametrize("ref", HUGE)
@pytest.mark.parametrize("command", REF_COMMANDS, ids=lambda c: "-".join(c))
def test_version_numbers_out_of_range_are_bad_input(sqlite_home, cli, tmp_path, ref, command):
    extra = {"review": ["--approve", "--reason", "r"], "rerun": ["--reason", "r"]}.get(command[0], [])
    r = cli(*command, ref, *extra)
    assert_clean_outcome(r, refused=True)
    if command != ("review",):  # review asks who signs first
        assert "version" in r.stderr


@pytest.mark.parametrize("since", ["99999999999d", "9" * 5000 + "h", "9999-12-31T23:59:59-05:00",
                                   "0001-01-01T00:00:00+05:00", "99999999999999999999m"])
def test_digest_times_outside_the_calendar_are_bad_input(sqlite_home, cli, tmp_path, since):
    for option in ("--since", "--until"):
        r = cli("report", "digest", option, since, "--out", str(tmp_path / "d.html"))
        assert_clean_outcome(r, refused=True)
        assert not (tmp_path / "d.html").exists()


def test_version_at_the_limit_is_looked_up(sqlite_home, cli):
    r = cli("history", "hostile@2147483647")
    assert r.returncode == 2 and "no dataset" in r.stderr


# ------------------------------------------------------------ --out that cannot be written


@pytest.mark.parametrize("where", ["existing_file", "under_a_file", "unwritable"])
@pytest.mark.parametrize("command", ["screen", "digest"])
def test_output_path_that_cannot_be_written_is_bad_input(sqlite_home, cli, tmp_path, where, command):
    data = tmp_path / "t.parquet"
    pq.write_table(small_table(), data)
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    if where == "existing_file":
        out = blocker
    elif where == "under_a_file":
        out = blocker / "sub" / "dir"
    else:
        if os.geteuid() == 0:
            pytest.skip("root can write anywhere")
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        out = ro / "out"
    if command == "screen":
        r = cli("screen", str(data), "--label-col", "label", "--out", str(out))
    else:
        r = cli("report", "digest", "--out", str(out / "d.html") if where != "existing_file" else str(out))
        if where == "existing_file":  # a file is a fine --out for the digest: it is replaced
            assert_clean_outcome(r)
            return
    assert_clean_outcome(r, refused=True)
    assert blocker.read_text() == "mine"


# ------------------------------------------------------------ width and cell size


def _wide_csv(path: Path, n_cols: int, n_rows: int = 3) -> Path:
    header = ",".join(f"c{i}" for i in range(n_cols - 1)) + ",label\n"
    row = ",".join("1" for _ in range(n_cols - 1))
    path.write_text(header + "".join(f"{row},{i % 2}\n" for i in range(n_rows)))
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
@pytest.mark.parametrize("command", ["ingest", "screen"])
def test_too_many_columns_refused_at_once(sqlite_home, cli, tmp_path, fmt, command):
    from datafiles import MAX_COLUMNS

    n = 100_000 if fmt == "csv" else MAX_COLUMNS + 1
    d = tmp_path / "wide"
    d.mkdir()
    if fmt == "csv":
        f = _wide_csv(d / "w.csv", n)
    elif fmt == "parquet":
        f = d / "w.parquet"
        pq.write_table(pa.table({**{f"c{i}": [1.0, 2.0] for i in range(n - 1)}, "label": [0, 1]}), f)
    else:
        f = d / "w.jsonl"
        row = {f"c{i}": 1 for i in range(n - 1)}
        f.write_text("".join(json.dumps({**row, "label": i % 2}) + "\n" for i in range(2)))
    before = state(sqlite_home)
    started = time.perf_counter()
    if command == "ingest":
        r = cli("ingest", str(d), "--manifest", str(write_manifest(tmp_path / "m.yaml")))
    else:
        r = cli("screen", str(f), "--label-col", "label", "--out", str(tmp_path / "out"))
    assert time.perf_counter() - started < 20
    assert_clean_outcome(r, before, sqlite_home, refused=True)
    assert f"{MAX_COLUMNS:,}" in r.stderr and "columns" in r.stderr
    assert not (tmp_path / "out").exists()


def test_wide_table_within_the_limit_is_ingested(sqlite_home, cli, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    _wide_csv(d / "w.csv", 3000, n_rows=4)
    r = cli("ingest", str(d), "--manifest", str(write_manifest(tmp_path / "m.yaml")))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_cell_larger_than_the_limit_is_named(sqlite_home, cli, tmp_path, fmt):
    from datafiles import MAX_ROW_BYTES

    d = tmp_path / "d"
    d.mkdir()
    big = "x" * (2 * MAX_ROW_BYTES + (1 << 20))  # past two read blocks: never readable
    if fmt == "csv":
        (d / "a.csv").write_text("x,note,label\n1,a,0\n2,b,1\n3," + big + ",0\n4,c,1\n")
    else:
        rows = [{"x": 1, "note": "a", "label": 0}, {"x": 2, "note": big, "label": 1}]
        (d / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = state(sqlite_home)
    r = cli("ingest", str(d), "--manifest", str(write_manifest(tmp_path / "m.yaml")))
    assert_clean_outcome(r, before, sqlite_home, refused=True)
    assert "straddl" not in r.stderr and "block" not in r.stderr
    assert "row 3" in r.stderr if fmt == "csv" else "line 2" in r.stderr
    assert "16 MiB" in r.stderr


# ------------------------------------------------------------ licences


@pytest.mark.parametrize("licence", ["Apache-2.0 OR MIT OR", "MIT AND Apache-2.0 AND", "MIT OR", "MIT AND",
                                     "(MIT OR Apache-2.0) OR", "MIT OR Apache-2.0 OR  "])
def test_licence_with_a_dangling_operator_is_refused(sqlite_home, cli, tmp_path, licence):
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(small_table(), d / "a.parquet")
    before = state(sqlite_home)
    r = cli("ingest", str(d), "--manifest", str(write_manifest(tmp_path / "m.yaml", license=licence)))
    assert_clean_outcome(r, before, sqlite_home, refused=True)
    assert "not a valid SPDX expression" in r.stderr and "unexpected characters" not in r.stderr


def test_licence_that_parses_is_still_accepted(sqlite_home, cli, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(small_table(), d / "a.parquet")
    r = cli("ingest", str(d), "--manifest", str(write_manifest(tmp_path / "m.yaml", license="apache-2.0 or mit")),
            "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["licence"]["expression"] == "Apache-2.0 OR MIT"


# ------------------------------------------------------------ images and labels


def test_image_past_the_pixel_limit_is_refused_without_a_raw_warning(sqlite_home, cli, tmp_path):
    from PIL import Image

    from lineage.images import MAX_PIXELS

    folder = image_folder(tmp_path / "imgs")
    Image.new("1", (10_000, MAX_PIXELS // 10_000 + 1)).save(folder / "a" / "huge.png")
    before = state(sqlite_home)
    for args in (["ingest", str(folder), "--manifest", str(write_manifest(tmp_path / "m.yaml"))],
                 ["screen", str(folder), "--label-col", "label", "--out", str(tmp_path / "out")]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = cli(*args)
        assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
        assert_clean_outcome(r, before, sqlite_home, refused=True)
        assert "DecompressionBomb" not in r.stderr and "huge.png" in r.stderr and f"{MAX_PIXELS:,}" in r.stderr


def test_label_missing_values_count_nan_and_infinity(sqlite_home, cli, tmp_path):
    n = 40
    label = np.tile([0.0, 1.0], n // 2)
    label[[1, 2]] = np.nan
    label[3], label[4] = np.inf, -np.inf
    mask = np.zeros(n, dtype=bool)
    mask[5] = True
    f = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": np.arange(n, dtype=float), "label": pa.array(label, mask=mask)}), f)
    r = cli("screen", str(f), "--label-col", "label", "--out", str(tmp_path / "out"))
    assert_clean_outcome(r, refused=True)
    assert "5 missing values" in r.stderr and "2 NaN" in r.stderr and "2 infinite" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_screen_stage_counts_nan_labels_as_missing(sqlite_home, cli, tmp_path):
    from dataward.context import Context
    from dataward.pipeline import run_stage

    n = 40
    label = np.tile([0.0, 1.0], n // 2)
    label[[1, 2]] = np.nan
    mask = np.zeros(n, dtype=bool)
    mask[5] = True
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(pa.table({"x": np.arange(n, dtype=float), "label": pa.array(label, mask=mask)}), d / "a.parquet")
    r = cli("ingest", str(d), "--manifest", str(write_manifest(tmp_path / "m.yaml")), "--json")
    assert r.returncode == 0, r.stderr
    out = run_stage(Context(), "screen", json.loads(r.stdout)["ref"])
    assert out["status"] == "error" and "3 missing values (1 empty, 2 NaN)" in out["reason"], out["reason"]


@pytest.mark.parametrize("args", [("runs", "--limit", "99999999999999999999"),
                                  ("reference", "sample", "hostile@1", "--per-class", "2", "--seed", "-1"),
                                  ("reference", "sample", "hostile@1", "--per-class", "2", "--seed", "9" * 30)])
def test_integer_options_out_of_range_are_usage_errors(sqlite_home, cli, tmp_path, args):
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(small_table(), d / "a.parquet")
    assert cli("ingest", str(d), "--manifest", str(write_manifest(tmp_path / "m.yaml"))).returncode == 0
    r = cli(*args, *(["--out", str(tmp_path / "s.json")] if "sample" in args else []))
    assert r.returncode in (0, 2), (r.returncode, r.stderr)
    assert not (tmp_path / "s.json").exists() or r.returncode == 0
