"""Pipeline-level scale benchmark: wall time and peak memory per stage (printed, not a test).

    nice -n 10 python benchmarks/bench_scale.py                 # 1M x 64, then 10M x 16
    nice -n 10 python benchmarks/bench_scale.py --case 1000000x64
    python benchmarks/bench_scale.py --case 20000x16            # a quick smoke run

For each case a labelled Parquet file (float32 features, an int label, a 2% planted
label flip) is generated in batches into a temporary folder (never committed), then
every stage runs in its own fresh process against one throwaway ``DATAWARD_HOME``
(SQLite lineage DB), so each stage's peak RSS is its own:

* ingest   hash, inspect (streamed), store, record;
* validate the Great Expectations suite (scaffolded from the generated file into the
           case's own GX project first, not timed), in batches of 1,000,000 rows;
* screen   read the version, the probe and the three screens (with
           ``DATAWARD_RAY_ADDRESS`` set: the sharded screen on that cluster);
* decide   the decision policy;
* report   the report (HTML, JSON, PDF): above 1,000,000 rows from a sample
           (``dataward/reports/rows.py``);
* publish  the trimmed snapshot (all flagged rows removed), streamed batch by batch.

Printed per stage: wall seconds and peak RSS (``ru_maxrss`` of that process).
``--stages`` picks a subset; ``--timeout`` bounds each stage (a stage that runs out
is reported as such, and the stages after it are skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_CASES = ("1000000x64", "10000000x16")
STAGES = ("ingest", "validate", "screen", "decide", "report", "publish")


def generate(path: Path, n_rows: int, n_features: int, *, n_classes: int = 10,
             flip: float = 0.02, seed: int = 0, batch_rows: int = 262_144) -> None:
    """A Parquet file of ``n_rows`` separable-ish classes, written batch by batch."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(n_classes, n_features)).astype(np.float32)
    names = [f"f{i:03d}" for i in range(n_features)]
    schema = pa.schema([*(pa.field(n, pa.float32()) for n in names), pa.field("label", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n_rows, batch_rows):
            m = min(batch_rows, n_rows - start)
            y = rng.integers(0, n_classes, size=m)
            x = centres[y] + rng.normal(size=(m, n_features)).astype(np.float32)
            flipped = rng.random(m) < flip
            y = np.where(flipped, (y + 1 + rng.integers(0, n_classes - 1, size=m)) % n_classes, y)
            cols = [pa.array(x[:, j]) for j in range(n_features)] + [pa.array(y.astype(np.int64))]
            writer.write_batch(pa.record_batch(cols, schema=schema))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one_stage(stage: str, data: Path, manifest: Path) -> dict:
    """Run one stage in this process (a child of the benchmark); returns its figures."""
    from dataward.context import Context

    ctx = Context()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = ru0.ru_utime + ru0.ru_stime
    t0 = time.perf_counter()
    extra: dict = {}
    if stage == "ingest":
        from dataward.stages.ingest import ingest

        r = ingest(ctx, data, manifest)
        extra = {"ref": r.ref, "rows": r.row_count}
    elif stage == "validate":
        from dataward.stages.validate import validate

        out = validate(ctx, "bench")
        extra = {"status": out["status"], "n_batches": out.get("n_batches"), "reason": out.get("reason")}
    elif stage == "decide":
        from dataward.stages.decide import record_decision

        out = record_decision(ctx, "bench")
        extra = {"outcome": out.get("outcome")}
    elif stage == "report":
        from dataward.stages.report import report

        out = report(ctx, "bench")
        doc = json.loads(Path(out["json"]).read_text())
        extra = {"outcome": out.get("outcome"), "sampled": bool((doc.get("figures") or {}).get("sampled"))}
    elif stage == "screen":
        from dataward.pipeline import run_stage

        out = run_stage(ctx, "screen", "bench")
        extra = {"status": out["status"], "n_flagged": out.get("n_flagged"),
                 "reason": out.get("reason")}
    elif stage == "publish":
        from dataward.artifacts import flagged_row_ids
        from dataward.stage_results import finished
        from dataward.stages.publish import publish

        _, _, screened = finished(ctx, "bench", "screen")
        excluded = flagged_row_ids(screened) if screened else []
        out = publish(ctx, "bench", decision={"outcome": "trim", "excluded_row_ids": excluded})
        extra = {"rows": out.get("rows"), "excluded": out.get("excluded_rows")}
    else:
        raise SystemExit(f"unknown stage {stage}")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"stage": stage, "wall_s": round(time.perf_counter() - t0, 2),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "cpu_s": round(ru.ru_utime + ru.ru_stime - cpu0, 1), **extra}


def run_case(case: str, stages: tuple[str, ...], timeout: float, workdir: Path) -> list[dict]:
    n_rows, n_features = (int(v) for v in case.lower().split("x"))
    folder = workdir / case
    (folder / "data").mkdir(parents=True)
    data = folder / "data" / "part-0.parquet"
    t0 = time.perf_counter()
    generate(data, n_rows, n_features)
    gen_s = time.perf_counter() - t0
    manifest = folder / "manifest.yaml"
    manifest.write_text("name: bench\nowner: bench@example.com\nlicense: MIT\nkind: bench-scale\n"
                        "source: {uri: 'https://example.com/bench'}\nlabel_column: label\n")
    if "validate" in stages:  # the case's own GX project, its suite drafted from the data
        from checks.validation import scaffold_suite

        scaffold_suite([data], "bench-scale", project_root=folder / "expectations", label_col="label")
    env = {**os.environ, "DATAWARD_HOME": str(folder / "home"), "DATAWARD_ACTOR": "bench",
           "DATAWARD_EXPECTATIONS": str(folder / "expectations")}
    env.pop("DATAWARD_DB_URL", None)
    print(f"\n== {n_rows:,} rows x {n_features} features: {data.stat().st_size / 2**20:,.0f} MiB "
          f"parquet, generated in {gen_s:.1f} s", flush=True)
    results = []
    for stage in stages:
        cmd = [sys.executable, __file__, "--_stage", stage, "--_data", str(data),
               "--_manifest", str(manifest)]
        t = time.perf_counter()
        try:
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            res = {"stage": stage, "wall_s": round(time.perf_counter() - t, 1), "peak_rss_mb": None,
                   "error": f"did not finish within {timeout:.0f} s"}
            print(_fmt(res), flush=True)
            results.append(res)
            break
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or not lines:
            tail = (p.stderr.strip().splitlines() or ["?"])[-1]
            res = {"stage": stage, "wall_s": round(time.perf_counter() - t, 1), "peak_rss_mb": None,
                   "error": f"exit {p.returncode}: {tail}"}
            print(_fmt(res), flush=True)
            results.append(res)
            break
        res = json.loads(lines[-1])
        print(_fmt(res), flush=True)
        results.append(res)
    return results


def _fmt(res: dict) -> str:
    rss = f"{res['peak_rss_mb']:>8,.0f} MB" if res.get("peak_rss_mb") is not None else "       - MB"
    rest = {k: v for k, v in res.items() if k not in ("stage", "wall_s", "peak_rss_mb")}
    return f"  {res['stage']:<8} {res['wall_s']:>9.1f} s  {rss}  {rest}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append", help="ROWSxFEATURES (repeatable); default 1Mx64 and 10Mx16")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per stage")
    ap.add_argument("--workdir", default=None, help="where to generate (default: a temp folder)")
    ap.add_argument("--_stage", help=argparse.SUPPRESS)
    ap.add_argument("--_data", help=argparse.SUPPRESS)
    ap.add_argument("--_manifest", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._stage:
        print(json.dumps(run_one_stage(args._stage, Path(args._data), Path(args._manifest))))
        return 0
    stages = tuple(s for s in args.stages.split(",") if s)
    summary = {}
    with tempfile.TemporaryDirectory(prefix="dataward-bench-", dir=args.workdir) as tmp:
        for case in args.case or DEFAULT_CASES:
            summary[case] = run_case(case, stages, args.timeout, Path(tmp))
            import shutil

            shutil.rmtree(Path(tmp) / case, ignore_errors=True)
    print("\n" + json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
