"""Screen stage: the poisoning and label-noise screens over a stored version.

Artefacts (under ``DATAWARD_HOME/runs/NAME/VERSION/screen/``): ``scores.parquet``
(the per-row contract of ``dataward screen``), ``summary.json`` and
``projection.npy`` (a 2-D PCA of the probe's representations, for the report).
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

from dataward.context import Context
from dataward.stages.common import finished, read_table, record, version_dir, write_atomic
from lineage.models import STATUS_QUARANTINED, STATUS_SCREENED, CheckResult, DatasetVersion


def screen(ctx: Context, ref: str, *, run_id: str | None = None) -> dict[str, Any]:
    """Run the screens on ``ref``; idempotent. Returns the recorded output.

    Output keys: ``status`` (done | error), ``n_rows``, ``n_flagged``, ``flagged_fraction``,
    ``scores_path``, ``summary`` (the screens' own summary) or ``reason`` on error.
    """
    version_id, ref, done = finished(ctx, ref, "screen")
    if done is not None:
        return done
    with ctx.session() as s:
        label_col = s.get(DatasetVersion, version_id).label_column
    out_dir = version_dir(ctx, ref) / "screen"
    started = time.perf_counter()
    output = _run(ctx, version_id, label_col, out_dir)
    output["elapsed_s"] = round(time.perf_counter() - started, 3)
    ok = output["status"] == "done"

    def add_check(s, v):
        s.add(CheckResult(version_id=v.id, run_id=run_id, check="screening", success=ok,
                          summary=(f"{output['n_flagged']} of {output['n_rows']} rows flagged" if ok
                                   else output["reason"]),
                          details={k: output[k] for k in output if k != "summary"}))

    return record(ctx, version_id, "screen", output, status=output["status"], run_id=run_id,
                  new_status=STATUS_SCREENED if ok else STATUS_QUARANTINED,
                  reason=None if ok else output["reason"], extra=add_check)


def _run(ctx: Context, version_id: int, label_col: str | None, out_dir) -> dict[str, Any]:
    from screening import ScreeningInputError, screen_table

    if not label_col:
        return {"status": "error", "reason": "the manifest names no label_column, so the "
                "label-consistency screens cannot run"}
    data = read_table(ctx, version_id)
    reference = read_table(ctx, version_id, role="reference")
    try:
        result = screen_table(data, label_col=label_col, reference=reference)
    except ScreeningInputError as exc:
        return {"status": "error", "reason": f"screening refused the data: {exc}"}
    write_results(result, out_dir)
    n = len(result.scores)
    n_flagged = int(result.scores["flagged"].sum())
    return {"status": "done", "n_rows": n, "n_flagged": n_flagged,
            "flagged_fraction": n_flagged / n if n else 0.0,
            "scores_path": str(out_dir / "scores.parquet"),
            "projection_path": str(out_dir / "projection.npy"),
            "used_reference": reference is not None, "summary": result.summary}


def write_results(result, out_dir) -> None:
    """Write scores.parquet, summary.json and projection.npy, each atomically."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(result.scores, preserve_index=False), buf)
    write_atomic(out_dir / "scores.parquet", buf.getvalue())
    write_atomic(out_dir / "summary.json", json.dumps(result.summary, indent=2, default=str).encode())
    reps = getattr(result, "representations", None)
    if reps is not None and len(reps):
        proj = pca_2d(np.asarray(reps, dtype=np.float32))
        buf = io.BytesIO()
        np.save(buf, proj)
        write_atomic(out_dir / "projection.npy", buf.getvalue())


def pca_2d(x):
    """Project rows onto their top two principal directions (via the d x d covariance)."""
    import numpy as np

    x = x - x.mean(axis=0, keepdims=True)
    if x.shape[1] <= 2:
        return np.pad(x, ((0, 0), (0, 2 - x.shape[1]))).astype(np.float32)
    cov = (x.T @ x) / max(len(x) - 1, 1)
    _, vecs = np.linalg.eigh(cov)
    return (x @ vecs[:, -2:][:, ::-1]).astype(np.float32)


def flagged_row_ids(output: dict[str, Any]) -> list[int]:
    """The row ids the screens flagged, read back from the recorded scores file."""
    import pyarrow.parquet as pq

    if output.get("status") != "done":
        return []
    t = pq.read_table(output["scores_path"], columns=["row_id", "flagged"])
    ids = t.column("row_id").to_numpy()
    return [int(i) for i in ids[t.column("flagged").to_numpy(zero_copy_only=False)]]
