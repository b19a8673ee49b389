"""OpenLineage events: valid against the spec's JSON Schemas, and a graph a consumer can draw.

Every event is validated against ``tests/openlineage_spec`` (the spec and its standard
facets) and Dataward's custom facet schemas in ``lineage/facets`` (see ``ol_spec.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict

import pyarrow.parquet as pq
import pytest
from derived_run import derived_run  # noqa: F401 - a session fixture shared with test_metadata_export
from ol_spec import CUSTOM_DIR, read_events, validate_event
from test_lineage_ingest import write_manifest

from lineage.naming import uri_dataset
from lineage.openlineage.facets import SCHEMA_BASE, schema_url
from lineage.openlineage.refs import PRODUCER

NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s]+$")  # scheme://authority


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_ingest_emits_run_events(home, tmp_path, cli, digits_example):
    r = cli("ingest", str(digits_example / "train"), "--manifest", str(digits_example / "manifest.yaml"))
    assert r.returncode == 0, r.stderr
    events = read_events(home / "openlineage" / "events.jsonl")
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
    for e in events:
        validate_event(e)
    done = events[1]
    assert (done["job"]["namespace"], done["job"]["name"]) == ("dataward", "dataward.ingest")
    facet = done["run"]["facets"]["dataward_licence"]
    assert facet["expression"] == "CC-BY-4.0" and facet["allowedForTraining"] is True
    assert facet["_producer"] == PRODUCER
    assert "parent" not in done["run"]["facets"]  # an ingest on its own belongs to no pipeline run
    data = [o for o in done["outputs"] if o["facets"]["datasetType"]["subType"] == "DATA"]
    assert len(data) == 1
    out = data[0]["facets"]
    assert out["symlinks"]["identifiers"][0]["name"].endswith("digits-example@1")
    assert len(out["schema"]["fields"]) == 65
    assert out["ownership"]["owners"] == [{"name": "ml-platform@example.com", "type": "OWNER"}]
    assert out["documentation"]["description"].startswith("scikit-learn's copy")
    stored = {o["facets"]["version"]["datasetVersion"] for o in done["outputs"]}
    assert len(stored) == 3  # data, reference and evaluation set, each by content hash
    ins = {(i["namespace"], i["name"]) for i in done["inputs"]}
    assert ("https://archive.ics.uci.edu",
            "/dataset/80/optical+recognition+of+handwritten+digits") in ins
    assert any(n.endswith("/train/digits.parquet") for _, n in ins), ins


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_failed_ingest_emits_fail(home, tmp_path, cli):
    m = write_manifest(tmp_path / "m.yaml", license="Not-A-Licence")
    (tmp_path / "d.csv").write_text("x,label\n1,0\n")
    r = cli("ingest", str(tmp_path / "d.csv"), "--manifest", str(m))
    assert r.returncode == 2
    events = read_events(home / "openlineage" / "events.jsonl")
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    for e in events:
        validate_event(e)
    assert "Not-A-Licence" in events[1]["run"]["facets"]["errorMessage"]["message"]


def _sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_parent_derived_snapshot_is_one_graph(derived_run, monkeypatch, cli):
    """parent -> derived -> approved snapshot, reference and evaluation sets as inputs,
    every stage run under one pipeline run; every event valid against the schemas."""
    derived_run.use(monkeypatch)
    home, summary = derived_run.home, derived_run.summary
    assert summary["snapshot_ref"] == "digits-example.approved@1"

    events = read_events(home / "openlineage" / "events.jsonl")
    for e in events:
        validate_event(e)
    for e in events:
        for ds in e["inputs"] + e["outputs"]:
            assert NAMESPACE_RE.match(ds["namespace"]), ds["namespace"]
        for key, f in e["run"]["facets"].items():
            if key.startswith("dataward_") or key == "parent":
                assert f["_producer"] == PRODUCER

    # One pipeline run, the one `dataward run --json` printed; every stage run is its child.
    run_id = summary["run_id"]
    runs = [e for e in events[2:]]  # after the parent's own ingest
    pipeline = [e for e in runs if e["job"]["name"] == "dataward.pipeline"]
    assert [e["eventType"] for e in pipeline] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in pipeline} == {run_id}
    stages = [e for e in runs if e["job"]["name"] != "dataward.pipeline"]
    assert {e["job"]["name"] for e in stages} == {f"dataward.{s}" for s in
                                                  ("ingest", "validate", "screen", "decide", "report",
                                                   "publish")}
    for e in stages:
        parent = e["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == run_id and parent["job"]["name"] == "dataward.pipeline"
        assert parent["root"]["run"]["runId"] == run_id
    assert len({e["run"]["runId"] for e in stages}) == 6  # one run per stage

    # Walk the graph: dataset -> job run -> dataset, over the COMPLETE events.
    done = [e for e in events if e["eventType"] == "COMPLETE"]
    edges = defaultdict(set)
    for e in done:
        for i in e["inputs"]:
            for o in e["outputs"]:
                edges[(i["namespace"], i["name"])].add((e["job"]["name"], (o["namespace"], o["name"])))

    def by_symlink(name):
        for e in done:
            for ds in e["outputs"]:
                ids = (ds["facets"].get("symlinks") or {}).get("identifiers") or []
                if any(x["name"].endswith(name) for x in ids):
                    return ds
        raise AssertionError(f"no dataset with logical name {name}")

    parent, derived, snapshot = (by_symlink(n) for n in
                                 ("#digits-raw@1", "#digits-example@1", "#digits-example.approved@1"))
    key = lambda d: (d["namespace"], d["name"])  # noqa: E731
    assert ("dataward.ingest", key(derived)) in edges[key(parent)]
    assert ("dataward.publish", key(snapshot)) in edges[key(derived)]
    assert snapshot["facets"]["version"]["datasetVersion"] == _sha256(summary["snapshot"])
    assert snapshot["name"] == str(summary["snapshot"])
    # the source URI is an input of the derived ingest, named by the naming spec
    ingest = next(e for e in done
                  if e["job"]["name"] == "dataward.ingest" and e["run"]["runId"] != events[1]["run"]["runId"])
    assert ("https://archive.ics.uci.edu", "/dataset/80/optical+recognition+of+handwritten+digits") in {
        key(i) for i in ingest["inputs"]}
    assert key(parent) in {key(i) for i in ingest["inputs"]}
    # the reference and evaluation sets are inputs of the screen
    screen = next(e for e in done if e["job"]["name"] == "dataward.screen")
    roles = sorted(i["facets"]["datasetType"]["subType"] for i in screen["inputs"])
    assert roles == ["DATA", "EVALUATION", "REFERENCE"]
    # validate: GX results and row counts as standard input facets
    validate = next(e for e in done if e["job"]["name"] == "dataward.validate")
    inp = validate["inputs"][0]
    assert inp["inputFacets"]["dataQualityMetrics"]["rowCount"] == 1077
    assertions = inp["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert assertions and all(a["success"] for a in assertions)
    assert any(a.get("column") == "label" for a in assertions)
    # decide: the screening verdict
    decide = next(e for e in done if e["job"]["name"] == "dataward.decide")
    verdict = decide["run"]["facets"]["dataward_screening"]
    assert verdict["outcome"] == "trim" and verdict["flaggedRows"] == summary["n_flagged"]
    publish = next(e for e in done if e["job"]["name"] == "dataward.publish")
    assert publish["run"]["facets"]["dataward_licence"]["expression"] == "CC-BY-4.0"

    # the picture a consumer draws from these events (the README's graph)
    r = cli("lineage", "graph")
    assert r.returncode == 0, r.stderr
    chart = r.stdout
    label = {ln.split("[", 1)[1].strip('[]()"'): ln.split("[", 1)[0].strip()
             for ln in chart.splitlines()[1:] if "[" in ln and "subgraph" not in ln}
    arrows = {tuple(ln.split(" --> ")) for ln in (x.strip() for x in chart.splitlines()) if " --> " in ln}
    jobs = {ln.split("[", 1)[0].strip(): ln.split('"')[1] for ln in chart.splitlines() if '[["' in ln}
    ingest_node = next(j for j, name in jobs.items() if name == "ingest"
                       and (label["digits-raw@1"], j) in arrows)
    assert (ingest_node, label["digits-example@1"]) in arrows
    publish_node = next(j for j, name in jobs.items() if name == "publish")
    assert (label["digits-example@1"], publish_node) in arrows
    assert (publish_node, label["digits-example.approved@1"]) in arrows
    assert f'dataward.pipeline run {run_id[:8]}' in chart
    only = cli("lineage", "graph", "--run", run_id).stdout
    assert "digits-example.approved@1" in only and only.count("subgraph") == 1
    bad = cli("lineage", "graph", "--run", "00000000-0000-0000-0000-000000000000")
    assert bad.returncode == 2 and "no events of run" in bad.stderr


def test_custom_facet_schemas_ship_at_the_url_they_name():
    from lineage.openlineage import facets

    names = {p.stem for p in CUSTOM_DIR.glob("*.json")}
    assert names == {"LicenceVerdictRunFacet", "StageOutcomeRunFacet", "ScreeningVerdictRunFacet"}
    for name in names:
        doc = json.loads((CUSTOM_DIR / f"{name}.json").read_text())
        # the URL names the file's place in the repository
        assert doc["$id"] == f"{SCHEMA_BASE}{name}.json"
        assert schema_url(name).startswith(doc["$id"] + "#/$defs/") and name in doc["$defs"]
    built = [facets.licence_verdict({"expression": "MIT", "use_class": "permissive",
                                     "allowed_for_training": True, "reason": "ok", "policy_version": "1"}),
             facets.stage_outcome("x", "done", {"n": 1, "nested": {"dropped": True}}),
             facets.screening_verdict({"outcome": "approve", "reasons": [{"why": "clean"}], "n_rows": 3})]
    for f in built:
        url = f._schemaURL
        assert url.startswith(SCHEMA_BASE) and f._producer == PRODUCER


@pytest.mark.parametrize("uri, expected", [
    ("s3://bucket/path/to/data.parquet", ("s3://bucket", "path/to/data.parquet")),
    ("gs://b/k", ("gs://b", "k")),
    ("https://user:secret@example.org:8443/d/x.csv", ("https://example.org:8443", "/d/x.csv")),
    ("postgresql+psycopg://u:p@db.example:5433/sales/public.orders", ("postgres://db.example:5433",
                                                                       "sales.public.orders")),
    ("postgres://db/sales/public.orders", ("postgres://db:5432", "sales.public.orders")),
    ("file://otherhost/data/x.csv", ("file://otherhost", "/data/x.csv")),
])
def test_source_uris_follow_the_naming_spec(uri, expected):
    assert uri_dataset(uri) == expected


def test_local_paths_are_named_on_this_host(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAWARD_HOST", "worker-1")
    assert uri_dataset("data/x.csv", base_dir=tmp_path) == ("file://worker-1", f"{tmp_path}/data/x.csv")
    assert uri_dataset(f"file://{tmp_path}/y.csv") == ("file://worker-1", f"{tmp_path}/y.csv")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_airflow_task_is_the_pipeline_runs_parent_and_the_dag_run_the_root(home, tmp_path, cli):
    """Under Airflow the pipeline run hangs below the task that started it (the names and
    run ids the OpenLineage provider's parent-run macros give), every stage run below the
    pipeline run, and the DAG run is the root of all of them."""
    from dataward.context import Context
    from dataward.pipeline import finish_run, run_stage, start_run
    from lineage.openlineage.emitter import new_run_id
    from lineage.openlineage.refs import ParentRef

    (tmp_path / "d.csv").write_text("x,label\n1,0\n2,1\n")
    m = write_manifest(tmp_path / "m.yaml")
    dag_run, task_run = new_run_id(), new_run_id()
    parent = ParentRef("airflow-prod", "dataward_import.ingest", task_run,
                       root=ParentRef("airflow-prod", "dataward_import", dag_run))
    ctx = Context()
    run_id = start_run(ctx, trigger="airflow", external_id="manual__1", lineage_parent=parent)
    from dataward.stages.ingest import ingest

    ref = ingest(ctx, tmp_path / "d.csv", m, pipeline_run=run_id).ref
    run_stage(ctx, "validate", ref, run_id=run_id, lineage_root=parent.root)
    finish_run(ctx, run_id, "success", lineage_parent=parent)

    events = read_events(home / "openlineage" / "events.jsonl")
    for e in events:
        validate_event(e)
    pipeline = [e for e in events if e["job"]["name"] == "dataward.pipeline"]
    assert [e["eventType"] for e in pipeline] == ["START", "COMPLETE"]
    for e in pipeline:
        p = e["run"]["facets"]["parent"]
        assert p["run"]["runId"] == task_run
        assert (p["job"]["namespace"], p["job"]["name"]) == ("airflow-prod", "dataward_import.ingest")
        assert p["root"]["run"]["runId"] == dag_run and p["root"]["job"]["name"] == "dataward_import"
    validate = [e for e in events if e["job"]["name"] == "dataward.validate"]
    assert validate
    for e in validate:
        p = e["run"]["facets"]["parent"]
        assert p["run"]["runId"] == run_id and p["root"]["run"]["runId"] == dag_run
    ingest_events = [e for e in events if e["job"]["name"] == "dataward.ingest"]
    assert all(e["run"]["facets"]["parent"]["run"]["runId"] == run_id for e in ingest_events)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_many_files_make_one_dataset(home, tmp_path, cli, monkeypatch):
    """Past MAX_FILE_DATASETS files (an image folder) a version is one dataset, named in
    the catalog, not one node per file."""
    import pyarrow as pa

    from dataward.export import lineage_events

    monkeypatch.setattr(lineage_events, "MAX_FILE_DATASETS", 2)
    d = tmp_path / "parts"
    d.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"x": [i, i + 1], "label": [0, 1]}), d / f"part-{i}.parquet")
    assert cli("ingest", str(d), "--manifest", str(write_manifest(tmp_path / "m.yaml"))).returncode == 0
    done = read_events(home / "openlineage" / "events.jsonl")[-1]
    validate_event(done)
    [out] = done["outputs"]
    assert out["facets"]["datasetType"] == {**out["facets"]["datasetType"], "datasetType": "FILE_SET",
                                            "subType": "DATA"}
    assert out["name"].endswith("toy@1") and NAMESPACE_RE.match(out["namespace"])
    assert len([i for i in done["inputs"] if i["name"].endswith(".parquet")]) == 3  # the landed files
