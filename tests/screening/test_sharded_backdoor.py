"""The reference-free backdoor screen on the sharded path: found on the sample, its
decision applied as a rule to every row (screening/screens/backdoor.py ``BackdoorRule``,
screening/sharded.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from screening import ScreenConfig
from screening.screens.backdoor import detect
from screening.screens.base import ProbeOutputs
from screening.sharded import screen_shards


def _outputs(rng, n: int, *, poisoned: int, with_reference: bool, k: int = 10, d: int = 16):
    """Representations of ``k`` Gaussian classes; ``poisoned`` rows of class 3 moved into
    one tight cluster far from it, with STRIP scores that keep their label."""
    y = rng.integers(0, k, n)
    centres = rng.normal(scale=3, size=(k, d))
    R = (centres[y] + rng.normal(size=(n, d))).astype(np.float32)
    strip = rng.normal(-1, 0.3, n)
    pois = np.flatnonzero(y == 3)[:poisoned]
    R[pois] = centres[3] + np.r_[6, 6, np.zeros(d - 2)] + rng.normal(scale=0.3, size=(len(pois), d))
    strip[pois] = rng.normal(-0.1, 0.1, len(pois))
    ref = y_ref = None
    if with_reference:
        y_ref = rng.integers(0, k, 400)
        ref = (centres[y_ref] + rng.normal(size=(400, d))).astype(np.float32)
    probs = np.full((n, k), 1 / k, np.float32)
    out = ProbeOutputs(labels=y, classes=list(range(k)), representations=R, pred_probs=probs, label_probs=probs,
                       label_probs_source="cross-validated", influence=np.zeros(n), influence_mode="self-influence",
                       n_checkpoints=1, strip=strip, reference_representations=ref, reference_labels=y_ref)
    return out, pois, centres


@pytest.mark.parametrize("with_reference", [False, True])
def test_the_rule_gives_the_screens_own_scores_and_flags_on_its_rows(with_reference):
    rng = np.random.default_rng(0)
    outputs, pois, centres = _outputs(rng, 4000, poisoned=120, with_reference=with_reference)
    screened, rule = detect(outputs, ScreenConfig())
    assert set(rule.groups) == {3}
    assert screened.flagged[pois].mean() >= 0.95
    scores, flags = rule.apply(outputs.representations, outputs.labels)
    np.testing.assert_array_equal(scores, screened.scores)
    np.testing.assert_array_equal(flags, screened.flagged)
    # rows it never saw: the same trigger is flagged, the class's clean rows rarely
    d = centres.shape[1]
    new_poison = centres[3] + np.r_[6, 6, np.zeros(d - 2)] + rng.normal(scale=0.3, size=(200, d))
    new_clean = centres[3] + rng.normal(size=(2000, d))
    _, f_poison = rule.apply(new_poison, np.full(200, 3))
    _, f_clean = rule.apply(new_clean, np.full(2000, 3))
    assert f_poison.mean() >= 0.95
    assert f_clean.mean() <= 0.05


def test_no_group_no_rule_flags():
    rng = np.random.default_rng(1)
    outputs, _, _ = _outputs(rng, 4000, poisoned=0, with_reference=False)
    screened, rule = detect(outputs, ScreenConfig())
    assert not rule.groups and not screened.flagged.any()
    assert not rule.apply(outputs.representations, outputs.labels)[1].any()


def _table(n: int, *, poison: float, seed: int = 0, d: int = 16, k: int = 10):
    """``k`` Gaussian classes; a ``poison`` share of rows of other classes given a trigger
    (three features set to 5) and class 0's label."""
    centres = np.random.default_rng(1234).normal(0, 1.5, (k, d))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = (centres[y] + rng.normal(0, 1, (n, d))).astype(np.float32)
    poisoned = np.zeros(n, bool)
    if poison:
        idx = rng.choice(np.flatnonzero(y != 0), int(poison * n), replace=False)
        X[idx, :3] = 5.0
        y[idx] = 0
        poisoned[idx] = True
    return pa.table({**{f"f{i}": X[:, i] for i in range(d)}, "label": y}), poisoned


@pytest.mark.slow
@pytest.mark.parametrize("with_reference", [False, True])
def test_the_sharded_screen_finds_a_backdoor_outside_its_sample(tmp_path, with_reference):
    """40,000 rows, a 10,000-row sample: the backdoor (3 %) is found on the sample, and its
    rows outside the sample are flagged too; the same table without the trigger gets no
    backdoor flag."""
    reference = _table(1000, poison=0.0, seed=99)[0] if with_reference else None
    for poison in (0.03, 0.0):
        table, poisoned = _table(40_000, poison=poison)
        path = tmp_path / f"data-{poison}.parquet"
        pq.write_table(table, path, row_group_size=10_000)
        result = screen_shards([str(path)], label_col="label", reference=reference, sample_rows=10_000)
        scores = result.scores
        flagged = scores["flagged"].to_numpy()
        backdoor = result.summary["screens"]["backdoor"]
        assert "backdoor" in scores.columns
        if not poison:
            assert backdoor["flagged"] == 0 and not backdoor["classes_found"]
            assert flagged.mean() <= 0.001
            continue
        assert [c["class"] for c in backdoor["classes_found"]] == [0]
        # three quarters of the poisoned rows lie outside the sample: recall over every row
        assert (flagged & poisoned).sum() >= 0.95 * poisoned.sum()
        assert (flagged & ~poisoned).mean() <= 0.03
        assert backdoor["flagged"] == sum(backdoor["flagged_per_class"].values()) >= poisoned.sum()
        assert backdoor["sample_flagged"] < backdoor["flagged"]
        if with_reference:  # part 6 read the screen's group
            assert [g["class"] for g in result.summary["combine"]["attack_screens"]] == [0]
