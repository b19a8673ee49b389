"""The whole pipeline (`dataward run`) over ordinary datasets, as users bring them.

Every case of ``tests/corpus.py`` (tables shipped in scikit-learn with string, boolean
and integer labels, a continuous target, a mixed CSV with a BOM, categories, dates,
missing values and an identifier; a JSONL text file; a folder of PNG files per class; a
Parquet column of PNG bytes) runs twice, the way a user meets Dataward:

1. first import: no trusted reference and no suite for its kind;
2. ``dataward expectations init`` scaffolds the kind's suite from that version, then
   the import runs again with the suite and a trusted reference.

Each run exits 0 or 1 (never 2 or 3), writes its report as HTML, PDF and JSON, the
report lists every column of the table with its encoding, and the HTML renders in
headless Chromium.
"""

from __future__ import annotations

import json
from pathlib import Path

import corpus
import pytest
from browser import Browser, chromium_path, non_blank
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    return {c.name: c for c in corpus.build_all(out)}, out


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One installation for the whole corpus (as on a team's machine)."""
    root = tmp_path_factory.mktemp("corpus-home")
    (root / "expectations").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATAWARD_HOME", str(root / "home"))
        mp.setenv("DATAWARD_EXPECTATIONS", str(root / "expectations"))
        mp.delenv("DATAWARD_DB_URL", raising=False)
        yield root
    from lineage.db import dispose_all

    dispose_all()


def _run(*args: str) -> tuple[int, str]:
    from dataward.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _table_columns(path: Path) -> list[str]:
    """The columns of the table the pipeline stores for ``path`` (an image folder: its index)."""
    from dataward.commands.screen import read_data

    return list(read_data(path, "data").column_names) if path.is_file() else None


def _check_report(report_json: Path, case: corpus.Case, table_cols: list[str] | None) -> dict:
    doc = json.loads(report_json.read_text())
    html, pdf = report_json.with_suffix(".html"), report_json.with_suffix(".pdf")
    assert html.stat().st_size > 10_000 and pdf.read_bytes()[:4] == b"%PDF"
    scr = doc["screening"]
    if case.regression:
        assert scr["status"] == "not_applicable" and "continuous target" in scr["reason"]
        return doc
    assert scr["status"] == "done", scr.get("reason")
    listed = [c["name"] for c in doc["figures"]["columns"]["rows"]]
    expected = table_cols if table_cols is not None else listed
    assert sorted(listed) == sorted(c for c in expected if c != case.label)
    assert set(case.columns) <= set(listed)
    assert all(c["reason"] for c in doc["figures"]["columns"]["rows"])
    return doc


@pytest.mark.parametrize("name", [b.__name__ for b in corpus.BUILDERS])
def test_first_import_then_suite_and_reference(name, cases, home):
    all_cases, out = cases
    key = {"breast_cancer": "breast-cancer", "text_jsonl": "text", "image_folder": "image-folder",
           "image_bytes": "image-bytes"}.get(name, name)
    case = all_cases[key]
    folder = out / key

    # 1. first import: no reference, no suite
    m1 = corpus._manifest(case, folder, reference=False, kind=None)
    code, text = _run("run", str(case.data), "--manifest", str(m1), "--json", "--quiet")
    assert code in (0, 1), text
    summary = json.loads(text[text.index("{"):])
    assert summary["validation"] == "missing_suite"
    doc = _check_report(Path(summary["report_json"]), case, _table_columns(case.data))
    if not case.regression:
        kinds = {c["name"]: c["encoding"] for c in doc["figures"]["columns"]["rows"]}
        if key in ("image-folder", "image-bytes"):
            assert kinds["image"] == "image" and doc["screening"]["summary"]["input_kind"] == "image"
        if key == "text":
            assert kinds["text"] == "text"
        if key == "mixed":
            assert kinds["clinic"] == "onehot" and kinds["patient_id"] == "excluded"
            assert kinds["visit"] == "datetime" and kinds["smoker"] == "boolean"
            assert kinds["site_version"] == "excluded"

    # 2. scaffold the kind's suite from that version, then import with suite and reference
    code, text = _run("expectations", "init", summary["ref"], "--kind", case.kind)
    assert code == 0, text
    m2 = corpus._manifest(case, folder, reference=True, kind=case.kind)
    code, text = _run("run", str(case.data), "--manifest", str(m2), "--json", "--quiet")
    assert code in (0, 1), text
    summary2 = json.loads(text[text.index("{"):])
    assert summary2["ref"] != summary["ref"]
    assert summary2["validation"] in ("passed", "failed"), summary2
    doc2 = _check_report(Path(summary2["report_json"]), case, _table_columns(case.data))
    if not case.regression and case.reference is not None:
        assert doc2["screening"]["used_reference"] is True


def test_reports_render_in_chromium(cases, home, tmp_path):
    """Every report the corpus wrote opens in headless Chromium with its images drawn."""
    if chromium_path() is None:
        pytest.skip("chromium is needed (scripts/test-deps.sh installs it)")
    reports = sorted((home / "home" / "reports").glob("*/report.html"))
    if not reports:
        pytest.skip("the corpus runs above wrote no report (they failed)")
    with Browser(width=1280, height=900) as b:
        for html in reports:
            b.goto(html.as_uri())
            assert b.evaluate("document.getElementById('screening') !== null"), html
            images = b.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
            assert all(images), html
            rows = b.evaluate("document.querySelectorAll('table.columns tr').length")
            text = b.text()
            assert "Decision" in text, html
            if "not applicable" not in text:
                assert rows > 1, html
        shot = tmp_path / "last.png"
        b.screenshot(shot)
    assert non_blank(shot)[0]


def test_report_pdfs_never_clip_without_host_fonts(cases, home, tmp_path):
    """Every report the corpus wrote, rendered to PDF where fontconfig knows no font (a slim
    container), keeps every word inside the page's printable area."""
    import shutil

    from test_report_layout import empty_fontconfig, pdf_without_fonts, words_outside

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is needed (poppler-utils; scripts/test-deps.sh installs it)")
    reports = sorted((home / "home" / "reports").glob("*/report.html"))
    if not reports:
        pytest.skip("the corpus runs above wrote no report (they failed)")
    conf = empty_fontconfig(tmp_path)
    for html in reports:
        pdf = tmp_path / f"{html.parent.name}.pdf"
        done = pdf_without_fonts(html, pdf, conf)
        assert done.returncode == 0, f"{html.parent.name}: exit {done.returncode}: {done.stderr[-1500:]}"
        bad = words_outside(pdf)
        assert not bad, f"{html.parent.name}: {len(bad)} word(s) outside the page: " + "; ".join(bad[:8])
