"""Reports: the JSON has every figure, the HTML is self-contained and renders in a real
headless Chromium, the PDF converts to PNG pages; the digest links to each report.

The screens are expensive, so these tests record a synthetic
but realistic screen result (scores.parquet, summary.json, projection.npy) for a small
ingested table and run the real decide, report and publish stages on it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from browser import Browser, chromium_path, non_blank

SECTIONS = ["summary", "provenance", "validation", "screening", "per-class", "projection",
            "top-flagged", "canary", "leakage", "diff", "personal-data", "decision", "compliance"]


@contextmanager
def isolated_home(root: Path, db_url: str | None = None):
    """A fresh installation under ``root`` (SQLite), for module-scoped fixtures.

    The conftest ``home`` fixture is function-scoped (and parametrized over SQLite and
    PostgreSQL); building the same versions once per module instead of once per test is
    what keeps these tests fast. ``db_url``: the lineage DB (default SQLite under ``root``).
    Yields the DATAWARD_HOME path.
    """
    from lineage.db import dispose_all

    h = root / "home"
    h.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATAWARD_HOME", str(h))
        mp.setenv("DATAWARD_DB_URL", db_url or f"sqlite:///{root / 'lineage.db'}")
        mp.setenv("DATAWARD_ACTOR", "tester")
        for var in ("DATAWARD_DATA_ROOT", "DATAWARD_LANDING", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG",
                    "DATAWARD_POLICY"):
            mp.delenv(var, raising=False)
        try:
            yield h
        finally:
            dispose_all()


@contextmanager
def _policy(root: Path, quarantine: bool):
    """``max_trim_fraction: 0`` (any flag quarantines) while the version is decided and reported."""
    if not quarantine:
        yield
        return
    policy = root / "strict-policy.yaml"
    policy.write_text("version: test-strict\nscreening: {max_trim_fraction: 0.0}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATAWARD_POLICY", str(policy))
        yield


@contextmanager
def _no_pdf(pdf: bool):
    """WeasyPrint is slow: only the test that checks the PDF renders one."""
    if pdf:
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("dataward.stages.report.render_pdf", lambda html: b"%PDF-1.7 not rendered in this test\n")
        yield


def canary_output(n: int, *, recall: float = 0.95, floor: float = 0.8) -> dict:
    """A canary self-test as the screen stage records it (see dataward/stages/screen.py)."""
    half = 10
    caught_flip, caught_trig = half, int(round(recall * 2 * half)) - half
    per_kind = {"label_flip": {"n": half, "caught": caught_flip, "recall": caught_flip / half},
                "trigger": {"n": half, "caught": caught_trig, "recall": caught_trig / half}}
    caught = caught_flip + caught_trig

    def screen(auroc, budget, r_flip, r_trig):
        return {"auroc": auroc, "budget": budget, "recall_at_budget": (r_flip + r_trig) / 2,
                "per_kind": {"label_flip": {"n": half, "caught": int(r_flip * half), "recall": r_flip},
                             "trigger": {"n": half, "caught": int(r_trig * half), "recall": r_trig}}}

    return {"status": "done", "n_canaries": 2 * half, "counts": {"label_flip": half, "trigger": half},
            "target": 0, "trigger": {"kind": "image patch", "column": "pixels", "patch": [2, 2],
                                     "corner": "bottom-right", "value": 16},
            "seed": 0, "source_rows": list(range(2 * half)), "notes": [], "recall": caught / (2 * half),
            "flagged": {"n": 2 * half, "caught": caught, "recall": caught / (2 * half), "per_kind": per_kind},
            "screens": {"label_noise": screen(0.97, 8, 1.0, recall), "spectral": screen(0.61, 10, 0.1, 0.5),
                        "influence": screen(0.55, 3, 0.2, 0.0), "activation_cluster": screen(0.5, 6, 0.0, 0.3)},
            "canary_path": "canary.parquet", "min_recall": floor}


def make_version(root: Path, *, name: str = "tiles", n: int = 120, n_flagged: int = 6,
                 licence: str = "CC-BY-4.0", quarantine: bool = False, seed: int = 0, pdf: bool = False,
                 table: pa.Table | None = None, evaluation: pa.Table | None = None,
                 canary_recall: float | None = 0.95, card: dict | None = None) -> str:
    """Ingest a small 4x4-pixel table, record validation and screens, run decide and report.

    The screens are expensive, so their result is synthetic but shaped like the real one:
    scores, summary and projection, a canary self-test (``canary_recall``; None: not run),
    and the real leakage check and version diff (cheap) over the stored data.
    ``quarantine``: decide under a policy with ``max_trim_fraction: 0`` (any flag quarantines).
    ``table`` replaces the generated rows (16 pixel columns and ``label``, more columns allowed);
    ``evaluation`` is stored as the version's evaluation set. ``pdf``: render the real PDF.
    ``card``: data-card keys added to the manifest (purpose, annotation, ...).
    Returns the version's ref.
    """
    from checks.leakage import leakage_report
    from dataward.context import Context
    from dataward.diff import diff_against_previous_approved
    from dataward.stage_results import finished, read_table, record, version_dir, write_atomic
    from dataward.stages.decide import record_decision
    from dataward.stages.ingest import ingest
    from dataward.stages.outputs import ScreenStageOutput, ValidateOutput, check_output
    from dataward.stages.report import report
    from lineage.models import STATUS_SCREENED, STATUS_VALIDATED

    rng = np.random.default_rng(seed)
    src = root / f"src-{name}-{seed}"
    src.mkdir(parents=True)
    if table is None:
        cols = {f"p{i}": pa.array(rng.integers(0, 17, n)) for i in range(16)}
        cols["label"] = pa.array(rng.integers(0, 3, n))
        table = pa.table(cols)
    n = table.num_rows
    labels = np.asarray(table.column("label").to_pylist())
    pq.write_table(table, src / "tiles.parquet")
    manifest = {"name": name, "owner": "data@example.com", "license": licence, "kind": "tabular-tiles",
                "label_column": "label", "description": "Synthetic 4x4 tiles for the report tests",
                "source": {"uri": "https://example.org/tiles", "publisher": "Example Lab"},
                "collection": {"method": "generated", "from": "2026-01-01", "to": "2026-01-02"}}
    manifest.update(card or {})
    if evaluation is not None:
        pq.write_table(evaluation, root / f"eval-{name}-{seed}.parquet")
        manifest["evaluation_sets"] = [f"eval-{name}-{seed}.parquet"]
    (root / f"{name}-{seed}.yaml").write_text(yaml.safe_dump(manifest))
    with _policy(root, quarantine), _no_pdf(pdf):
        ctx = Context()
        ref = ingest(ctx, src, root / f"{name}-{seed}.yaml").ref
        version_id = finished(ctx, ref, "validate")[0]
        docs = ctx.settings.home / "data_docs" / "validations" / ref / "index.html"
        write_atomic(docs, b"<html><body><h1>Data Docs</h1></body></html>")
        validated = ValidateOutput(
            success=True, status="passed", kind="tabular-tiles", suite="tabular-tiles",
            failed=[], n_expectations=3, n_rows=n, data_docs=str(docs),
            outcomes=[{"expectation_type": "expect_column_values_to_be_between", "column": f"p{i}",
                       "success": True} for i in range(2)]
            + [{"expectation_type": "expect_column_distinct_values_to_be_in_set", "column": "label",
                "success": True}])
        check_output("validate", validated)
        record(ctx, version_id, "validate", validated, status="passed", new_status=STATUS_VALIDATED)
        flagged = np.zeros(n, dtype=bool)
        flagged[rng.choice(n, n_flagged, replace=False)] = True
        out = version_dir(ctx, ref) / "screen"
        out.mkdir(parents=True, exist_ok=True)
        scores = {"row_id": np.arange(n), "spectral": rng.gamma(2.0, 1.0, n) + flagged * 6,
                  "label_noise": 10 ** rng.uniform(-6, 0, n), "influence": rng.normal(0, 1, n),
                  "flagged": flagged, "reason": np.where(flagged, "label rejected by the probe", "")}
        pq.write_table(pa.table(scores), out / "scores.parquet")
        np.save(out / "projection.npy", rng.normal(size=(n, 2)).astype(np.float32) + flagged[:, None] * 3)
        per_class = {str(c): int(((labels == c) & flagged).sum()) for c in range(3)}
        features = [f"p{i}" for i in range(16)]
        summary = {"n_rows": n, "input_kind": "tabular", "feature_cols": features,
                   "classes": [0, 1, 2], "class_counts": {str(c): int((labels == c).sum()) for c in range(3)},
                   "screens": {"label_noise": {"parameters": {"method": "self_confidence"}, "flagged": n_flagged,
                                               "flagged_per_class": per_class},
                               "spectral": {"parameters": {"method": "centred"}, "flagged": n_flagged + 2,
                                            "flagged_per_class": per_class},
                               "influence": {"parameters": {"outlier_z": 3.5}, "flagged": 1,
                                             "flagged_per_class": {"0": 1}}},
                   "combine": {"text": "label consistency against the reference-anchored probe",
                               "flagged": n_flagged, "flagged_per_class": per_class,
                               "detectable_attack": [
                                   {"class": c, "rows": int((labels == c).sum()), "reference_rows": m,
                                    "min_attack_rows": k}
                                   for c, m, k in [(0, 30, 14), (1, 25, 17), (2, 1, None)]]},
                   "estimated_poison_rate": n_flagged / n,
                   "canary_note": "20 canary rows were screened together with the real rows; the "
                                  "per-screen counts under 'screens' include them"}
        stored = read_table(ctx, version_id)
        evals = {} if evaluation is None else {f"evaluation/eval-{name}-{seed}.parquet": evaluation}
        screen_out = ScreenStageOutput(
            status="done", n_rows=n, n_flagged=n_flagged, flagged_fraction=n_flagged / n,
            scores_path=str(out / "scores.parquet"), projection_path=str(out / "projection.npy"),
            used_reference=True, summary=summary,
            canary=(canary_output(n, recall=canary_recall) if canary_recall is not None
                    else {"status": "not_run", "reason": "disabled by the policy", "n_canaries": 0}),
            leakage={"status": "done", **leakage_report(stored, label_col="label", feature_cols=features,
                                                        evaluation=evals)},
            diff=diff_against_previous_approved(ctx, ref, flagged_b=[int(i) for i in np.flatnonzero(flagged)]))
        check_output("screen", screen_out)
        record(ctx, version_id, "screen", screen_out, status="done", new_status=STATUS_SCREENED)
        check_output("decide", record_decision(ctx, ref))
        check_output("report", report(ctx, ref, run_id=None))
    return ref


def trimmed_then_changed(root: Path) -> tuple[str, str]:
    """Inside :func:`isolated_home`: ``tiles@1`` (trimmed, canaries caught) and ``tiles@2``
    (a diff against it, evaluation leakage, personal data, canaries missed)."""
    from dataward.context import Context
    from dataward.stage_results import read_table
    from lineage.ingest import resolve

    trim = make_version(root)
    with Context().session() as s:
        vid = resolve(s, trim).id
    table, evaluation = changed_tiles(read_table(Context(), vid))
    return trim, make_version(root, table=table, evaluation=evaluation, seed=1, canary_recall=0.6)


def changed_tiles(base: pa.Table, *, seed: int = 1) -> tuple[pa.Table, pa.Table]:
    """A next version of ``base``: 10 rows dropped, 15 added, 5 relabelled, a contact column
    (e-mail addresses) and a card column (payment card numbers); and an evaluation set
    of 30 rows, 3 of them copies of training rows."""
    rng = np.random.default_rng(seed)
    keep = base.slice(10)
    labels = np.asarray(keep.column("label").to_pylist())
    labels[:5] = (labels[:5] + 1) % 3
    keep = keep.set_column(keep.column_names.index("label"), "label", pa.array(labels))
    new = pa.table({**{f"p{i}": pa.array(rng.integers(0, 17, 15)) for i in range(16)},
                    "label": pa.array(rng.integers(0, 3, 15))})
    table = pa.concat_tables([keep, new.cast(keep.schema)])
    n = table.num_rows
    table = table.append_column("contact", pa.array([f"user{i}@example.org" if i % 2 else "" for i in range(n)]))
    table = table.append_column("card", pa.array(["4111 1111 1111 1111" if i % 3 == 0 else "n/a" for i in range(n)]))
    fresh = {f"p{i}": pa.array(rng.integers(0, 17, 27)) for i in range(16)}
    fresh["label"] = pa.array(rng.integers(0, 3, 27))
    copies = table.slice(20, 3).select([*(f"p{i}" for i in range(16)), "label"])
    evaluation = pa.concat_tables([pa.table(fresh).cast(copies.schema), copies])
    return table, evaluation


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """Built once for the module: ``trim`` (tiles@1, trimmed, canaries caught), ``changed``
    (tiles@2: diff against tiles@1, evaluation leakage, personal data, canaries missed:
    quarantined) and ``quarantine`` (tiles-b@1, quarantined by a strict policy)."""
    root = tmp_path_factory.mktemp("report")
    with isolated_home(root) as h:
        trim, changed = trimmed_then_changed(root)
        quarantined = make_version(root, name="tiles-b", quarantine=True)
        yield {"home": h, "root": root, "trim": trim, "changed": changed, "quarantine": quarantined}


def test_report_json_has_every_figure_and_the_compliance_mapping(versions):
    from dataward.context import Context
    from dataward.stages.report import report

    ref = versions["trim"]
    out = report(Context(), ref)  # idempotent: the recorded output
    assert set(out) >= {"json", "html", "pdf", "sha256", "outcome"} and out["outcome"] == "trim"
    html = Path(out["html"]).read_bytes()
    import hashlib

    assert hashlib.sha256(html).hexdigest() == out["sha256"]
    doc = json.loads(Path(out["json"]).read_text())
    assert doc["summary"]["outcome"] == "trim" and doc["summary"]["why"]
    assert doc["dataset"]["provenance"]["publisher"] == "Example Lab"
    assert doc["dataset"]["licence"]["expression"] == "CC-BY-4.0"
    screens = {s["name"]: s for s in doc["figures"]["screens"]}
    assert set(screens) == {"spectral", "label_noise", "influence"}
    for s in screens.values():
        h = s["histogram"]
        assert len(h["edges"]) == len(h["counts"]) + 1 and sum(h["counts"]) == 120
        assert s["threshold"] is not None
    assert screens["label_noise"]["histogram"]["log10"] is True
    assert sum(sum(s["histogram"]["flagged_counts"]) for s in screens.values()) == 3 * 6
    pc = doc["figures"]["per_class"]
    assert sum(pc["rows"].values()) == 120 and sum(pc["verdict_flagged"].values()) == 6
    assert pc["trusted_rows"] == {"0": 30, "1": 25, "2": 1}
    assert pc["min_attack_rows"] == {"0": 14, "1": 17, "2": None}
    assert doc["figures"]["projection"]["n_shown"] == 120
    top = doc["figures"]["top_flagged"]
    assert len(top) == 6 and all(r["image"]["height"] == 4 for r in top)
    assert sorted(doc["decision"]["excluded_row_ids"]) == sorted(r["row_id"] for r in top)
    # the self-tests: canaries caught above the floor, no leakage, no earlier version, no personal data
    can = doc["canary"]
    assert can["status"] == "done" and can["met_floor"] and can["min_recall"] == 0.8
    assert can["recall"] == 0.95 and (can["caught"], can["n"]) == (19, 20)
    assert [s["name"] for s in can["screens"]] == ["label_noise", "spectral", "influence", "activation_cluster"]
    assert "how sensitive the screens were on this very dataset" in can["sentence"].lower()
    assert can["count_note"]
    assert doc["leakage"]["status"] == "done" and doc["leakage"]["clean"]
    assert doc["diff"]["status"] == "first"
    assert doc["pii"]["status"] == "done" and doc["pii"]["tags"] == []
    refs = {(c["framework"].split(" ")[0], c["ref"]) for c in doc["compliance"]}
    for art in ["10(2)(a)", "10(2)(b)", "10(2)(c)", "10(2)(d)", "10(2)(e)", "10(2)(f)", "10(2)(g)",
                "10(2)(h)", "10(3)", "10(5)", "12", "15(5)"]:
        assert ("EU", f"Art. {art}") in refs
    assert {("NIST", r) for r in ("Availability poisoning", "Targeted poisoning", "Backdoor poisoning",
                                   "MAP 4.1", "MEASURE 2.7")} <= refs
    status = {c["ref"]: c["status"] for c in doc["compliance"]}
    assert status["Art. 15(5)"] == "evidenced" and status["Art. 10(2)(f)"] == "missing"
    assert status["MEASURE 2.7"] == "evidenced" and status["Art. 10(5)"] == "partial"
    evidence = {c["ref"]: " ".join(c["evidence"]) for c in doc["compliance"]}
    assert "canary self-test: 19 of 20" in evidence["Art. 15(5)"] and "canary" in evidence["MEASURE 2.7"]
    assert ("class 2: the class-excess test cannot flag a concentrated backdoor of any size"
            in evidence["Backdoor poisoning"])
    assert "exact duplicate" in evidence["Art. 10(3)"] and "personal-data scan" in evidence["Art. 10(5)"]
    assert all(c["why"] for c in doc["compliance"])
    assert doc["audit"]["intact"] and doc["code_version"]


def test_report_of_a_streamed_leakage_check_says_near_duplicates_were_not_searched(versions):
    """A version too large to hold gets the leakage check's exact part only: the page, its
    chart and the compliance evidence say the near duplicates were not searched, never 0."""
    from checks.leakage import exact_leakage_report
    from dataward.context import Context
    from dataward.reports.check_sections import leakage_section
    from dataward.reports.compliance import compliance_mapping
    from dataward.reports.render import check_charts, render_html
    from dataward.stage_results import finished, read_table
    from lineage.ingest import resolve

    ctx = Context()
    out = finished(ctx, versions["changed"], "report")[2]
    doc = json.loads(Path(out["json"]).read_text())
    with ctx.session(read_only=True) as s:
        version_id = resolve(s, versions["changed"]).id
    table = read_table(ctx, version_id)
    features = [f"p{i}" for i in range(16)]
    streamed = exact_leakage_report(table.to_batches(max_chunksize=50), label_col="label", feature_cols=features,
                                    near_reason="the version has 125 rows, more than the 100 held")
    doc["leakage"] = leakage_section({"status": "done", "leakage": {"status": "done", **streamed}})
    html = render_html(doc)
    assert "not searched: the version has 125 rows, more than the 100 held" in html
    assert "near not searched" in html and "near duplicates were not searched" in html
    assert check_charts(doc)["leakage"] is not None
    evidence = {c["ref"]: " ".join(c["evidence"]) for c in compliance_mapping(doc)}
    assert "near duplicates not searched" in evidence["Art. 10(3)"]
    assert "near-duplicate row(s)" not in evidence["Art. 10(3)"]


def test_report_shows_canary_leakage_diff_and_personal_data(versions):
    """tiles@2 against tiles@1: every new check found something, and the summary says so."""
    from dataward.context import Context
    from dataward.stage_results import finished

    out = finished(Context(), versions["changed"], "report")[2]
    doc = json.loads(Path(out["json"]).read_text())
    why = {r["check"]: r for r in doc["summary"]["why"]}
    assert doc["summary"]["outcome"] == "quarantine"
    assert {"canary", "leakage", "personal data"} <= set(why)
    assert why["canary"]["section"] == "canary" and why["personal data"]["section"] == "personal-data"
    can = doc["canary"]
    assert can["met_floor"] is False and can["recall"] == 0.6 and "below the policy floor" in can["sentence"]
    leak = doc["leakage"]
    (ev,) = leak["evaluation"]
    assert ev["exact_eval_rows"] == 3 and ev["exact_train_rows"] == 3 and len(ev["examples_exact"]) == 3
    assert leak["totals"]["eval_exact_eval_rows"] == 3 and not leak["clean"]
    diff = doc["diff"]
    assert diff["status"] == "done" and diff["a"] == versions["trim"] and diff["b"] == versions["changed"]
    assert (diff["rows"]["n_a"], diff["rows"]["n_b"]) == (120, 125)
    assert diff["rows"]["added"] >= 15 and diff["rows"]["removed"] >= 10
    assert set(diff["schema"]["added"]) == {"contact", "card"}
    assert diff["labels"]["total_variation"] >= 0 and diff["drift"]["top_columns"]
    assert diff["newly_flagged"]["n_flagged_b"] == 6
    pii = doc["pii"]
    tags = {(t["column"], t["category"]): t for t in pii["tags"]}
    assert ("contact", "email") in tags and ("card", "payment_card") in tags
    assert tags[("card", "payment_card")]["acted_on"] and not tags[("contact", "email")]["acted_on"]
    assert all("4111 1111 1111 1111" not in e for t in pii["tags"] for e in t["examples"])  # masked
    status = {c["ref"]: c for c in doc["compliance"]}
    assert status["Art. 15(5)"]["status"] == "partial" and "NOT met" in " ".join(status["Art. 15(5)"]["evidence"])
    assert "3 evaluation row(s) copied exactly" in " ".join(status["Art. 10(3)"]["evidence"])
    assert "relabelled" in " ".join(status["Art. 10(2)(c)"]["evidence"])
    html = Path(out["html"]).read_text()
    assert all(f'id="{a}"' in html for a in ("canary", "leakage", "diff", "personal-data"))
    assert all(f'href="#{a}"' in html for a in ("canary", "leakage", "personal-data"))  # from the summary


def test_report_renders_in_chromium_and_pdf_converts_to_pages(versions, tmp_path):
    if chromium_path() is None or shutil.which("pdftoppm") is None:
        pytest.skip("chromium and pdftoppm are needed (scripts/test-deps.sh installs them)")
    from dataward.context import Context
    from dataward.reports import render_pdf
    from dataward.stage_results import finished

    ref = versions["changed"]
    out = finished(Context(), ref, "report")[2]
    html = Path(out["html"]).read_text()
    # self-contained: no stylesheet, script or image from anywhere but data: URIs
    assert not re.search(r"<(link|script)\b", html)
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]+)"', html))
    shot = tmp_path / "report.png"
    with Browser(width=1280, height=900) as b:
        b.send("Network.enable")
        b.goto(Path(out["html"]).as_uri())
        requested = [e["params"]["request"]["url"] for e in b.events
                     if e.get("method") == "Network.requestWillBeSent"]
        present = b.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)")
        images = b.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        sections = b.evaluate("Object.fromEntries(['canary','leakage','diff','personal-data'].map("
                              "id => [id, document.getElementById(id).querySelectorAll('img').length]))")
        text = b.text()
        b.screenshot(shot)
    assert all(u.startswith(("file:", "data:")) for u in requested), requested
    assert set(SECTIONS) <= set(present)
    assert images and all(images)
    assert all(sections.values()), sections  # every new section draws its figure
    for phrase in ("Decision: quarantine", "Example Lab", "CC-BY-4.0", "Art. 15(5)", "MEASURE 2.7",
                   "Art. 10(5)", "Backdoor poisoning", "threshold", ref, "below the policy floor",
                   "how sensitive the screens were on this very dataset", "evaluation row",
                   versions["trim"], "payment_card", "Canary recall", "Class-excess test blind below"):
        assert phrase.lower() in text.lower(), phrase
    assert re.search(r"\b17\s\(\d+\.\d%\)", text)  # class 1's detectable backdoor: 17 rows, its share
    assert "any size" in text  # class 2: one trusted row, no attack is large enough
    ok, ink = non_blank(shot)
    assert ok, f"screenshot is blank ({ink:.2%} ink)"
    # the PDF: the report stage's renderer on the same HTML (the other tests skip WeasyPrint)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(render_pdf(html))
    pages = tmp_path / "pdf"
    pages.mkdir()
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(pages / "page")], check=True,
                   capture_output=True, timeout=60)
    pngs = sorted(pages.glob("page*.png"))
    assert len(pngs) >= 3
    assert all(non_blank(p)[0] for p in pngs[:3])
    shots = os.environ.get("DATAWARD_TEST_SCREENSHOTS")
    keep = Path(shots) if shots else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, keep / "report.png")
        for p in pngs:
            shutil.copy(p, keep / f"report-pdf-{p.name}")


def test_digest_lists_versions_with_decision_and_report_link(versions, cli):
    result = cli("report", "digest", "--since", "1h", "--json")
    assert result.returncode == 0, result.stderr
    d = json.loads(result.stdout)
    by_ref = {e["ref"]: e for e in d["versions"]}
    ref_trim, ref_q = versions["trim"], versions["quarantine"]
    assert by_ref[ref_trim]["outcome"] == "trim" and by_ref[ref_q]["outcome"] == "quarantine"
    assert by_ref[ref_q]["awaiting_review"] and d["awaiting_review"] == 2  # tiles-b@1 and tiles@2
    page = Path(d["html"]).read_text()
    links = re.findall(r'class="report-link" href="([^"]+)"', page)
    assert len(links) == len(d["versions"]) == 3
    assert all((Path(d["html"]).parent / link).is_file() for link in links)
    assert cli("report", "digest", "--since", "yesterday-ish").returncode == 2
    empty = json.loads(cli("report", "digest", "--since", "2020-01-01", "--until", "2020-01-02",
                           "--json").stdout)
    assert empty["versions"] == []


def test_report_words_for_people_no_server_paths_and_the_version(versions, cli):
    """No absolute path of this machine, no placeholder, and the Dataward version that wrote it."""
    from dataward.config import code_version
    from dataward.context import Context
    from dataward.stage_results import finished

    assert cli("--version").stdout.strip() == f"dataward {code_version()}"
    home = str(Path(versions["home"]).resolve())
    for key in ("trim", "changed", "quarantine"):
        out = finished(Context(), versions[key], "report")[2]
        html = Path(out["html"]).read_text()
        doc = json.loads(Path(out["json"]).read_text())
        assert home not in html and str(versions["root"]) not in html
        assert home not in json.dumps(doc["summary"]) + json.dumps(doc["compliance"])
        assert f"Written by Dataward {code_version()}" in html
        assert "(? .." not in html and "publisher -" not in html and "scaffold_suite()" not in html


def test_remedies_are_commands_and_findings_are_not_repeated():
    from checks.validation._outcome import SuiteNotFound
    from dataward.reports.words import for_people, unique_sentences

    msg = str(SuiteNotFound("tabular-wine", "/work/repo/expectations/gx/expectations"))
    roots = [(Path("/work/repo/expectations"), "expectations"), (Path("/work/repo"), "")]
    text = for_people({"why": [msg]}, roots=roots, ref="wine@1", kind="tabular-wine")["why"][0]
    assert "`dataward expectations init wine@1 --kind tabular-wine`" in text
    assert "/work/repo" not in text and "expectations/gx/expectations/tabular-wine.json" in text
    assert "https://example.org/a/b" in for_people("see https://example.org/a/b", roots=roots, ref="x@1",
                                                    kind=None)
    assert for_people("kept in /var/lib/other/x.parquet", roots=roots, ref="x@1", kind=None) \
        == "kept in .../other/x.parquet"
    assert unique_sentences("a; b; a; c") == "a; b; c"


def test_flagged_rows_table_and_csv_two_clicks_from_the_summary(versions):
    """Summary -> the flagged-rows table (one line per row, strongest first) -> flagged.csv."""
    import csv

    from dataward.context import Context
    from dataward.stage_results import finished

    out = finished(Context(), versions["trim"], "report")[2]
    doc = json.loads(Path(out["json"]).read_text())
    fr = doc["flagged_rows"]
    assert fr["n"] == 6 and fr["csv"] == "flagged.csv" and len(fr["shown"]) == 6
    strengths = [r["strength"] for r in fr["shown"]]
    assert strengths == sorted(strengths, reverse=True)
    assert all(r["rule"] and r["scores"] and r["label"] is not None for r in fr["shown"])
    assert "_all_flagged_rows" not in doc
    rows = list(csv.DictReader((Path(out["json"]).parent / fr["csv"]).open()))
    assert [int(r["row_id"]) for r in rows] == [r["row_id"] for r in fr["shown"]]
    assert rows[0]["rule"] and rows[0]["strongest_scores"]
    html = Path(out["html"]).read_text()
    assert 'href="#top-flagged"' in html.split('id="provenance"')[0]  # the summary links the table
    assert 'href="flagged.csv"' in html
    assert all(f'id="row-{r["row_id"]}"' in html for r in fr["shown"])
    assert 'class="row-card"' in html  # 4x4 pixel tiles are images: cards kept for them
    assert not [s for s in doc["figures"]["screens"] if s["name"] == "label_p_value"]


def test_large_version_report_reads_a_sample_and_counts_every_label(tmp_path, monkeypatch):
    """Above REPORT_FULL_ROWS the report reads a uniform sample and the flagged rows (up to
    MAX_FLAGGED_READ), never the whole table: class and flag counts stay exact, the
    distributions come from the sample, and each card shows its own row's content."""
    import csv

    import dataward.reports.rows as report_rows
    import dataward.stage_results as stage_results
    from dataward.context import Context
    from dataward.stage_results import finished

    monkeypatch.setattr(report_rows, "REPORT_FULL_ROWS", 1_000)
    monkeypatch.setattr(report_rows, "REPORT_SAMPLE_ROWS", 400)
    monkeypatch.setattr(report_rows, "MAX_FLAGGED_READ", 50)
    whole_reads = []
    real_read_table = stage_results.read_table

    def counting_read_table(ctx, version_id, role="data", **kw):
        if role == "data" and kw.get("columns") is None:
            whole_reads.append(version_id)
        return real_read_table(ctx, version_id, role, **kw)

    rng = np.random.default_rng(7)
    n = 3_000
    table = pa.table({**{f"p{i}": pa.array(rng.integers(0, 17, n)) for i in range(16)},
                      "label": pa.array(rng.integers(0, 3, n))})
    with isolated_home(tmp_path):
        from dataward.reports import document

        ref = make_version(tmp_path, name="big", table=table, n_flagged=60)
        out = finished(Context(), ref, "report")[2]
        doc = json.loads(Path(out["json"]).read_text())
        figs = doc["figures"]
        read = figs["sampled"]["flagged_read"]  # the first 50 flagged rows and those in the sample
        assert figs["sampled"] == {"rows_read": figs["sampled"]["rows_read"], "sample_rows": 400,
                                   "flagged_read": read, "flagged_total": 60, "n_rows": n, "seed": 0}
        assert 50 <= read < 60 and 400 <= figs["sampled"]["rows_read"] <= 450
        labels = np.asarray(table.column("label").to_pylist())
        scores = pq.read_table(_scores_path(ref)).to_pandas()
        flagged = scores["flagged"].to_numpy()
        assert figs["per_class"]["rows"] == {str(c): int((labels == c).sum()) for c in range(3)}
        assert figs["per_class"]["verdict_flagged"] == {str(c): int(((labels == c) & flagged).sum())
                                                        for c in range(3)}
        assert figs["verdict"] == {**figs["verdict"], "flagged": 60, "n_rows": n}
        for s in figs["screens"]:
            assert sum(s["histogram"]["counts"]) == 400  # the uniform sample, not the flagged extra
        fr = doc["flagged_rows"]
        assert fr["n"] == 60 and fr["in_csv"] == read
        rows = list(csv.DictReader((Path(out["json"]).parent / fr["csv"]).open()))
        assert len(rows) == read and all(flagged[int(r["row_id"])] for r in rows)
        assert set(np.flatnonzero(flagged)[:50]) <= {int(r["row_id"]) for r in rows}
        assert all(r["label"] == str(labels[int(r["row_id"])]) for r in rows)
        for card in figs["top_flagged"]:
            assert card["label"] == str(labels[card["row_id"]])
        assert doc["data_card"]["columns"]["sampled"]["sample_rows"] == 400
        html = Path(out["html"]).read_text()
        assert 'id="sampled-note"' in html and f"{read} of them" in html
        # and the report itself read no whole table: rebuild the document and count
        with monkeypatch.context() as mp:
            mp.setattr(stage_results, "read_table", counting_read_table)
            from dataward.governance.policy import load_policy

            document.build_document(Context(), ref, load_policy(Context().settings.decision_policy))
            # no screen result yet (screening failed, or not run): the data's sample alone
            from lineage.ingest import resolve

            with Context().session() as s:
                vid = resolve(s, ref).id
            alone = report_rows.report_rows(Context(), vid, None, "label")
        assert whole_reads == []
        assert alone.scores is None and alone.table.num_rows == 400 and alone.in_sample.all()
        assert alone.label_counts == {str(c): int((labels == c).sum()) for c in range(3)}


def _scores_path(ref: str) -> str:
    from dataward.context import Context
    from dataward.stage_results import finished

    return finished(Context(), ref, "screen")[2]["scores_path"]
