"""The example downstream consumer: train a model on one approved snapshot."""

from __future__ import annotations

from typing import Any


def train_on_snapshot(extra: dict[str, Any]) -> dict[str, Any]:
    """Fit a logistic regression on the snapshot's numeric columns; report its accuracy."""
    import numpy as np
    import pyarrow.parquet as pq
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from dataward.context import Context
    from lineage.ingest import resolve

    ctx = Context()
    with ctx.session() as s:
        label = resolve(s, extra["ref"]).label_column
    table = pq.read_table(extra["path"])
    features = [c for c in table.column_names if c != label]
    x = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in features]).astype(float)
    y = table.column(label).to_numpy(zero_copy_only=False)
    acc = cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=3).mean()
    print(f"trained on {extra['ref']}: {len(y)} rows, 3-fold accuracy {acc:.3f}")
    return {"snapshot": extra["ref"], "rows": int(len(y)), "cv_accuracy": float(acc)}
