"""Trusted references without a hand-made file: the trust chain (the last approved snapshot
screens the next version) and a reviewer-confirmed reference (``dataward reference
sample`` / ``confirm``). Real SQLite lineage DB, real screening engine on a small table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import select
from test_report import isolated_home

POLICY = """version: trust-test
canary: {enabled: false}
screening: {trust_chain_rows_per_class: 40}
review:
  reviewers: [alice, bob, tester]
  override_min_reason: 10
"""


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, 4)) + y[:, None] * 2.0
    return pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "d": x[:, 3], "label": y})


def _write(root: Path, tag: str, table: pa.Table, **manifest) -> tuple[Path, Path]:
    folder = root / f"src-{tag}"
    folder.mkdir()
    pq.write_table(table, folder / "data.parquet")
    m = {"name": "tiles", "owner": "data@example.com", "license": "CC-BY-4.0", "kind": "tabular-tiles",
         "label_column": "label", "source": {"uri": "https://example.org/tiles"}, **manifest}
    (root / f"{tag}.yaml").write_text(yaml.safe_dump(m))
    return folder, root / f"{tag}.yaml"


def _run(cli, root, tag, table, env=None, **manifest) -> dict:
    folder, m = _write(root, tag, table, **manifest)
    r = cli("run", str(folder), "--manifest", str(m), "--json", "--quiet", env=env)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """tiles@1 imported by tester, quarantined (no suite), approved by alice and published;
    tiles@2 shares 160 rows with it and brings 120 new ones and no reference."""
    from cli_runner import invoke_cli as cli

    root = tmp_path_factory.mktemp("trust")
    with isolated_home(root) as home, pytest.MonkeyPatch.context() as mp:
        (root / "policy.yaml").write_text(POLICY)
        mp.setenv("DATAWARD_POLICY", str(root / "policy.yaml"))
        mp.setattr("dataward.stages.report.render_pdf", lambda html: b"%PDF-1.7 not rendered in this test\n")
        v1 = _table(240, 0)
        s1 = _run(cli, root, "v1", v1)
        assert s1["ref"] == "tiles@1" and s1["outcome"] == "quarantine"
        assert s1["reference"].startswith("none (no approved earlier version")
        r = cli("review", "tiles@1", "--approve", "--reason", "no suite yet; rows checked by hand",
                env={"DATAWARD_ACTOR": "alice"})
        assert r.returncode == 0, r.stderr
        v2 = pa.concat_tables([v1.slice(0, 160), _table(120, 1)])
        s2 = _run(cli, root, "v2", v2)
        yield {"home": home, "root": root, "v1": v1, "v2": v2, "s2": s2}


def _screen(ref: str) -> dict:
    from dataward.context import Context
    from dataward.stage_results import finished

    return finished(Context(), ref, "screen")[2]


def test_trust_chain_screens_the_next_version_with_the_approved_snapshot(chain):
    from dataward.context import Context
    from dataward.governance.reference import row_digests
    from lineage.models import CheckResult

    s2 = chain["s2"]
    assert s2["ref"] == "tiles@2" and s2["screening_status"] == "done"
    # the summary names it: snapshot, rows per class, who signed and when
    assert s2["reference"].startswith("tiles.approved@1, ")
    assert "rows per class, signed by alice on 20" in s2["reference"]
    assert "160 rows this version shares with it excluded" in s2["reference"]
    out = _screen("tiles@2")
    ref = out["reference"]
    assert out["used_reference"] and ref["kind"] == "trust_chain"
    assert ref["source_ref"] == "tiles.approved@1" and ref["approved_version"] == "tiles@1"
    assert ref["approval"] == "signed" and ref["approved_by"] == "alice"
    assert ref["excluded_shared_rows"] == 160 and ref["snapshot_rows"] == 240
    # 80 snapshot rows are not in tiles@2: at most 40 per class of them, none shared
    assert sum(ref["rows_per_class"].values()) == ref["rows"] == len(ref["snapshot_row_ids"])
    assert all(k <= 40 for k in ref["rows_per_class"].values()) and ref["rows"] <= 80
    assert min(ref["snapshot_row_ids"]) >= 160  # the snapshot keeps tiles@1's order: rows 160.. are not shared
    assert out["summary"]["n_reference_rows"] == ref["rows"]
    v1_rows = row_digests(chain["v1"])
    assert not {v1_rows[i] for i in ref["snapshot_row_ids"]} & set(row_digests(chain["v2"]))
    # recorded in the check result, in the OpenLineage screen run's inputs, and in the report
    with Context().session() as s:
        check = s.execute(select(CheckResult).where(CheckResult.check == "screening")
                          .order_by(CheckResult.id.desc())).scalars().first()
        assert check.details["reference"]["source_ref"] == "tiles.approved@1"
    from ol_spec import read_events

    events = read_events(chain["home"] / "openlineage" / "events.jsonl")
    screen = [e for e in events if e["job"]["name"].endswith("screen") and e["eventType"] == "COMPLETE"][-1]
    links = [link["name"] for i in screen["inputs"]
             for link in (i.get("facets", {}).get("symlinks", {}).get("identifiers") or [])]
    assert any(name.endswith("tiles.approved@1") for name in links), links
    html = Path(s2["report"]).read_text()
    assert "Reference: tiles.approved@1, " in html and "signed by alice" in html


def test_trust_chain_streams_the_snapshot_and_draws_what_the_definition_draws(chain, monkeypatch):
    """The snapshot is read batch by batch (here 7 rows a batch), never whole, and the
    version's rows may be streamed too: the rows drawn are the in-memory definition's,
    per class a seeded draw among the snapshot rows the version does not hold."""
    from dataward import stage_results
    from dataward.context import Context
    from dataward.governance.reference import TRUST_CHAIN_SEED, row_digests, trust_chain_reference
    from lineage.ingest import resolve

    ctx = Context()
    with ctx.session() as s:
        vid = resolve(s, "tiles@2").id
    whole = stage_results.read_table(ctx, vid)
    ref_w, info_w = trust_chain_reference(ctx, vid, whole, "label", rows_per_class=40)
    monkeypatch.setattr(stage_results, "BATCH_ROWS", 7)
    ref_s, info_s = trust_chain_reference(ctx, vid, stage_results.StoredRows(ctx, vid), "label", rows_per_class=40)
    assert info_s == info_w and ref_s.equals(ref_w)
    v1, held = chain["v1"], set(row_digests(chain["v2"]))
    digests, labels = row_digests(v1), v1.column("label").to_pylist()
    rng = np.random.default_rng(TRUST_CHAIN_SEED)
    expected, per_class = [], {}
    for c in sorted(set(labels)):
        candidates = [i for i, (lab, dig) in enumerate(zip(labels, digests)) if lab == c and dig not in held]
        per_class[str(c)] = min(40, len(candidates))
        expected += sorted(int(i) for i in rng.choice(candidates, size=per_class[str(c)], replace=False))
    assert info_w["snapshot_row_ids"] == sorted(expected) and info_w["excluded_shared_rows"] == 160
    assert info_w["rows_per_class"] == per_class
    assert row_digests(ref_w) == [digests[i] for i in sorted(expected)]


def test_policy_can_switch_the_trust_chain_off(chain, cli):
    root = chain["root"]
    (root / "off.yaml").write_text(POLICY.replace("screening: {", "screening: {trust_chain: false, "))
    s3 = _run(cli, root, "v3", pa.concat_tables([chain["v1"].slice(0, 100), _table(150, 2)]),
              env={"DATAWARD_POLICY": str(root / "off.yaml")})
    assert s3["ref"] == "tiles@3" and s3["screening_status"] == "done"
    out = _screen("tiles@3")
    assert not out["used_reference"] and out["reference"]["kind"] == "none"
    assert "trust_chain: false" in s3["reference"] and out["summary"]["n_reference_rows"] == 0
    (root / "bad.yaml").write_text(POLICY.replace("screening: {", "screening: {trust_chain: maybe, "))
    r = cli("rerun", "tiles@3", "--from", "screen", "--reason", "bad policy",
            env={"DATAWARD_POLICY": str(root / "bad.yaml")})
    assert r.returncode == 2 and "screening.trust_chain true|false" in r.stderr


def test_own_reference_file_is_kept(chain):
    """A version with its own reference file keeps using it (the choice alone: no screen)."""
    from dataward.context import Context
    from dataward.governance.policy import load_policy
    from dataward.governance.reference import reference_for_screen
    from dataward.stage_results import read_table
    from dataward.stages.ingest import ingest
    from lineage.ingest import resolve

    root = chain["root"]
    pq.write_table(_table(60, 7), root / "ref4.parquet")
    folder, m = _write(root, "v4", _table(200, 4), reference="ref4.parquet")
    ctx = Context()
    result = ingest(ctx, folder, m)
    with ctx.session() as s:
        vid = resolve(s, result.ref).id
    table, info = reference_for_screen(ctx, vid, read_table(ctx, vid), "label", load_policy(str(root / "policy.yaml")))
    assert info["kind"] == "manifest" and table.num_rows == 60 and "own reference set" in info["label"]


def _audit(action: str):
    from dataward.context import Context
    from lineage.models import AuditEntry

    with Context().session() as s:
        return [(e.actor, e.subject, e.payload) for e in s.execute(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).scalars()]


def _reference_versions():
    from dataward.context import Context
    from lineage.models import Dataset

    with Context().session() as s:
        ds = s.execute(select(Dataset).where(Dataset.name == "tiles.reference")).scalars().first()
        return None if ds is None else [v.ref for v in ds.versions]


def test_reference_sample_and_confirm_round_trip(chain, cli):
    from dataward.context import Context
    from lineage.ingest import resolve
    root = chain["root"]
    bob = {"DATAWARD_ACTOR": "bob"}
    sample = root / "sample.json"
    r = cli("reference", "sample", "tiles@2", "--per-class", "10", "--out", str(sample), env=bob)
    assert r.returncode == 0, r.stderr
    assert "30 rows of tiles@2 (10 per class, seed 0)" in r.stdout and "a=" in r.stdout
    doc = json.loads(sample.read_text())
    assert len(doc["rows"]) == 30 and doc["ref"] == "tiles@2"
    view = Path(str(sample) + ".html").read_text()
    assert all(f'id="row-{x["row_id"]}"' in view for x in doc["rows"])
    assert all(row["shown"]["cells"] and row["digest"] for row in doc["rows"])
    # the same seed draws the same rows
    again = cli("reference", "sample", "tiles@2", "--per-class", "10", "--out", str(root / "again.json"), env=bob)
    assert again.returncode == 0
    assert [x["row_id"] for x in json.loads((root / "again.json").read_text())["rows"]] == \
        [x["row_id"] for x in doc["rows"]]

    screen_before = _screen("tiles@2")

    def refused(*args, env=bob, expect=""):
        r = cli("reference", "confirm", *args, env=env)
        assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("dataward: ")
        assert expect in r.stderr, r.stderr
        return r

    refused("tiles@9", "--sample", str(sample), expect="tiles@9")
    refused("tiles@2", "--sample", str(sample), env={"DATAWARD_ACTOR": "mallory"},
            expect="not a reviewer named by the decision policy")
    refused("tiles@2", "--sample", str(sample), "--reviewer", "alice", expect="would sign as someone else")
    refused("tiles@2", "--sample", str(sample), env={"DATAWARD_ACTOR": "tester"}, expect="separation of duties")
    refused("tiles@1", "--sample", str(sample), expect="drawn from 'tiles@2'")
    bad = json.loads(sample.read_text())
    bad["rows"][0]["row_id"] = 100000
    (root / "outside.json").write_text(json.dumps(bad))
    refused("tiles@2", "--sample", str(root / "outside.json"), expect="is not a row of tiles@2")
    bad = json.loads(sample.read_text())
    bad["rows"].append({**bad["rows"][0], "row_id": next(i for i in range(280) if i not in
                                                            {x["row_id"] for x in bad["rows"]})})
    (root / "forged.json").write_text(json.dumps(bad))
    refused("tiles@2", "--sample", str(root / "forged.json"), expect="its content differs")
    bad = json.loads(sample.read_text())
    bad["rows"][0]["label"] = (bad["rows"][0]["label"] + 1) % 3
    (root / "relabelled.json").write_text(json.dumps(bad))
    refused("tiles@2", "--sample", str(root / "relabelled.json"), expect="--corrections")
    first, second, third = (x["row_id"] for x in doc["rows"][:3])
    (root / "wrong.yaml").write_text(f"{first}: 7\n")
    refused("tiles@2", "--sample", str(sample), "--corrections", str(root / "wrong.yaml"),
            expect="is not a label of tiles@2")
    (root / "most.yaml").write_text("".join(f"{x['row_id']}: null\n" for x in doc["rows"][4:]))
    refused("tiles@2", "--sample", str(sample), "--corrections", str(root / "most.yaml"), expect="too few")
    # nothing half-written: no reference version, no confirmation, the screen result untouched
    assert _reference_versions() is None and _audit("reference-confirm") == []
    assert _screen("tiles@2") == screen_before
    refusals = [e for e in _audit("review-refused") if e[2].get("outcome") == "reference-confirm"]
    assert {e[0] for e in refusals} >= {"mallory", "tester"}

    label0 = next(x["label"] for x in doc["rows"] if x["row_id"] == first)
    (root / "fix.yaml").write_text(f"{first}: {(label0 + 1) % 3}\n{second}: null\n")
    r = cli("reference", "confirm", "tiles@2", "--sample", str(sample), "--reviewer", "bob",
            "--corrections", str(root / "fix.yaml"), "--json", env=bob)
    assert r.returncode in (0, 1), r.stderr
    out = json.loads(r.stdout)
    assert out["reference"] == "tiles.reference@1" and out["created"] and out["reviewer"] == "bob"
    assert out["rows"] == 29 and out["dropped"] == [second]
    assert out["corrected"] == [{"row_id": first, "from": label0, "to": (label0 + 1) % 3}]
    # lineage: a content-addressed version with the reviewer as provenance, parent tiles@2, audited
    ctx = Context()
    with ctx.session() as s:
        v = resolve(s, "tiles.reference@1")
        assert v.status == "confirmed" and v.provenance.acquired_by == "bob" and v.row_count == 29
        assert v.manifest["confirmed_by"] == "bob" and v.manifest["confirmed_at"]
        path = ctx.store.path_for(v.data_files[0].sha256, "parquet")
        order = v.manifest["version_row_ids"]
    stored = pq.read_table(path)
    assert stored.num_rows == 29 and second not in order and third in order
    assert stored.column("label")[order.index(first)].as_py() == (label0 + 1) % 3
    lineage = json.loads(cli("lineage", "show", "tiles.reference@1", "--json").stdout)
    assert [p["ref"] for p in lineage["parents"]] == ["tiles@2"]
    [(actor, subject, payload)] = _audit("reference-confirm")
    assert actor == "bob" and subject == "tiles@2" and payload["reference"] == "tiles.reference@1"
    # the rerun screened with it; the earlier screen is kept as superseded
    assert "tiles.reference@1, " in out["rerun"]["reference"] and "confirmed by bob on 20" in out["rerun"]["reference"]
    assert "1 label(s) corrected" in out["rerun"]["reference"]
    now = _screen("tiles@2")
    assert now["reference"]["kind"] == "confirmed" and now["reference"]["source_ref"] == "tiles.reference@1"
    assert now["summary"]["n_reference_rows"] == 29
    history = json.loads(cli("history", "tiles@2", "--json").stdout)
    assert any(h["superseded"] and h["stage"] == "screen" for h in history)
    # and every later screen of the version uses it too
    shown = json.loads(cli("reference", "show", "tiles@2", "--json").stdout)
    assert shown["confirmed"]["source_ref"] == "tiles.reference@1"
    assert shown["previous_approval"]["snapshot_ref"] == "tiles.approved@1"


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_trust_chain_catches_a_backdoor_the_reference_free_verdict_misses(home, cli, tmp_path, monkeypatch):
    """digits: v1 (clean) is approved and published by the policy; v2, a fresh batch with a
    4 % BadNets patch relabelled to 0 and no reference file, is screened against v1's
    snapshot and every backdoor row is flagged (without a reference: 2 of 39, measured)."""
    from digits_tables import digits_table as digits
    from digits_tables import shuffled_digits, use_policy

    # without a reference v1 is held as limited assurance (a reviewer would sign it
    # off); here the policy publishes it, to name the policy in the trust chain
    use_policy(tmp_path, monkeypatch, "version: chain-test\ncanary: {enabled: false}\n"
                                      "screening: {on_no_reference: approve}\n")
    x, y, order, rng = shuffled_digits(3)
    x2, y2 = x[order[800:]].copy(), y[order[800:]].copy()
    bd = rng.choice(np.flatnonzero(y2 != 0), size=int(0.04 * len(y2)), replace=False)
    img = x2[bd].reshape(-1, 8, 8)
    img[:, 6:8, 6:8] = 16
    x2[bd], y2[bd] = img.reshape(-1, 64), 0

    kw = dict(name="digits-chain", kind="tabular-digits")
    s1 = _run(cli, tmp_path, "d1", digits(x[order[:800]], y[order[:800]]), **kw)
    assert s1["outcome"] in ("approve", "trim") and s1["snapshot_ref"] == "digits-chain.approved@1", s1
    s2 = _run(cli, tmp_path, "d2", digits(x2, y2), **kw)
    assert s2["reference"].startswith("digits-chain.approved@1, ")
    assert "published by policy chain-test on 20" in s2["reference"]
    out = _screen("digits-chain@2")
    assert out["reference"]["approval"] == "policy" and out["reference"]["excluded_shared_rows"] == 0
    import pyarrow.parquet as pq_

    flagged = pq_.read_table(out["scores_path"]).column("flagged").to_numpy(zero_copy_only=False)
    assert flagged[bd].all(), f"{int(flagged[bd].sum())} of {len(bd)} backdoor rows flagged"


@pytest.mark.airflow
def test_review_page_confirms_a_reference(chain, monkeypatch):
    """The review page's door: the Airflow user (with sign-off rights) confirms the sampled
    rows with corrections from the form; the rerun is requested from the import DAG as that
    user. The auth manager and Airflow's REST API are stood in for (test_review_web drives
    the real ones for sign-offs)."""
    pytest.importorskip("airflow")
    import sys

    from fastapi.testclient import TestClient

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins"))
    import dataward_review as plugin
    from airflow.api_fastapi.core_api.security import get_user

    class User:
        def get_name(self):
            return "carol"

    requested = []
    monkeypatch.setattr(plugin, "may_sign", lambda user, dag_id: True)
    monkeypatch.setattr("dataward.airflow.rest.request_rerun",
                        lambda base, token, ref, reason: requested.append((token, ref, reason))
                        or {"requested": True, "dag_run_id": "manual__1"})
    plugin.app.dependency_overrides[get_user] = lambda: User()
    try:
        client = TestClient(plugin.app, headers={"Authorization": "Bearer tok"})
        page = client.get("/reference/tiles@2", params={"per_class": 6})
        assert page.status_code == 200 and 'name="label-' in page.text and "carol" in page.text
        import html
        import re

        doc = json.loads(html.unescape(re.search(r'name="sample" value="([^"]*)"', page.text).group(1)))
        first, second = doc["rows"][0], doc["rows"][1]
        form = {"sample": json.dumps(doc), "csrf": "", f"label-{first['row_id']}": str((first["label"] + 1) % 3),
                f"label-{second['row_id']}": "__leave_out__"}
        bad = dict(form, sample=json.dumps({**doc, "rows": doc["rows"] + [{**first, "row_id": 99999}]}))
        r = client.post("/reference/tiles@2", data=bad, follow_redirects=False)
        assert r.status_code == 303 and "is%20not%20a%20row" in r.headers["location"] and not requested
        r = client.post("/reference/tiles@2", data=form, follow_redirects=False)
        assert r.status_code == 303 and "confirmed%20by%20carol" in r.headers["location"], r.headers["location"]
        [(token, ref, reason)] = requested
        assert token == "tok" and ref == "tiles@2" and reason.endswith("confirmed by carol")
    finally:
        plugin.app.dependency_overrides.clear()
    [(actor, subject, payload)] = [e for e in _audit("reference-confirm") if e[1] == "tiles@2" and e[0] == "carol"]
    assert actor == "carol" and payload["via"] == "airflow-ui" and payload["dropped_rows"] == [second["row_id"]]
    assert payload["corrected_rows"][0]["row_id"] == first["row_id"]
