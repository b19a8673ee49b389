"""Standard metadata on approved snapshots: Croissant (validated and read by mlcroissant)
and a Hugging Face style dataset card, written by publish and by ``dataward export``."""

from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq
import yaml
from derived_run import derived_run  # noqa: F401 - the session's parent -> derived -> snapshot run
from ol_spec import read_events
from sqlalchemy import select

from lineage.db import get_engine, session_scope
from lineage.models import AuditEntry


def test_publish_writes_croissant_and_card_that_tools_read(derived_run, monkeypatch, tmp_path, cli):
    import mlcroissant as mlc

    derived_run.use(monkeypatch)
    home, out, db_url = derived_run.home, derived_run.summary, derived_run.env["DATAWARD_DB_URL"]
    folder = home / "snapshots" / "digits-example.approved" / "1"
    croissant, card = folder / "croissant.json", folder / "README.md"
    assert croissant.is_file() and card.is_file()

    # mlcroissant validates the description and reads the snapshot's records through it
    ds = mlc.Dataset(jsonld=str(croissant))
    assert not ds.metadata.issues.errors, ds.metadata.issues.report()
    records = list(ds.records("records"))
    snapshot = pq.read_table(out["snapshot"])
    assert len(records) == snapshot.num_rows == 1077 - out["n_flagged"]
    assert [r["records/label"] for r in records[:50]] == snapshot.column("label").to_pylist()[:50]
    doc = json.loads(croissant.read_text())
    assert doc["conformsTo"].startswith("http://mlcommons.org/croissant/1.")
    assert doc["distribution"][0]["sha256"] == hashlib.sha256(open(out["snapshot"], "rb").read()).hexdigest()
    assert doc["license"] == "https://spdx.org/licenses/CC-BY-4.0.html"
    assert "43 writers" in doc["rai:dataCollection"] and "derived from digits-raw@1" in doc["rai:dataCollection"]
    assert "found none" in json.dumps(doc["rai:personalSensitiveInformation"])
    limitations = json.dumps(doc["rai:dataLimitations"])
    assert f"{out['n_flagged']} of 1077 rows were flagged" in limitations and "cannot flag" in limitations
    assert "CC-BY-4.0" in json.dumps(doc["rai:dataUseCases"])
    assert "Class counts" in json.dumps(doc["rai:dataBiases"])

    # the card: YAML front matter a hub reads, the screening results in prose
    text = card.read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"] == "cc-by-4.0" and front["size_categories"] == ["n<1K"]
    assert front["task_categories"] == ["tabular-classification"]
    assert {"digits-example@1", "digits-raw@1"} <= set(front["source_datasets"])
    assert "Decision: **trim**" in text and f"{out['n_flagged']} of 1077" in text

    # recorded in lineage: the publish event names both as outputs, the audit log their hashes
    publish = [e for e in read_events(home / "openlineage" / "events.jsonl")
               if e["job"]["name"] == "dataward.publish" and e["eventType"] == "COMPLETE"][0]
    names = {o["name"] for o in publish["outputs"]}
    assert str(croissant) in names and str(card) in names
    with session_scope(get_engine(db_url)) as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "metadata")).scalars().one()
        assert entry.subject == "digits-example.approved@1"
        assert entry.payload["sha256"]["card"] == hashlib.sha256(card.read_bytes()).hexdigest()
    assert cli("audit", "verify").returncode == 0

    # `dataward export` writes them anywhere; bad input is one line and exit 2
    r = cli("export", "card", "digits-example.approved@1", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "README.md").read_text() == text
    r = cli("export", "croissant", "digits-example@1", "--out", str(tmp_path))
    assert r.returncode == 2 and "not a published snapshot" in r.stderr
    r = cli("export", "parquet", "digits-example.approved@1")
    assert r.returncode == 2 and "croissant or card" in r.stderr
    assert not (tmp_path / "croissant.json").exists()


def test_every_column_type_is_described_so_that_mlcroissant_reads_it_back(tmp_path):
    """Lists take their elements' type, timestamps are DateTime, and a type mlcroissant
    cannot read back (a duration, a struct) is left out, not described wrongly."""
    import datetime

    import mlcroissant as mlc
    import pyarrow as pa

    from dataward.export.metadata_export import _data_type

    n = 6
    table = pa.table({
        "tags": pa.array([[i, 1] for i in range(n)]),
        "vec": pa.FixedSizeListArray.from_arrays(pa.array([0.5] * (2 * n), pa.float32()), 2),
        "when": pa.array([datetime.datetime(2020, 1, 1, i, tzinfo=datetime.timezone.utc) for i in range(n)],
                         pa.timestamp("us", tz="UTC")),
        "day": pa.array([datetime.date(2020, 1, 1 + i) for i in range(n)]),
        "elapsed": pa.array([datetime.timedelta(seconds=i) for i in range(n)]),
        "point": pa.array([{"p": float(i)} for i in range(n)]),
        "label": pa.array(range(n)),
    })
    pq.write_table(table, tmp_path / "snapshot.parquet")
    types = {f.name: _data_type(str(f.type)) for f in table.schema}
    assert types["elapsed"] is None and types["point"] is None
    assert types["tags"] == mlc.DataType.INTEGER and types["vec"] == mlc.DataType.FLOAT
    assert types["when"] == mlc.DataType.DATETIME and types["day"] == mlc.DataType.DATE
    fields = [mlc.Field(id=f"records/{c}", name=c, data_types=[t],
                        source=mlc.Source(file_object="snapshot.parquet", extract=mlc.Extract(column=c)))
              for c, t in types.items() if t is not None]
    meta = mlc.Metadata(name="t", url="https://example.com", distribution=[mlc.FileObject(
        id="snapshot.parquet", name="snapshot.parquet", content_url=str(tmp_path / "snapshot.parquet"),
        encoding_formats=["application/x-parquet"],
        sha256=hashlib.sha256((tmp_path / "snapshot.parquet").read_bytes()).hexdigest())],
        record_sets=[mlc.RecordSet(id="records", name="records", fields=fields)])
    (tmp_path / "c.json").write_text(json.dumps(meta.to_json(), default=str))
    records = list(mlc.Dataset(jsonld=str(tmp_path / "c.json")).records("records"))
    assert len(records) == n
    assert list(records[3]["records/tags"]) == [3, 1] and records[3]["records/label"] == 3
