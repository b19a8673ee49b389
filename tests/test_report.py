"""Reports: the JSON has every figure, the HTML is self-contained and renders in a real
headless Chromium, the PDF converts to PNG pages; the digest links to each report.

The screens are expensive (minutes on two cores), so these tests record a synthetic
but realistic screen result (scores.parquet, summary.json, projection.npy) for a small
ingested table and run the real decide, report and publish stages on it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from browser import Browser, chromium_path, non_blank

SECTIONS = ["summary", "provenance", "validation", "screening", "per-class", "projection",
            "top-flagged", "decision", "compliance"]


@pytest.fixture
def db_url(tmp_path):
    """Reports do not depend on the database engine: SQLite only (fast)."""
    yield f"sqlite:///{tmp_path / 'lineage.db'}"
    from lineage.db import dispose_all

    dispose_all()


def make_version(tmp_path: Path, *, name: str = "tiles", n: int = 120, n_flagged: int = 6,
                 licence: str = "CC-BY-4.0", quarantine: bool = False, seed: int = 0,
                 monkeypatch=None) -> str:
    """Ingest a small 4x4-pixel table, record validation and screens, run decide and report.

    ``quarantine``: decide under a policy with ``max_trim_fraction: 0`` (any flag quarantines).
    Returns the version's ref.
    """
    from dataward.context import Context
    from dataward.stages.common import finished, record, version_dir, write_atomic
    from dataward.stages.decide import decide
    from dataward.stages.ingest import ingest
    from dataward.stages.report import report
    from lineage.models import STATUS_SCREENED, STATUS_VALIDATED

    rng = np.random.default_rng(seed)
    src = tmp_path / f"src-{name}-{seed}"
    src.mkdir(parents=True)
    labels = rng.integers(0, 3, n)
    cols = {f"p{i}": pa.array(rng.integers(0, 17, n)) for i in range(16)}
    cols["label"] = pa.array(labels)
    pq.write_table(pa.table(cols), src / "tiles.parquet")
    manifest = {"name": name, "owner": "data@example.com", "license": licence, "kind": "tabular-tiles",
                "label_column": "label", "description": "Synthetic 4x4 tiles for the report tests",
                "source": {"uri": "https://example.org/tiles", "publisher": "Example Lab"},
                "collection": {"method": "generated", "from": "2026-01-01", "to": "2026-01-02"}}
    (tmp_path / f"{name}-{seed}.yaml").write_text(yaml.safe_dump(manifest))
    if quarantine:
        policy = tmp_path / "strict-policy.yaml"
        policy.write_text("version: test-strict\nscreening: {max_trim_fraction: 0.0}\n")
        monkeypatch.setenv("DATAWARD_POLICY", str(policy))
    ctx = Context()
    ref = ingest(ctx, src, tmp_path / f"{name}-{seed}.yaml").ref
    version_id = finished(ctx, ref, "validate")[0]
    docs = ctx.settings.home / "data_docs" / "validations" / ref / "index.html"
    write_atomic(docs, b"<html><body><h1>Data Docs</h1></body></html>")
    record(ctx, version_id, "validate", {
        "success": True, "status": "passed", "kind": "tabular-tiles", "suite": "tabular-tiles",
        "failed": [], "n_expectations": 3, "n_rows": n, "data_docs": str(docs),
        "outcomes": [{"expectation_type": "expect_column_values_to_be_between", "column": f"p{i}",
                      "success": True} for i in range(2)]
        + [{"expectation_type": "expect_column_distinct_values_to_be_in_set", "column": "label",
            "success": True}]}, status="passed", new_status=STATUS_VALIDATED)
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
    summary = {"n_rows": n, "input_kind": "tabular", "feature_cols": [f"p{i}" for i in range(16)],
               "classes": [0, 1, 2], "class_counts": {str(c): int((labels == c).sum()) for c in range(3)},
               "screens": {"label_noise": {"parameters": {"method": "self_confidence"}, "flagged": n_flagged,
                                           "flagged_per_class": per_class},
                           "spectral": {"parameters": {"method": "centred"}, "flagged": n_flagged + 2,
                                        "flagged_per_class": per_class},
                           "influence": {"parameters": {"outlier_z": 3.5}, "flagged": 1,
                                         "flagged_per_class": {"0": 1}}},
               "combine": {"text": "label consistency against the reference-anchored probe",
                           "flagged": n_flagged, "flagged_per_class": per_class},
               "estimated_poison_rate": n_flagged / n}
    record(ctx, version_id, "screen", {
        "status": "done", "n_rows": n, "n_flagged": n_flagged, "flagged_fraction": n_flagged / n,
        "scores_path": str(out / "scores.parquet"), "projection_path": str(out / "projection.npy"),
        "used_reference": True, "summary": summary}, status="done", new_status=STATUS_SCREENED)
    decide(ctx, ref)
    report(ctx, ref, run_id=None)
    return ref


def test_report_json_has_every_figure_and_the_compliance_mapping(home, tmp_path):
    from dataward.context import Context
    from dataward.stages.report import report

    ref = make_version(tmp_path)
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
    assert doc["figures"]["projection"]["n_shown"] == 120
    top = doc["figures"]["top_flagged"]
    assert len(top) == 6 and all(r["image"]["height"] == 4 for r in top)
    assert sorted(doc["decision"]["excluded_row_ids"]) == sorted(r["row_id"] for r in top)
    refs = {(c["framework"].split(" ")[0], c["ref"]) for c in doc["compliance"]}
    for art in ["10(2)(a)", "10(2)(b)", "10(2)(c)", "10(2)(d)", "10(2)(e)", "10(2)(f)", "10(2)(g)",
                "10(2)(h)", "10(3)", "12", "15(5)"]:
        assert ("EU", f"Art. {art}") in refs
    assert {("NIST", r) for r in ("Availability poisoning", "Targeted poisoning", "Backdoor poisoning",
                                   "MAP 4.1", "MEASURE 2.7")} <= refs
    status = {c["ref"]: c["status"] for c in doc["compliance"]}
    assert status["Art. 15(5)"] == "evidenced" and status["Art. 10(2)(f)"] == "missing"
    assert all(c["why"] for c in doc["compliance"])
    assert doc["audit"]["intact"] and doc["code_version"]


def test_report_renders_in_chromium_and_pdf_converts_to_pages(home, tmp_path):
    if chromium_path() is None or shutil.which("pdftoppm") is None:
        pytest.skip("chromium and pdftoppm are needed (scripts/test-deps.sh installs them)")
    from dataward.context import Context
    from dataward.stages.common import finished

    ref = make_version(tmp_path, name="tiles-render")
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
        text = b.text()
        b.screenshot(shot)
    assert all(u.startswith(("file:", "data:")) for u in requested), requested
    assert set(SECTIONS) <= set(present)
    assert images and all(images)
    for phrase in ("Decision: trim", "Example Lab", "CC-BY-4.0", "Art. 15(5)", "MEASURE 2.7",
                   "Backdoor poisoning", "threshold", ref):
        assert phrase.lower() in text.lower(), phrase
    ok, ink = non_blank(shot)
    assert ok, f"screenshot is blank ({ink:.2%} ink)"
    pages = tmp_path / "pdf"
    pages.mkdir()
    subprocess.run(["pdftoppm", "-png", "-r", "40", out["pdf"], str(pages / "page")], check=True,
                   capture_output=True, timeout=60)
    pngs = sorted(pages.glob("page*.png"))
    assert len(pngs) >= 2
    assert all(non_blank(p)[0] for p in pngs[:2])


def test_digest_lists_versions_with_decision_and_report_link(home, tmp_path, cli, monkeypatch):
    ref_trim = make_version(tmp_path, name="tiles-a")
    ref_q = make_version(tmp_path, name="tiles-b", quarantine=True, monkeypatch=monkeypatch)
    result = cli("report", "digest", "--since", "1h", "--json")
    assert result.returncode == 0, result.stderr
    d = json.loads(result.stdout)
    by_ref = {e["ref"]: e for e in d["versions"]}
    assert by_ref[ref_trim]["outcome"] == "trim" and by_ref[ref_q]["outcome"] == "quarantine"
    assert by_ref[ref_q]["awaiting_review"] and d["awaiting_review"] == 1
    page = Path(d["html"]).read_text()
    links = re.findall(r'class="report-link" href="([^"]+)"', page)
    assert len(links) == 2
    assert all((Path(d["html"]).parent / link).is_file() for link in links)
    assert cli("report", "digest", "--since", "yesterday-ish").returncode == 2
    empty = json.loads(cli("report", "digest", "--since", "2020-01-01", "--until", "2020-01-02",
                           "--json").stdout)
    assert empty["versions"] == []
