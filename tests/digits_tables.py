"""scikit-learn's digits as pipeline input for the tests that run `dataward run` on it with
their own decision policy (the trust chain, relabelling)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def use_policy(tmp_path, monkeypatch, text: str) -> None:
    """Point DATAWARD_POLICY at a policy file holding ``text``; reports skip the PDF."""
    monkeypatch.setattr("dataward.stages.report.render_pdf", lambda html: b"%PDF-1.7 not rendered\n")
    (tmp_path / "policy.yaml").write_text(text)
    monkeypatch.setenv("DATAWARD_POLICY", str(tmp_path / "policy.yaml"))


def shuffled_digits(seed: int):
    """(x, y, order, rng): the 1,797 digits as int64, a permutation of them and the rng
    that drew it (for the poison the test plants next)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    return d.data.astype(np.int64), d.target.astype(np.int64), rng.permutation(len(d.target)), rng


def digits_table(x, y) -> pa.Table:
    """Columns p0..p63 and ``label``: the layout the ``tabular-digits`` suite expects."""
    return pa.table({**{f"p{i}": pa.array(x[:, i]) for i in range(64)}, "label": pa.array(y)})
