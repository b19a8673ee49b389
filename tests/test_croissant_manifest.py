"""A manifest may be a Croissant file: its keys become the manifest, bad ones one clear line."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from test_lineage_ingest import toy_table

from lineage.croissant_manifest import licence_id, slug

CROISSANT = {
    "@context": {"@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
                 "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
                 "dct": "http://purl.org/dc/terms/", "conformsTo": "dct:conformsTo"},
    "@type": "sc:Dataset",
    "conformsTo": "http://mlcommons.org/croissant/1.0",
    "name": "Toy Sensor Set",
    "description": "Two features and a binary label.",
    "license": "https://creativecommons.org/licenses/by-sa/4.0/",
    "url": "https://data.example.org/toy",
    "creator": {"@type": "sc:Person", "name": "Ada Example", "email": "ada@example.org"},
    "publisher": {"@type": "sc:Organization", "name": "Example Lab"},
    "rai:dataCollection": "logged by two sensors",
    "rai:dataCollectionTimeframe": ["2024-01-01T00:00:00", "2024-03-31T00:00:00"],
    "distribution": [{"@type": "cr:FileObject", "@id": "toy.parquet", "contentUrl": "toy.parquet",
                      "encodingFormat": "application/x-parquet", "sha256": "0" * 64}],
    "dataward": {"label_column": "label"},
}


@pytest.fixture
def toy_dir(tmp_path):
    d = tmp_path / "toy"
    d.mkdir()
    pq.write_table(toy_table(), d / "toy.parquet")
    return d


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_croissant_manifest_ingests(home, tmp_path, cli, toy_dir):
    m = tmp_path / "toy.croissant.json"
    m.write_text(json.dumps(CROISSANT))
    r = cli("ingest", str(toy_dir), "--manifest", str(m), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ref"] == "toy-sensor-set@1"
    assert out["licence"]["expression"] == "CC-BY-SA-4.0"
    show = json.loads(cli("lineage", "show", "toy-sensor-set@1", "--json").stdout)
    text = json.dumps(show)
    assert "https://data.example.org/toy" in text and "logged by two sensors" in text
    assert "ada@example.org" in text and "2024-01-01" in text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
@pytest.mark.parametrize("content, expect", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"name": "x", "license": "MIT"}), "not a Croissant description"),
    (json.dumps({"@context": {}, "@type": "sc:Recipe", "name": "x"}), "not a Croissant dataset"),
    (json.dumps({k: v for k, v in CROISSANT.items() if k != "license"}), "'license'"),
    (json.dumps({k: v for k, v in CROISSANT.items() if k not in ("creator", "publisher")}), "'owner'"),
])
def test_bad_croissant_is_one_line_and_exit_2(home, tmp_path, cli, toy_dir, content, expect):
    m = tmp_path / "m.json"
    m.write_text(content)
    r = cli("ingest", str(toy_dir), "--manifest", str(m))
    assert r.returncode == 2
    assert expect in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert json.loads(cli("datasets", "--json").stdout) == []  # nothing half-written


@pytest.mark.parametrize("value, spdx", [
    ("https://spdx.org/licenses/Apache-2.0.html", "Apache-2.0"),
    ("https://creativecommons.org/licenses/by-nc/4.0/", "CC-BY-NC-4.0"),
    ("https://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
    ({"@type": "sc:CreativeWork", "url": "https://spdx.org/licenses/MIT"}, "MIT"),
    ("cc-by-4.0", "cc-by-4.0"),
    (["https://spdx.org/licenses/MIT.html", "https://spdx.org/licenses/CC-BY-4.0.html"], "MIT AND CC-BY-4.0"),
    (None, None),
])
def test_licence_ids(value, spdx):
    assert licence_id(value) == spdx


def test_slug():
    assert slug("Toy Sensor Set (v2)!") == "toy-sensor-set-v2"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_deeply_nested_croissant_is_refused(home, tmp_path, cli, toy_dir):
    m = tmp_path / "deep.json"
    m.write_text("[" * 100_000 + "]" * 100_000)
    r = cli("ingest", str(toy_dir), "--manifest", str(m))
    assert r.returncode == 2 and "nested too deeply" in r.stderr
