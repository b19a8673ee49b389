"""The screen stage's files: where they live, how they are written and read back.

A screen writes, under its output folder (``DATAWARD_HOME/runs/NAME/VERSION/screen/`` for
a recorded version, ``--out DIR`` for ``dataward screen``):

``scores.parquet``
    one row per input row, in input order: ``row_id`` (0..N-1), one column per screen
    (higher = more suspicious) and ``flagged`` (the per-row verdict);
``summary.json``
    the screens' own summary;
``projection.npy``
    a (N, 2) float32 array: the probe's representations projected onto their first two
    principal components, for the report's scatter plot;
``canary.parquet``
    the planted canary rows' scores (only when canaries were planted).

Every write is atomic (a reader never sees half a file). The decide stage, the version
diff, the report and the CLI read these files through this module only.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from dataward.stage_results import write_atomic

SCORES = "scores.parquet"
SUMMARY = "summary.json"
PROJECTION = "projection.npy"
CANARY = "canary.parquet"


def write_results(result, out_dir: str | Path) -> None:
    """Write ``scores.parquet``, ``summary.json`` and ``projection.npy`` of a ScreenResult
    (callers first add the verdict's rule in words, ``combine.text``:
    :func:`dataward.reports.verdict_text.with_rule_text`)."""
    import numpy as np

    out_dir = Path(out_dir)
    write_parquet(result.scores, out_dir / SCORES)
    write_summary(result.summary, out_dir)
    reps = getattr(result, "representations", None)
    if reps is not None and len(reps):
        proj = projection_2d(np.asarray(reps, dtype=np.float32))
        buf = io.BytesIO()
        np.save(buf, proj)
        write_atomic(out_dir / PROJECTION, buf.getvalue())


def write_summary(summary: dict, out_dir: str | Path) -> None:
    """``summary.json`` of a screen, atomically."""
    write_atomic(Path(out_dir) / SUMMARY, json.dumps(summary, indent=2, default=str).encode())


def write_parquet(frame, path: Path) -> None:
    """A pandas DataFrame as a Parquet file (no index column), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf)
    write_atomic(path, buf.getvalue())


def projection_2d(x):
    """(N, 2) float32: rows of ``x`` (N, d) on their first two principal components.

    Centred, not scaled. With ``d <= 2`` the centred columns themselves (zero-padded to
    two). A principal component is only defined up to sign; each axis is oriented so
    that the component's largest-magnitude loading is positive, so the same data always
    gives the same picture.
    """
    import numpy as np

    x = np.asarray(x)
    if x.shape[1] <= 2:
        x = x - x.mean(axis=0, keepdims=True)
        return np.pad(x, ((0, 0), (0, 2 - x.shape[1]))).astype(np.float32)
    if len(x) < 2:  # one row: it is the mean, at the origin
        return np.zeros((len(x), 2), dtype=np.float32)
    import warnings

    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, svd_solver="covariance_eigh")
    with warnings.catch_warnings():  # constant data: a 0/0 explained-variance ratio, unused here
        warnings.simplefilter("ignore", RuntimeWarning)
        proj = pca.fit_transform(x)
    comps = pca.components_
    signs = np.sign(comps[np.arange(2), np.argmax(np.abs(comps), axis=1)])
    signs[signs == 0] = 1
    return (proj * signs).astype(np.float32)


def read_scores(path: str | Path, columns: list[str] | None = None):
    """``scores.parquet`` as a pandas DataFrame (only ``columns`` when given)."""
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns).to_pandas()


def read_projection(path: str | Path | None, row_ids=None):
    """The (N, 2) projection, or None when there is none (no representations, no file);
    with ``row_ids`` only those rows (that exist), read without loading the whole file."""
    import numpy as np

    if not path or not Path(path).is_file():
        return None
    if row_ids is None:
        return np.load(path)
    proj = np.load(path, mmap_mode="r")
    ids = np.asarray(row_ids, dtype=np.int64)
    return np.asarray(proj[ids[ids < len(proj)]])


def suggested_labels(output: dict[str, Any]) -> dict[int, str]:
    """Row id -> the label cleanlab suggests, for the flagged rows the verdict holds to be
    label noise only (the scores file's ``suggested_label`` column; {} when it has none)."""
    import pyarrow.parquet as pq

    if output.get("status") != "done":
        return {}
    path = output["scores_path"]
    if "suggested_label" not in pq.read_schema(path).names:
        return {}
    t = pq.read_table(path, columns=["row_id", "suggested_label"])
    ids, labels = t.column("row_id").to_pylist(), t.column("suggested_label").to_pylist()
    return {int(i): str(lab) for i, lab in zip(ids, labels) if lab is not None}


def flagged_row_ids(output: dict[str, Any]) -> list[int]:
    """The row ids the screens flagged, read back from the recorded scores file.

    ``output``: the screen stage's recorded output; [] unless its status is ``done``.
    """
    import pyarrow.parquet as pq

    if output.get("status") != "done":
        return []
    t = pq.read_table(output["scores_path"], columns=["row_id", "flagged"])
    ids = t.column("row_id").to_numpy()
    return [int(i) for i in ids[t.column("flagged").to_numpy(zero_copy_only=False)]]
