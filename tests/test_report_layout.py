"""The PDF report never clips and needs no host fonts.

Each report is rendered to PDF in a child process whose fontconfig knows no font at all
(``FONTCONFIG_FILE`` names a config whose only ``<dir>`` is empty: a slim container).
Before the fonts were bundled, Pango crashed there (exit 139). Every word's box, from
poppler's ``pdftotext -bbox``, must then lie inside the page's printable area.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from test_report import isolated_home, make_version, trimmed_then_changed

MM = 72 / 25.4
#: @page margins of the report (top, right/left, bottom), in points; see _base.css.j2
MARGIN_TOP, MARGIN_SIDE, MARGIN_BOTTOM = 14 * MM, 12 * MM, 16 * MM
#: text in the page's margin boxes (page numbers) must still keep this far from the edge
EDGE = 5 * MM
SLACK = 1.0  # points: rounding in the boxes

_RENDER = """
import sys
from dataward.reports import render_pdf
html = open(sys.argv[1], encoding="utf-8").read()
open(sys.argv[2], "wb").write(render_pdf(html))
"""


def empty_fontconfig(folder: Path) -> Path:
    """A fontconfig file whose only font folder is empty."""
    (folder / "no-fonts").mkdir(parents=True, exist_ok=True)
    conf = folder / "fonts.conf"
    conf.write_text('<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
                    f'<fontconfig><dir>{folder / "no-fonts"}</dir>'
                    f'<cachedir>{folder / "fc-cache"}</cachedir></fontconfig>\n')
    return conf


def pdf_without_fonts(html: Path, pdf: Path, conf: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "FONTCONFIG_FILE": str(conf)}
    return subprocess.run([sys.executable, "-c", _RENDER, str(html), str(pdf)], env=env,
                          capture_output=True, text=True, timeout=300)


def words_outside(pdf: Path) -> list[str]:
    """Every word whose box leaves the printable area, as ``page N: 'word' (box)``."""
    out = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    bad = []
    pages = re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', out, re.S)
    assert pages, "pdftotext found no page"
    for n, (w, h, body) in enumerate(pages, 1):
        w, h = float(w), float(h)
        for x0, y0, x1, y1, word in re.findall(
                r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" yMax="([-\d.]+)">(.*?)</word>', body):
            x0, y0, x1, y1 = map(float, (x0, y0, x1, y1))
            in_margin_box = y0 >= h - MARGIN_BOTTOM - SLACK or y1 <= MARGIN_TOP + SLACK
            left, right = (EDGE, w - EDGE) if in_margin_box else (MARGIN_SIDE - SLACK, w - MARGIN_SIDE + SLACK)
            if x0 < left or x1 > right or y0 < EDGE or y1 > h - EDGE:
                bad.append(f"page {n}: {word!r} ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) of {w:.0f}x{h:.0f}")
    return bad


def wide_table(n: int = 90, seed: int = 3) -> pa.Table:
    """Pixel tiles plus the columns that used to run off the page: long names without a
    break, long values, a categorical column."""
    rng = np.random.default_rng(seed)
    cols = {f"p{i}": pa.array(rng.integers(0, 17, n)) for i in range(16)}
    cols["label"] = pa.array(rng.integers(0, 3, n))
    cols["measurement_of_the_sensor_on_the_north_side_in_millivolts_averaged"] = pa.array(rng.normal(0, 1, n))
    cols["free_text_comment"] = pa.array(["https://example.org/a/very/long/path/without/any/space/"
                                          + "x" * 60 + f"/{i}" for i in range(n)])
    cols["region"] = pa.array(rng.choice(["north", "south", "hill", "valley"], n))
    return pa.table(cols)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The report variants: trimmed, quarantined with every check finding something,
    and a wide table."""
    root = tmp_path_factory.mktemp("layout")
    with isolated_home(root) as h:
        trim, changed = trimmed_then_changed(root)
        wide = make_version(root, name="wide-tiles", table=wide_table(), quarantine=True, canary_recall=None)
        yield {ref: h / "reports" / ref.replace("@", "-v") / "report.html" for ref in (trim, changed, wide)}


def test_reports_render_without_host_fonts_and_nothing_leaves_the_page(reports, tmp_path):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is needed (poppler-utils; scripts/test-deps.sh installs it)")
    conf = empty_fontconfig(tmp_path)
    for ref, html in reports.items():
        pdf = tmp_path / f"{ref}.pdf"
        done = pdf_without_fonts(html, pdf, conf)
        assert done.returncode == 0, f"{ref}: exit {done.returncode}: {done.stderr[-2000:]}"
        fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
        assert "Dataward-Sans" in fonts, fonts  # the bundled font, not whatever the host has
        bad = words_outside(pdf)
        assert not bad, f"{ref}: {len(bad)} word(s) outside the printable area: " + "; ".join(bad[:10])


def test_bundled_fonts_ship_with_their_licence():
    from importlib.resources import files

    from dataward.reports.render import FONT_FILES

    folder = files("dataward") / "templates" / "fonts"
    assert (folder / "LICENSE.txt").read_text().count("Bitstream") >= 2
    total = sum((folder / name).stat().st_size for name in {f[2] for f in FONT_FILES})
    assert total < 600_000  # subset: the wheel stays small
