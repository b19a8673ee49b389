"""Benchmark the batched validation engine: rows/s, wall time and peak RSS.

Generates a synthetic dataset (default 10M rows x 20 columns, Parquet, 1M-row row groups)
in a temporary folder, writes a 42-expectation suite into a temporary GX project, and
validates it with ``checks.validation.validate_files``. Generation runs in a child
process so the reported peak RSS is that of validation (plus the GX import) alone.

    python benchmarks/bench_validation.py            # 10M rows
    python benchmarks/bench_validation.py --quick    # 1M rows
    python benchmarks/bench_validation.py --rows 3000000 --batch-rows 500000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_FLOAT = 15
N_INT = 3


def generate(out_dir: Path, rows: int, chunk: int = 1_000_000) -> list[Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    path = out_dir / "data.parquet"
    writer = None
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        cols = {"id": np.arange(start, start + n, dtype=np.int64)}
        for i in range(N_FLOAT):
            cols[f"f{i}"] = rng.normal(0.0, 1.0, n)
        for i in range(N_INT):
            cols[f"i{i}"] = rng.integers(0, 1000, n)
        cols["label"] = rng.integers(0, 10, n)
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=chunk)
    writer.close()
    return [path]


def suite_expectations(columns: list[str]) -> list[dict]:
    def e(t, **kw):
        return {"type": t, "kwargs": kw}

    exps = [
        e("expect_table_columns_to_match_ordered_list", column_list=columns),
        e("expect_table_row_count_to_be_between", min_value=1, max_value=None),
        e("expect_column_values_to_be_unique", column="id"),
        e("expect_column_values_to_not_be_null", column="id"),
    ]
    for i in range(N_FLOAT):
        exps.append(e("expect_column_values_to_not_be_null", column=f"f{i}"))
        exps.append(e("expect_column_values_to_be_between", column=f"f{i}", min_value=-10, max_value=10))
    for i in range(N_INT):
        exps.append(e("expect_column_min_to_be_between", column=f"i{i}", min_value=0, max_value=10))
        exps.append(e("expect_column_max_to_be_between", column=f"i{i}", min_value=990, max_value=999))
    exps.append(e("expect_column_mean_to_be_between", column="f0", min_value=-0.05, max_value=0.05))
    exps.append(e("expect_column_stdev_to_be_between", column="f0", min_value=0.95, max_value=1.05))
    exps.append(e("expect_column_values_to_be_in_set", column="label", value_set=list(range(10))))
    exps.append(e("expect_column_distinct_values_to_equal_set", column="label", value_set=list(range(10))))
    return exps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--quick", action="store_true", help="1M rows")
    ap.add_argument("--batch-rows", type=int, default=1_000_000)
    ap.add_argument("--generate-only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    rows = 1_000_000 if args.quick else args.rows
    if args.generate_only:
        generate(args.generate_only, rows)
        return 0

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="dataward-bench-") as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--rows", str(rows), "--generate-only", tmp], check=True)
        gen_s = time.perf_counter() - t
        files = [tmp_path / "data.parquet"]

        t = time.perf_counter()
        import great_expectations  # noqa: F401  (timed apart: DAG parse never pays it)
        import_s = time.perf_counter() - t

        from checks.validation import validate_files
        from checks.validation._suites import open_file_context

        project = tmp_path / "project"
        open_file_context(project)
        columns = ["id"] + [f"f{i}" for i in range(N_FLOAT)] + [f"i{i}" for i in range(N_INT)] + ["label"]
        exps = suite_expectations(columns)
        suite_file = project / "gx" / "expectations" / "bench.json"
        suite_file.write_text(json.dumps({"name": "bench", "expectations": exps, "meta": {}}))

        t = time.perf_counter()
        out = validate_files(files, "bench", project_root=project, batch_rows=args.batch_rows)
        wall = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        print(f"rows:            {out.n_rows:,} x {len(columns)} columns, {len(exps)} expectations, "
              f"{out.n_batches} batches of {args.batch_rows:,}")
        print(f"data generation: {gen_s:.1f} s (child process, not counted)")
        print(f"GX import:       {import_s:.1f} s (not counted in wall time)")
        print(f"wall time:       {wall:.2f} s")
        print(f"rows/s:          {out.n_rows / wall:,.0f}")
        print(f"peak RSS:        {peak_mb:,.0f} MiB (whole process, GX import included)")
        print(f"success:         {out.success}; failed: "
              f"{[(o.expectation_type, o.column, o.observed_value) for o in out.failed]}")
        return 0 if out.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
