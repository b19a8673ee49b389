"""Ingest emits OpenLineage START/COMPLETE events with the licence verdict facet."""

from __future__ import annotations

import json

from test_lineage_ingest import write_manifest


def test_ingest_emits_run_events(home, tmp_path, cli, digits_example):
    r = cli("ingest", str(digits_example / "train"), "--manifest", str(digits_example / "manifest.yaml"))
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in (home / "openlineage" / "events.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
    done = events[1]
    assert done["job"] == {"namespace": "dataward", "name": "dataward.ingest", "facets": {}}
    facet = done["run"]["facets"]["dataward_licence"]
    assert facet["expression"] == "CC-BY-4.0" and facet["allowedForTraining"] is True
    out = done["outputs"][0]
    assert out["name"] == "digits-example" and out["facets"]["version"]["datasetVersion"] == "1"
    assert len(out["facets"]["schema"]["fields"]) == 65


def test_failed_ingest_emits_fail(home, tmp_path, cli):
    m = write_manifest(tmp_path / "m.yaml", license="Not-A-Licence")
    (tmp_path / "d.csv").write_text("x,label\n1,0\n")
    r = cli("ingest", str(tmp_path / "d.csv"), "--manifest", str(m))
    assert r.returncode == 2
    events = [json.loads(line) for line in (home / "openlineage" / "events.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
