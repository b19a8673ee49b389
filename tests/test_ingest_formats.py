"""Data as people store it, at ingest: CSV quirks, Spark directories, Arrow IPC and
``datasets.save_to_disk`` folders, image folders with one sub-folder per class.

Real files on disk, the real CLI and a real SQLite lineage DB (PostgreSQL too where the
role and format columns' lengths matter).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from lineage.db import get_engine, session_scope
from lineage.models import DataFile, DatasetVersion

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def manifest(path: Path, name: str = "fmt", **extra) -> Path:
    m = {"name": name, "owner": "data@example.com", "license": "MIT",
         "source": {"uri": "https://example.com/" + name}, **extra}
    path.write_text(yaml.safe_dump(m))
    return path


def ingest_json(cli, path, m) -> dict:
    r = cli("ingest", str(path), "--manifest", str(m), "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout)


def read_version(ref: str, role: str = "data") -> pa.Table:
    from dataward.context import Context
    from dataward.stage_results import read_table

    ctx = Context()
    with ctx.session() as s:
        from lineage.ingest import resolve

        vid = resolve(s, ref).id
    return read_table(ctx, vid, role)


def version_files(db_url: str, ref: str) -> list[tuple[str, str, str]]:
    from lineage.ingest import resolve

    with session_scope(get_engine(db_url)) as s:
        v = resolve(s, ref)
        return sorted((f.relpath, f.role, f.format) for f in v.files)


def refused(r) -> str:
    """The one stderr line of a refusal (exit 2), checked for hygiene."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("dataward: "), r.stderr
    assert "Traceback" not in r.stderr
    assert all(ch == "\t" or ch.isprintable() for ch in lines[0]), repr(lines[0])
    assert len(lines[0]) < 700, len(lines[0])
    return lines[0]


def nothing_stored(home: Path, db_url: str) -> None:
    from sqlalchemy import func, select

    with session_scope(get_engine(db_url)) as s:
        assert s.execute(select(func.count()).select_from(DatasetVersion)).scalar() == 0
        assert s.execute(select(func.count()).select_from(DataFile)).scalar() == 0
    store = home / "store"
    assert not store.exists() or not [p for p in store.rglob("*") if p.is_file()]


# ------------------------------------------------------------------ CSV and folders


@SQLITE
def test_csv_with_bom_keeps_a_clean_first_column(home, tmp_path, cli):
    f = tmp_path / "excel.csv"
    f.write_bytes("\ufeffx,label\n1.5,a\n2.5,b\n".encode("utf-8"))
    out = ingest_json(cli, f, manifest(tmp_path / "m.yaml", label_column="x"))
    table = read_version(out["ref"])
    assert table.column_names == ["x", "label"]
    assert table.column("x").to_pylist() == [1.5, 2.5]


@SQLITE
def test_csv_quoted_newlines_across_read_blocks(home, tmp_path, cli):
    """A quoted field with a line break straddling the reader's 16 MiB block boundary."""
    f = tmp_path / "notes.csv"
    n = 420_000
    with open(f, "w", newline="") as fh:
        fh.write("id,note,label\n")
        fh.writelines(f'{i},"first line {i}\nsecond, line",{i % 2}\n' for i in range(n))
    assert f.stat().st_size > 1 << 24
    out = ingest_json(cli, f, manifest(tmp_path / "m.yaml", label_column="label"))
    assert out["rows"] == n
    note = read_version(out["ref"]).column("note")
    assert note[n - 1].as_py() == f"first line {n - 1}\nsecond, line"


@SQLITE
def test_csv_types_widen_past_the_first_read_block(home, tmp_path, cli):
    """Integers for 20 MB, then a 1.5 and a word: the reader's first-block guess (int64)
    widens to double and to text instead of refusing the file."""
    f = tmp_path / "late.csv"
    n = 1_700_000
    with open(f, "w") as fh:
        fh.write("x,code,label\n")
        fh.writelines(f"{i},{i % 7},{i % 2}\n" for i in range(n))
        fh.write("1.5,unknown,1\n")
    assert f.stat().st_size > 1 << 24
    out = ingest_json(cli, f, manifest(tmp_path / "m.yaml", label_column="label"))
    assert out["rows"] == n + 1
    table = read_version(out["ref"])
    assert table.schema.field("x").type == pa.float64() and table.column("x")[n].as_py() == 1.5
    assert table.schema.field("code").type == pa.string() and table.column("code")[n].as_py() == "unknown"
    assert table.schema.field("label").type == pa.int64()


@SQLITE
def test_spark_directory_reads_part_files_only(home, tmp_path, cli, db_url):
    d = tmp_path / "spark-out"
    (d / "_temporary" / "0").mkdir(parents=True)
    t = pa.table({"x": np.arange(30, dtype=np.float64), "label": np.arange(30) % 3})
    pq.write_table(t.slice(0, 10), d / "part-00000-1f2e.snappy.parquet")
    pq.write_table(t.slice(10), d / "part-00001-1f2e.snappy.parquet")
    (d / "_SUCCESS").write_bytes(b"")
    (d / "_committed_4815").write_text('{"added": []}')
    (d / "_started_4815").write_bytes(b"")
    (d / ".part-00000-1f2e.snappy.parquet.crc").write_bytes(b"crc\x00\x01\x02")
    # an attempt still in progress: not part of the output
    pq.write_table(pa.table({"other": [1]}), d / "_temporary" / "0" / "part-00002.parquet")
    out = ingest_json(cli, d, manifest(tmp_path / "m.yaml", label_column="label"))
    assert out["rows"] == 30
    assert [f[0] for f in version_files(db_url, out["ref"])] == [
        "part-00000-1f2e.snappy.parquet", "part-00001-1f2e.snappy.parquet"]
    assert read_version(out["ref"]).column("x").to_pylist() == list(range(30))


@SQLITE
def test_same_import_run_twice(home, tmp_path, cli):
    rng = np.random.default_rng(0)
    f = tmp_path / "t.csv"
    x = rng.normal(size=(120, 3))
    rows = "".join(f"{a:.4f},{b:.4f},{c:.4f},{int(a > 0)}\n" for a, b, c in x)
    f.write_text("a,b,c,label\n" + rows)
    m = manifest(tmp_path / "m.yaml", label_column="label")
    first = cli("run", str(f), "--manifest", str(m), "--json")
    assert first.returncode in (0, 1), first.stderr
    second = cli("run", str(f), "--manifest", str(m), "--json")
    assert second.returncode == first.returncode, second.stderr
    assert json.loads(second.stdout)["ref"] == json.loads(first.stdout)["ref"] == "fmt@1"
    assert json.loads(first.stdout)["created"] is True and json.loads(second.stdout)["created"] is False
    third = cli("run", str(f), "--manifest", str(m))
    assert third.returncode == first.returncode
    assert "fmt@1: decision" in third.stdout and "already ingested" in third.stdout
    again = cli("ingest", str(f), "--manifest", str(m))
    assert again.returncode in (0, 1) and "already ingested" in again.stdout


@SQLITE
def test_header_only_csv(home, tmp_path, cli, db_url):
    d = tmp_path / "parts"
    d.mkdir()
    (d / "a.csv").write_text("x,label\n1.5,0\n2.5,1\n")
    (d / "b.csv").write_text("x,label\n")  # an export of an empty day
    out = ingest_json(cli, d, manifest(tmp_path / "m.yaml", label_column="label"))
    assert out["rows"] == 2
    assert read_version(out["ref"]).column("x").type == pa.float64()
    alone = tmp_path / "empty-export.csv"
    alone.write_text("x,label\n")
    line = refused(cli("ingest", str(alone), "--manifest", str(manifest(tmp_path / "n.yaml", name="other"))))
    assert "holds no rows" in line


@SQLITE
def test_mixed_int_and_float_files_and_all_null_jsonl_column(home, tmp_path, cli, db_url):
    from lineage import tags

    d = tmp_path / "mixed"
    d.mkdir()
    (d / "a.csv").write_text("x,label\n1,0\n2,1\n")
    (d / "b.csv").write_text("x,label\n1.5,0\n2.5,1\n")
    r = cli("ingest", str(d), "--manifest", str(manifest(tmp_path / "m.yaml")), "--json")
    assert r.returncode == 0 and "scan" not in r.stderr, r.stderr
    ref = json.loads(r.stdout)["ref"]
    assert read_version(ref).column("x").to_pylist() == [1.0, 2.0, 1.5, 2.5]
    with session_scope(get_engine(db_url)) as s:
        from lineage.ingest import resolve

        assert tags.scan_status(s, resolve(s, ref).id) == {"scanned": True, "failed": None}
    j = tmp_path / "rows.jsonl"
    j.write_text('{"x": 1.0, "empty": null, "label": 0}\n{"x": 2.0, "empty": null, "label": 1}\n')
    out = ingest_json(cli, j, manifest(tmp_path / "j.yaml", name="nulls", label_column="label"))
    assert read_version(out["ref"]).column("empty").null_count == 2


# ------------------------------------------------------------------ Arrow IPC


def _arrow_table(n: int = 50) -> pa.Table:
    return pa.table({"x": np.linspace(0, 1, n), "text": [f"row {i}" for i in range(n)],
                     "label": pa.array([f"c{i % 3}" for i in range(n)]).dictionary_encode()})


def _write_stream(table: pa.Table, path: Path, batch_rows: int) -> None:
    """What ``datasets.save_to_disk`` writes: the IPC *stream* format."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write_batch(batch)


@SQLITE
@pytest.mark.filterwarnings("ignore:Feather V1 files are deprecated:DeprecationWarning")
@pytest.mark.parametrize("kind", ["feather", "feather-v1", "ipc-file", "ipc-stream"])
def test_arrow_ipc_and_feather_files(home, tmp_path, cli, kind):
    import pyarrow.feather as feather

    t = _arrow_table()
    if kind == "feather":
        f = tmp_path / "t.feather"
        feather.write_feather(t, f, compression="zstd", chunksize=16)
    elif kind == "feather-v1":
        f = tmp_path / "t.feather"
        t = t.set_column(2, "label", t.column("label").cast(pa.string()))
        feather.write_feather(t, f, version=1)
    elif kind == "ipc-file":
        f = tmp_path / "t.arrow"
        with pa.OSFile(str(f), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
            for b in t.to_batches(max_chunksize=7):
                w.write_batch(b)
    else:
        f = tmp_path / "t.ipc"
        _write_stream(t, f, 9)
    out = ingest_json(cli, f, manifest(tmp_path / "m.yaml", label_column="label"))
    assert out["rows"] == 50
    back = read_version(out["ref"])
    assert back.column_names == t.column_names
    assert back.column("x").to_pylist() == t.column("x").to_pylist()
    assert back.column("label").to_pylist() == t.column("label").to_pylist()


def test_arrow_batches_are_bounded(tmp_path):
    from lineage.files import iter_file_batches

    f = tmp_path / "one-batch.arrow"
    _write_stream(_arrow_table(100), f, 100)
    sizes = [b.num_rows for b in iter_file_batches(f, "arrow", batch_rows=30)]
    assert sizes == [30, 30, 30, 10]
    cols = next(iter_file_batches(f, "arrow", columns=["x"])).schema.names
    assert cols == ["x"]


def _save_to_disk(folder: Path, table: pa.Table) -> None:
    folder.mkdir(parents=True)
    _write_stream(table, folder / "data-00000-of-00001.arrow", 20)
    (folder / "dataset_info.json").write_text(json.dumps({"features": {"x": {"dtype": "float64"}}}))
    (folder / "state.json").write_text(json.dumps(
        {"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_fingerprint": "ab12"}))


@SQLITE
def test_save_to_disk_folder_is_one_dataset(home, tmp_path, cli, db_url):
    d = tmp_path / "hf"
    _save_to_disk(d, _arrow_table(60))
    out = ingest_json(cli, d, manifest(tmp_path / "m.yaml", label_column="label"))
    assert out["rows"] == 60
    assert version_files(db_url, out["ref"]) == [("data-00000-of-00001.arrow", "data", "arrow")]
    # A DatasetDict holds several splits: refused, naming them, nothing stored.
    dd = tmp_path / "hf-dict"
    _save_to_disk(dd / "train", _arrow_table(40))
    _save_to_disk(dd / "test", _arrow_table(10))
    (dd / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    line = refused(cli("ingest", str(dd), "--manifest", str(manifest(tmp_path / "d.yaml", name="dd"))))
    assert "DatasetDict" in line and "train, test" in line and "hf-dict/train" in line


@SQLITE
def test_corrupt_arrow_is_refused(home, tmp_path, cli, db_url):
    f = tmp_path / "bad.arrow"
    _write_stream(_arrow_table(), f, 10)
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    refused(cli("ingest", str(f), "--manifest", str(manifest(tmp_path / "m.yaml"))))
    g = tmp_path / "garbage.feather"
    g.write_bytes(b"ARROW1\x00\x00" + bytes(range(256)) * 4)
    refused(cli("ingest", str(g), "--manifest", str(manifest(tmp_path / "m.yaml"))))
    nothing_stored(home, db_url)


# ------------------------------------------------------------------ image folders


def _png(value: int, size: int = 8, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), value, dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def image_folder(root: Path) -> dict[str, bytes]:
    """cat/ and dog/ with PNG, JPEG and a nested folder; returns relpath -> bytes."""
    files = {"cat/001.png": _png(10), "cat/002.jpg": _jpeg(20), "cat/more/003.PNG": _png(30),
             "dog/a.tif": _png(200, fmt="TIFF"), "dog/b.jpeg": _jpeg(220)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "README.md").write_text("cats and dogs")  # not data: ignored
    (root / "dog" / ".DS_Store").write_bytes(b"\x00\x01")
    return files


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_image_folder_is_listed_and_indexed(home, tmp_path, cli, db_url):
    src = image_folder(tmp_path / "pets")
    image_folder(tmp_path / "pets-ref")
    m = manifest(tmp_path / "m.yaml", name="pets", reference=str(tmp_path / "pets-ref"))
    out = ingest_json(cli, tmp_path / "pets", m)
    assert out["rows"] == 5 and out["created"]
    listed = version_files(db_url, out["ref"])
    assert ("index.parquet", "data", "parquet") in listed
    images_listed = sorted((p, fmt) for p, role, fmt in listed if role == "image")
    assert images_listed == [("cat/001.png", "png"), ("cat/002.jpg", "jpeg"),
                             ("cat/more/003.PNG", "png"), ("dog/a.tif", "tiff"),
                             ("dog/b.jpeg", "jpeg")]
    assert ("reference/index.parquet", "reference", "parquet") in listed
    assert sum(role == "reference-image" for _, role, _ in listed) == 5

    with session_scope(get_engine(db_url)) as s:
        from lineage.ingest import resolve

        v = resolve(s, out["ref"])
        assert v.label_column == "label" and v.dataset.label_column == "label"
    table = read_version(out["ref"])
    assert table.schema.names == ["image", "label", "path"]
    assert table.schema.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert table.column("path").to_pylist() == sorted(src)
    assert table.column("label").to_pylist() == ["cat", "cat", "cat", "dog", "dog"]
    for row in table.to_pylist():
        assert row["image"] == {"bytes": src[row["path"]], "path": row["path"]}
    assert read_version(out["ref"], "reference").num_rows == 5

    # The same images elsewhere (new mtimes): same content hash, same index bytes.
    shutil.copytree(tmp_path / "pets", tmp_path / "pets-copy")
    again = ingest_json(cli, tmp_path / "pets-copy", m)
    assert again["created"] is False and again["content_hash"] == out["content_hash"]
    other = ingest_json(cli, tmp_path / "pets-copy", manifest(tmp_path / "o.yaml", name="pets2"))
    assert other["content_hash"] == out["content_hash"]
    with session_scope(get_engine(db_url)) as s:
        index = {f.sha256 for f in s.query(DataFile).filter(DataFile.relpath == "index.parquet")}
    assert len(index) == 1
    assert cli("audit", "verify").returncode == 0


@SQLITE
def test_image_folder_label_column_from_manifest(home, tmp_path, cli):
    image_folder(tmp_path / "pets")
    out = ingest_json(cli, tmp_path / "pets", manifest(tmp_path / "m.yaml", label_column="label"))
    assert out["rows"] == 5
    line = refused(cli("ingest", str(tmp_path / "pets"), "--manifest",
                       str(manifest(tmp_path / "n.yaml", name="n", label_column="species"))))
    assert "'species'" in line and "image, label, path" in line


def _corrupt(root: Path) -> None:
    (root / "cat" / "broken.png").write_bytes(_png(1)[:40] + b"\x00garbage\x1b[31m")


def _truncated_jpeg(root: Path) -> None:
    (root / "dog" / "cut.jpg").write_bytes(_jpeg(5)[:-60])


def _loose_and_empty(root: Path) -> None:
    (root / "loose.png").write_bytes(_png(3))
    (root / "bird").mkdir()


def _empty_class(root: Path) -> None:
    (root / "bird").mkdir()


def _with_table(root: Path) -> None:
    (root / "labels.csv").write_text("path,label\ncat/001.png,cat\n")


def _not_an_image(root: Path) -> None:
    (root / "dog" / "fake.webp").write_bytes(b"RIFF\x00\x00\x00\x00not a webp at all")


def _split_folders(root: Path) -> None:
    for split in ("train", "val"):
        shutil.copytree(root / "cat", root / "splits" / split / "cat")
    shutil.rmtree(root / "cat")
    shutil.rmtree(root / "dog")
    for item in (root / "splits").iterdir():
        item.rename(root / item.name)
    (root / "splits").rmdir()


IMAGE_BAD = {"corrupt": (_corrupt, "not a readable image"),
             "train/val split folders": (_split_folders, "split folders (train, val)"),
             "truncated jpeg": (_truncated_jpeg, "not a readable image"),
             "image at the top with an empty class": (_loose_and_empty, "top level"),
             "empty class folder": (_empty_class, "holds no image files"),
             "images mixed with a table": (_with_table, "mixes image files"),
             "fake webp": (_not_an_image, "not a readable image")}


@SQLITE
@pytest.mark.parametrize("case", sorted(IMAGE_BAD))
def test_bad_image_folder_refused_nothing_stored(home, tmp_path, cli, db_url, case):
    make, expected = IMAGE_BAD[case]
    image_folder(tmp_path / "pets")
    make(tmp_path / "pets")
    line = refused(cli("ingest", str(tmp_path / "pets"), "--manifest", str(manifest(tmp_path / "m.yaml"))))
    assert expected in line
    nothing_stored(home, db_url)


@SQLITE
def test_single_image_is_refused(home, tmp_path, cli, db_url):
    f = tmp_path / "photo.png"
    f.write_bytes(_png(9))
    assert "single image" in refused(cli("ingest", str(f), "--manifest", str(manifest(tmp_path / "m.yaml"))))
    nothing_stored(home, db_url)


def test_index_batches_stay_bounded(tmp_path):
    """A table of embedded images is read in batches of about BATCH_BYTES, not 65,536 rows."""
    from lineage import files, images

    rng = np.random.default_rng(0)
    infos = []
    for i in range(12):
        p = tmp_path / "noise" / f"{i:02d}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (700, 700), dtype=np.uint8)).save(p)  # ~490 kB
        infos.append(images.inspect_image(p, f"noise/{p.name}"))
    index = tmp_path / "index.parquet"
    images.write_index(infos, index)
    sizes = [b.num_rows for b in files.iter_file_batches(index, "parquet", batch_rows=65_536)]
    assert sum(sizes) == 12
    bound = files.BATCH_BYTES // (490_000)
    assert max(sizes) <= bound + 1 and len(sizes) >= 12 // (bound + 1)
    first = index.read_bytes()
    images.write_index(list(reversed(infos)), index)
    assert index.read_bytes() == first  # deterministic: order of discovery does not matter


# ------------------------------------------------------------------ error hygiene


@SQLITE
def test_error_lines_escape_control_bytes_and_cut_long_values(home, tmp_path, cli, db_url):
    f = tmp_path / "evil.csv"
    f.write_bytes(b"x,label\n1,0\n\x1b[2J\x07" + b"A" * 5000 + b",1,2\n")
    line = refused(cli("ingest", str(f), "--manifest", str(manifest(tmp_path / "m.yaml"))))
    assert "\x1b" not in line and "AAAAAAAAAA" * 30 not in line
    g = tmp_path / "dupes.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a\nb\x00", "a\nb\x00"]), g)
    line = refused(cli("ingest", str(g), "--manifest", str(manifest(tmp_path / "m.yaml"))))
    assert "duplicate column names" in line and "a\\x0ab\\x00" in line
    nothing_stored(home, db_url)


def test_printable():
    from lineage.messages import printable

    assert printable("ok name") == "ok name"
    assert printable("a\nb\x00\u202e\udcff") == "a\\x0ab\\x00\\u202e\\udcff"
    assert len(printable("x" * 10_000)) <= 123


@SQLITE
def test_many_images_with_duplicates_stored_in_bulk(home, tmp_path, cli, db_url):
    """40 images (the bulk path, one sync), the same bytes under two classes."""
    root = tmp_path / "many"
    for i in range(40):
        d = root / ("even" if i % 2 == 0 else "odd")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:02d}.png").write_bytes(_png(i % 20))  # each picture twice
    out = ingest_json(cli, root, manifest(tmp_path / "m.yaml"))
    assert out["rows"] == 40
    assert sum(role == "image" for _, role, _ in version_files(db_url, out["ref"])) == 40
    blobs = [p for p in (home / "store").rglob("*") if p.is_file()]
    assert not [p for p in blobs if p.name.startswith(".incoming")]
    assert len(blobs) == 20 + 1  # distinct images plus the index
    assert cli("audit", "verify").returncode == 0


def test_put_many_refuses_a_changed_source_and_leaves_nothing(tmp_path):
    from lineage.bulk_store import put_many
    from lineage.errors import LineageInputError
    from lineage.store import ContentStore, sha256_file

    store = ContentStore(tmp_path / "store")
    items = []
    for i in range(40):
        p = tmp_path / f"{i}.png"
        p.write_bytes(_png(i))
        items.append((p, sha256_file(p)[0], "png"))
    items[-1][0].write_bytes(b"changed after it was hashed")
    created: list = []
    with pytest.raises(LineageInputError, match="changed while it was being stored"):
        put_many(store, items, created)
    assert created == [] and not [p for p in store.root.rglob("*") if p.is_file()]
    put_many(store, items[:-1], created)
    assert len(created) == 39 and all(store.verify(d, f) is None for d, f in created)


@SQLITE
@pytest.mark.parametrize("licence", ["MIT [", "MIT AND \x1b[31mEVIL" + "X" * 3000, "MIT AND EVIL\x00"])
def test_odd_licence_text_is_one_clean_line(home, tmp_path, cli, db_url, licence):
    """license-expression raises AttributeError on '[' or ESC: a typo must be exit 2, not 3."""
    f = tmp_path / "t.csv"
    f.write_text("x,label\n1,0\n")
    line = refused(cli("ingest", str(f), "--manifest", str(manifest(tmp_path / "m.yaml", license=licence))))
    assert "XXXX" * 30 not in line
    # control characters are refused when the manifest is read, a '[' by the licence check
    assert "not a valid SPDX expression" in line or "control characters" in line
    if licence == "MIT [":
        assert "not a valid SPDX expression" in line
    nothing_stored(home, db_url)


@SQLITE
@pytest.mark.parametrize("name", ["t.tsv", "t.csv.gz", "t.tsv.bz2", "t.jsonl.gz", "t.ndjson.zst"])
def test_tsv_and_compressed_text(home, tmp_path, cli, db_url, name):
    rows = [(1.5, "a b", 0), (2.5, "c, d", 1), (3.5, "e", 0)]
    if ".tsv" in name:
        text = "x\tnote\tlabel\n" + "".join(f"{x}\t{n}\t{lab}\n" for x, n, lab in rows)
    elif ".csv" in name:
        text = "x,note,label\n" + "".join(f'{x},"{n}",{lab}\n' for x, n, lab in rows)
    else:
        text = "".join(json.dumps({"x": x, "note": n, "label": lab}) + "\n" for x, n, lab in rows)
    with pa.output_stream(str(tmp_path / name), compression="detect") as out:
        out.write(text.encode())
    out = ingest_json(cli, tmp_path / name, manifest(tmp_path / "m.yaml", label_column="label"))
    table = read_version(out["ref"])
    assert table.column("note").to_pylist() == ["a b", "c, d", "e"]
    assert table.column("x").to_pylist() == [1.5, 2.5, 3.5]
    fmt = version_files(db_url, out["ref"])[0][2]
    assert fmt == name.split(".", 1)[1].replace("ndjson", "jsonl")


@SQLITE
def test_hive_partition_folders(home, tmp_path, cli, db_url):
    """Spark partitionBy('label'): the label is only in folder names -> refused, not lost."""
    d = tmp_path / "parted"
    for lab in (0, 1):
        (d / f"label={lab}").mkdir(parents=True)
        pq.write_table(pa.table({"x": [1.0, 2.0]}), d / f"label={lab}" / "part-0.parquet")
    (d / "_SUCCESS").write_bytes(b"")
    line = refused(cli("ingest", str(d), "--manifest", str(manifest(tmp_path / "m.yaml"))))
    assert "partition folder 'label=0'" in line and "no column 'label'" in line
    nothing_stored(home, db_url)
    kept = tmp_path / "kept"  # folders named key=value whose column is in the files: fine
    for day in ("2024-01-01", "2024-01-02"):
        (kept / f"day={day}").mkdir(parents=True)
        pq.write_table(pa.table({"day": [day], "x": [1.0], "label": [0]}), kept / f"day={day}" / "p.parquet")
    assert ingest_json(cli, kept, manifest(tmp_path / "k.yaml", name="kept"))["rows"] == 2


def test_jsonl_integers_then_a_fraction_past_the_first_block(tmp_path):
    """JavaScript writes 3.0 as 3: a column of integers for 20 MB, then 1.5, reads as
    double (in the file's column order), instead of failing to convert to int64."""
    from lineage.files import inspect, iter_file_batches

    f = tmp_path / "late.jsonl"
    n = 800_000
    with open(f, "w") as fh:
        fh.writelines(f'{{"label": {i % 2}, "x": {i}, "s": "a"}}\n' for i in range(n))
        fh.write('{"label": 1, "x": 1.5, "s": "b"}\n')
    assert f.stat().st_size > 1 << 24
    info = inspect(f, "late.jsonl")
    assert info.row_count == n + 1
    assert info.schema == pa.schema([("label", pa.int64()), ("x", pa.float64()), ("s", pa.string())])
    last = list(iter_file_batches(f, "jsonl", columns=["x"]))[-1]
    assert last.column(0)[-1].as_py() == 1.5


CLEAR_REFUSALS = {
    "unnamed columns": ("t.csv", b",,\n1,2,3\n", "3 columns without a name"),
    "json array in .jsonl": ("t.jsonl", b'[{"a": 1}, {"a": 2}]\n', "not JSON Lines"),
    "bare numbers in .jsonl": ("t.jsonl", b"1\n2\n", "not JSON Lines"),
    "parquet named .arrow": ("t.arrow", None, "not a readable arrow file"),
}


@SQLITE
@pytest.mark.parametrize("case", sorted(CLEAR_REFUSALS))
def test_ordinary_mistakes_get_a_clear_line(home, tmp_path, cli, db_url, case):
    name, data, words = CLEAR_REFUSALS[case]
    f = tmp_path / name
    if data is None:
        pq.write_table(pa.table({"a": [1]}), f)
    else:
        f.write_bytes(data)
    assert words in refused(cli("ingest", str(f), "--manifest", str(manifest(tmp_path / "m.yaml"))))
    nothing_stored(home, db_url)


def test_read_path_reads_any_format_without_storing(tmp_path):
    """What `dataward screen PATH` reads: an image folder as its index table, a folder of
    mixed-type files promoted, and collect() still iterates as (path, relpath) pairs."""
    from lineage.files import collect, read_path

    src = image_folder(tmp_path / "pets")
    table = read_path(tmp_path / "pets")
    assert table.column("path").to_pylist() == sorted(src)
    assert table.column("image").to_pylist()[0] == {"bytes": src["cat/001.png"], "path": "cat/001.png"}
    d = tmp_path / "parts"
    d.mkdir()
    (d / "a.csv").write_text("x,label\n1,0\n")
    with pa.output_stream(str(d / "b.csv.gz"), compression="gzip") as out:
        out.write(b"x,label\n2.5,1\n")
    assert read_path(d).column("x").to_pylist() == [1.0, 2.5]
    assert [rel for _, rel in collect(d)] == ["a.csv", "b.csv.gz"]
