"""Regenerate the pictures in docs/reviewing.md from the demo, with headless Chromium.

    make demo && .venv/bin/python scripts/docs_screenshots.py   # docs/img/report-*.png, review-page.png

Each report picture is one section of the demo's report (``DATAWARD_HOME/reports/
digits-example-v1``) as a reviewer's browser shows it, cut at MAX_HEIGHT pixels and reduced
to a small palette so every file stays well under 300 KB.

``review-page.png`` is the Dataward review page (plugins/dataward_review.py) served by a
real ``airflow api-server`` on 127.0.0.1, signed in as an Op user of the simple auth
manager. The demo approves its version automatically (TRIM), so nothing would await a
reviewer: the demo's example is run again (``dataward run``) into a temporary
DATAWARD_HOME under a policy that holds any flagged version for review (as the tests do),
and the page shows that version, its sign-off form and its report. Nothing of the demo's
installation is changed; ``--no-review-page`` skips this part (about two minutes).
Chromium: scripts/test-deps.sh installs it.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))

#: (section id in report.html, file name, what the picture shows)
SECTIONS = (
    ("summary", "report-summary.png", "the verdict and every reason, with links to the sections"),
    ("data-card", "report-data-card.png", "the data card: declared facts, class balance, columns"),
    ("flagged-rows", "report-flagged-rows.png", "the flagged rows, one line each, strongest first"),
    ("compliance", "report-compliance.png", "the compliance mapping, with what would evidence each item"),
)
WIDTH, MAX_HEIGHT, MAX_BYTES = 1100, 900, 300_000
#: the review page: file name, window size, and the byte limit of its (larger) picture
REVIEW_PNG, REVIEW_SIZE, REVIEW_MAX_BYTES = "review-page.png", (1100, 1060), 150_000
REVIEWER, REVIEWER_PW = "reviewer", "docs-screenshots-pw"


def shoot(report: Path, out_dir: Path) -> list[Path]:
    from browser import Browser

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
            written.append(save_small(base64.b64decode(data), out_dir / name, MAX_BYTES))
    return written


def save_small(png: bytes, target: Path, max_bytes: int) -> Path:
    """``png`` reduced to a 64-colour palette; refused (SystemExit) over ``max_bytes``."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(target, format="PNG", optimize=True)
    if target.stat().st_size > max_bytes:
        raise SystemExit(f"{target} is {target.stat().st_size} bytes, over {max_bytes}: lower the height")
    return target


def _awaiting_version(example: Path, home: Path, env: dict[str, str]) -> str:
    """Run the demo's example into ``home`` under a policy that quarantines any flagged
    version; returns the version's ref (it awaits a reviewer)."""
    import json
    import subprocess

    policy = home.parent / "hold-for-review.yaml"
    policy.write_text("version: docs-hold-for-review\nscreening: {max_trim_fraction: 0.0}\n")
    r = subprocess.run([str(BIN / "dataward"), "run", str(example / "train"), "--manifest",
                        str(example / "manifest.yaml"), "--json", "--quiet"],
                       env={**env, "DATAWARD_POLICY": str(policy)}, capture_output=True, text=True, timeout=1200)
    if r.returncode not in (0, 1):
        raise SystemExit(f"dataward run failed ({r.returncode}): {r.stderr[-2000:]}")
    summary = json.loads(r.stdout)
    if summary["outcome"] != "quarantine":
        raise SystemExit(f"{summary['ref']} was decided {summary['outcome']}, not held for review")
    return summary["ref"]


def shoot_review_page(demo_home: Path, out_dir: Path) -> Path:
    """The review page of the demo's dataset, awaiting review, as an Op user sees it."""
    import base64
    import json
    import shutil
    import subprocess
    import tempfile
    import time
    import urllib.parse
    import urllib.request

    from airflow_harness import free_port, wait_for_api_server
    from browser import Browser

    example = demo_home / "examples" / "digits"
    if not (example / "manifest.yaml").is_file():
        raise SystemExit(f"{example} does not exist: run `make demo` first")
    tmp = Path(tempfile.mkdtemp(prefix="dw-docs-review-"))
    home, af_home, no_dags = tmp / "home", tmp / "airflow", tmp / "no-dags"
    for d in (home, af_home, no_dags):
        d.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW__", "DATAWARD_", "OPENLINEAGE_"))}
    env.update({"DATAWARD_HOME": str(home), "DATAWARD_DB_URL": f"sqlite:///{home / 'lineage.db'}",
                "DATAWARD_ACTOR": "importer", "HF_HUB_OFFLINE": "1",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    af_env = {**env, "AIRFLOW_HOME": str(af_home),
              "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
              "AIRFLOW__CORE__DAGS_FOLDER": str(no_dags),
              "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
              "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{af_home / 'airflow.db'}",
              "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
              "AIRFLOW__API__WORKERS": "1",
              "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{REVIEWER}:op",
              "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    (af_home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({REVIEWER: REVIEWER_PW}))
    demo_db = Path(os.environ.get("AIRFLOW_HOME", demo_home / "airflow")) / "airflow.db"
    if demo_db.is_file():  # the demo migrated one already: a copy saves a minute
        shutil.copy(demo_db, af_home / "airflow.db")
    else:
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=af_env, check=True,
                       capture_output=True, timeout=600)
    log_path = tmp / "api-server.log"
    proc = None
    try:
        with open(log_path, "w") as log:
            proc = subprocess.Popen([str(BIN / "airflow"), "api-server", "--host", "127.0.0.1",
                                     "--port", str(port)], env=af_env, stdout=log, stderr=subprocess.STDOUT)
            ref = _awaiting_version(example, home, env)  # while the server starts
            try:
                wait_for_api_server(base, proc, log_path, timeout=180)
            except RuntimeError as exc:
                raise SystemExit(str(exc)) from None
            req = urllib.request.Request(f"{base}/auth/token", method="POST", headers={
                "Content-Type": "application/json"}, data=json.dumps(
                {"username": REVIEWER, "password": REVIEWER_PW}).encode())
            with urllib.request.urlopen(req, timeout=30) as r:
                token = json.load(r)["access_token"]
            width, height = REVIEW_SIZE
            with Browser(width=width, height=height) as b:
                b.set_cookie("_token", token, base)
                b.goto(f"{base}/dataward/review/{urllib.parse.quote(ref)}")
                if b.evaluate("document.querySelector('form.signoff') === null"):
                    raise SystemExit(f"the review page of {ref} shows no sign-off form:\n{b.text()[:2000]}")
                b.evaluate("document.querySelector('textarea[name=reason]').value ="
                           " 'Checked every flagged row in section 5 against its card'")
                time.sleep(1.5)  # the report in the frame lays out its plots
                data = b.send("Page.captureScreenshot", {"format": "png"})["data"]
            return save_small(base64.b64decode(data), out_dir / REVIEW_PNG, REVIEW_MAX_BYTES)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    home = Path(os.environ.get("DATAWARD_HOME", REPO / ".dataward"))
    ap.add_argument("--report", type=Path, default=home / "reports" / "digits-example-v1" / "report.html",
                    help="the demo's report.html (default: DATAWARD_HOME's, after make demo)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    ap.add_argument("--no-review-page", action="store_true",
                    help="only the report's sections, not the Airflow review page")
    args = ap.parse_args()
    if not args.report.is_file():
        raise SystemExit(f"{args.report} does not exist: run `make demo` first")
    written = shoot(args.report, args.out)
    if not args.no_review_page:
        written.append(shoot_review_page(home, args.out))
    for p in written:
        print(f"{p.relative_to(REPO) if p.is_relative_to(REPO) else p}: {p.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
