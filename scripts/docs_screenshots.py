"""Regenerate the report pictures in docs/reviewing.md from the demo, with headless Chromium.

    make demo && .venv/bin/python scripts/docs_screenshots.py        # writes docs/img/report-*.png

Each picture is one section of the demo's report (``DATAWARD_HOME/reports/digits-example-v1``)
as a reviewer's browser shows it, cut at MAX_HEIGHT pixels and reduced to a small palette so
every file stays well under 300 KB. Chromium: scripts/test-deps.sh installs it.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

#: (section id in report.html, file name, what the picture shows)
SECTIONS = (
    ("summary", "report-summary.png", "the verdict and every reason, with links to the sections"),
    ("data-card", "report-data-card.png", "the data card: declared facts, class balance, columns"),
    ("flagged-rows", "report-flagged-rows.png", "the flagged rows, one line each, strongest first"),
    ("compliance", "report-compliance.png", "the compliance mapping, with what would evidence each item"),
)
WIDTH, MAX_HEIGHT, MAX_BYTES = 1100, 900, 300_000


def shoot(report: Path, out_dir: Path) -> list[Path]:
    from browser import Browser
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with Browser(width=WIDTH, height=MAX_HEIGHT) as b:
        b.goto(report.resolve().as_uri())
        for section, name, _ in SECTIONS:
            box = b.evaluate(f"(() => {{ const r = document.getElementById('{section}').getBoundingClientRect();"
                             " return {x: r.left + window.scrollX, y: r.top + window.scrollY,"
                             " width: r.width, height: r.height}; })()")
            import base64

            clip = {"x": max(box["x"] - 8, 0), "y": max(box["y"] - 8, 0), "width": box["width"] + 16,
                    "height": min(box["height"] + 16, MAX_HEIGHT), "scale": 1}
            data = b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                     "clip": clip})["data"]
            img = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
            small = img.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
            target = out_dir / name
            small.save(target, format="PNG", optimize=True)
            if target.stat().st_size > MAX_BYTES:
                raise SystemExit(f"{target} is {target.stat().st_size} bytes, over {MAX_BYTES}: lower MAX_HEIGHT")
            written.append(target)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    home = Path(os.environ.get("DATAWARD_HOME", REPO / ".dataward"))
    ap.add_argument("--report", type=Path, default=home / "reports" / "digits-example-v1" / "report.html",
                    help="the demo's report.html (default: DATAWARD_HOME's, after make demo)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = ap.parse_args()
    if not args.report.is_file():
        raise SystemExit(f"{args.report} does not exist: run `make demo` first")
    for p in shoot(args.report, args.out):
        print(f"{p.relative_to(REPO) if p.is_relative_to(REPO) else p}: {p.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
