"""Canary self-test: planting, recall figures, and the screen / decide stages on known answers.

The stage tests replace ``screen_table`` by a small, honest screen (a row is flagged when
its label disagrees with its nearest trusted reference row) so they run in seconds; the
real engine's figures on the digits example are in the issue's closing note.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from screening.canary import KINDS, canary_count, canary_recall, plant_canaries


def blobs(n: int = 300, d: int = 6, k: int = 3, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    centres = rng.normal(scale=6.0, size=(k, d))
    x = centres[y] + rng.normal(size=(n, d))
    return pa.table({**{f"f{i}": x[:, i] for i in range(d)}, "label": pa.array(y, pa.int64())})


def test_plant_tabular_canaries_are_recorded_and_leave_the_data_alone():
    data = blobs()
    before = data.to_pydict()
    c = plant_canaries(data, label_col="label", seed=3)
    assert data.to_pydict() == before
    assert c.table.schema == data.schema
    per_kind = canary_count(data.num_rows)
    assert per_kind == 10 and len(c) == 2 * per_kind
    assert {k: int((c.kinds == k).sum()) for k in KINDS} == {"label_flip": 10, "trigger": 10}
    labels = c.table.column("label").to_pylist()
    src = data.take(pa.array(c.source_rows)).column("label").to_pylist()
    for kind, new, old in zip(c.kinds, labels, src):
        assert new != old  # every canary is a dirty-label poison
        if kind == "trigger":
            assert new == c.target
    trig = c.trigger["features"]
    rows = np.flatnonzero(c.kinds == "trigger")
    for col, value in trig.items():
        assert np.all(c.table.column(col).to_numpy()[rows] == value)
        assert value == max(data.column(col).to_pylist())
    again = plant_canaries(data, label_col="label", seed=3)
    assert again.table.equals(c.table)  # seeded: reproducible


def test_plant_image_patch_on_list_column():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 8, size=(120, 36)).astype(np.float32)
    table = pa.table({"image": pa.array(imgs.tolist(), pa.list_(pa.float32())),
                      "label": pa.array(rng.choice(["cat", "dog"], size=120))})
    c = plant_canaries(table, label_col="label", seed=0)
    assert c.trigger["kind"] == "image patch" and c.trigger["patch"] == [2, 2]
    out = np.asarray(c.table.column("image").to_pylist()).reshape(len(c), 6, 6)
    trig = c.kinds == "trigger"
    assert np.all(out[trig, 4:, 4:] == 7)
    assert set(c.table.column("label").to_pylist()) <= {"cat", "dog"}


def test_no_trigger_without_numeric_features():
    table = pa.table({"text": ["a b", "c d"] * 20, "label": [0, 1] * 20})
    c = plant_canaries(table, label_col="label")
    assert set(c.kinds) == {"label_flip"} and c.notes


def test_recall_figures_on_known_scores():
    n, kinds = 100, np.array(["label_flip"] * 4 + ["trigger"] * 4, dtype=object)
    flagged = np.zeros(n + 8, bool)
    flagged[[n, n + 1, n + 2, n + 4]] = True        # 3 of 4 flips, 1 of 4 triggers
    score = np.zeros(n + 8)
    score[n:] = 10.0                                  # this screen ranks every canary first
    scores = pd.DataFrame({"row_id": range(n + 8), "flagged": flagged, "label_noise": score,
                           "spectral": -score})
    fig = canary_recall(scores, kinds, n_real=n, screen_budgets={"label_noise": 8, "spectral": 8})
    assert fig["flagged"]["recall"] == 0.5
    assert fig["flagged"]["per_kind"]["label_flip"]["recall"] == 0.75
    assert fig["flagged"]["per_kind"]["trigger"]["caught"] == 1
    assert fig["screens"]["label_noise"]["recall_at_budget"] == 1.0
    assert fig["screens"]["label_noise"]["auroc"] == 1.0
    assert fig["screens"]["spectral"]["auroc"] == 0.0


# --- the screen and decide stages ------------------------------------------------------------

@pytest.fixture
def sqlite_home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("DATAWARD_HOME", str(h))
    monkeypatch.setenv("DATAWARD_DB_URL", f"sqlite:///{tmp_path / 'lineage.db'}")
    monkeypatch.setenv("DATAWARD_ACTOR", "tester")
    for var in ("DATAWARD_DATA_ROOT", "DATAWARD_POLICY", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    yield h
    from lineage.db import dispose_all

    dispose_all()


def nearest_reference_screen(flag: bool = True):
    """A stand-in for ``screen_table``: flag rows whose label differs from the nearest reference row's."""
    from screening import ScreenResult

    def screen_table(data, *, label_col, reference=None, **_):
        feats = [c for c in data.column_names if c != label_col]
        x = np.column_stack([data.column(c).to_numpy() for c in feats])
        xr = np.column_stack([reference.column(c).to_numpy() for c in feats])
        y, yr = data.column(label_col).to_numpy(), reference.column(label_col).to_numpy()
        nn = ((x[:, None, :] - xr[None]) ** 2).sum(-1).argmin(1)
        bad = (yr[nn] != y) if flag else np.zeros(len(y), bool)
        scores = pd.DataFrame({"row_id": np.arange(len(y)), "spectral": np.zeros(len(y)),
                               "label_noise": bad.astype(float), "influence": np.zeros(len(y)),
                               "flagged": bad, "activation_cluster": np.zeros(len(y)),
                               "reason": np.where(bad, "nn", "")})
        summary = {"n_rows": len(y), "feature_cols": feats, "classes": sorted(set(y.tolist())),
                   "screens": {"label_noise": {"flagged": int(bad.sum())}},
                   "combine": {"flagged": int(bad.sum()), "flagged_per_class": {}}}
        reps = x.astype(np.float32)
        k = len(summary["classes"])
        return ScreenResult(scores, summary, reps, np.full((len(y), k), 1 / k), np.full((len(y), k), 1 / k),
                            summary["classes"])

    return screen_table


def ingest_blobs(tmp_path, *, flips: int = 6, name: str = "blobs"):
    from dataward.context import Context
    from dataward.stages.ingest import ingest

    data = blobs(370, seed=0)
    rng = np.random.default_rng(5)
    y = data.column("label").to_numpy().copy()
    flipped = rng.choice(300, size=flips, replace=False)
    y[flipped] = (y[flipped] + 1) % 3
    train = data.slice(0, 300).set_column(6, "label", pa.array(y[:300]))
    reference = data.slice(300, 30)
    evaluation = data.slice(330)
    train = pa.concat_tables([train, evaluation.slice(0, 2)])  # two evaluation rows leak
    for t, p in ((train, "train.parquet"), (reference, "ref.parquet"), (evaluation, "eval.parquet")):
        pq.write_table(t, tmp_path / p)
    manifest = {"name": name, "owner": "t@example.com", "license": "CC-BY-4.0",
                "source": {"uri": "https://example.com"}, "label_column": "label",
                "reference": str(tmp_path / "ref.parquet"), "evaluation_sets": [str(tmp_path / "eval.parquet")]}
    ctx = Context()
    return ctx, ingest(ctx, tmp_path / "train.parquet", manifest=manifest), sorted(int(i) for i in flipped)


def test_screen_stage_screens_canaries_once_and_keeps_them_out_of_scores(sqlite_home, tmp_path, monkeypatch):
    import screening
    from dataward.artifacts import flagged_row_ids
    from dataward.stages.screen import screen

    calls = []
    real = nearest_reference_screen()
    monkeypatch.setattr(screening, "screen_table", lambda data, **kw: calls.append(data.num_rows) or real(data, **kw))
    ctx, result, flipped = ingest_blobs(tmp_path)
    out = screen(ctx, result.ref)
    assert out["status"] == "done" and out["n_rows"] == 302
    assert calls == [302 + out["canary"]["n_canaries"]]  # one screening pass over real + canary rows
    scores = pq.read_table(out["scores_path"])
    assert scores.column("row_id").to_pylist() == list(range(302))
    assert flagged_row_ids(out) == flipped
    canary = out["canary"]
    assert canary["status"] == "done" and canary["n_canaries"] == 20
    planted = pq.read_table(canary["canary_path"]).to_pandas()
    assert len(planted) == 20 and list(planted["kind"]).count("trigger") == 10
    # the recorded figures are what the screen did to the canary rows
    assert canary["recall"] == pytest.approx(planted["flagged"].mean())
    flips = planted[planted["kind"] == "label_flip"]
    assert canary["flagged"]["per_kind"]["label_flip"]["recall"] == pytest.approx(flips["flagged"].mean())
    assert flips["flagged"].mean() >= 0.8
    assert canary["screens"]["label_noise"]["recall_at_budget"] == pytest.approx(canary["recall"])
    leak = out["leakage"]
    assert leak["totals"]["eval_exact_train_rows"] == 2 and leak["totals"]["eval_exact_eval_rows"] == 2
    assert out["diff"] is None  # no earlier approved version
    assert screen(ctx, result.ref) == out  # idempotent

    # a new version: its screen output carries the diff against the approved one
    from lineage.ingest import resolve

    with ctx.session() as s:
        resolve(s, result.ref).status = "approved"
    train = pq.read_table(tmp_path / "train.parquet")
    y = train.column("label").to_numpy().copy()
    y[[10, 11]] = (y[[10, 11]] + 1) % 3                     # two rows relabelled
    v2 = train.set_column(6, "label", pa.array(y)).slice(5)  # five rows removed
    pq.write_table(v2, tmp_path / "train.parquet")
    from dataward.stages.ingest import ingest

    r2 = ingest(ctx, tmp_path / "train.parquet", manifest={
        "name": "blobs", "owner": "t@example.com", "license": "CC-BY-4.0", "source": {"uri": "https://example.com"},
        "label_column": "label", "reference": str(tmp_path / "ref.parquet")})
    out2 = screen(ctx, r2.ref)
    d = out2["diff"]
    assert d["a"] == result.ref and d["b"] == r2.ref
    assert (d["rows"]["removed"], d["rows"]["changed"], d["rows"]["added"]) == (5, 2, 0)
    assert d["newly_flagged"]["arrived_with_b"] == sum(1 for i in (5, 6) if i in flagged_row_ids(out2))


def test_decide_quarantines_when_canary_recall_is_below_the_floor(sqlite_home, tmp_path, monkeypatch):
    import screening
    from dataward.stages.decide import record_decision
    from dataward.stages.screen import screen

    monkeypatch.setattr(screening, "screen_table", nearest_reference_screen(flag=False))
    ctx, result, _ = ingest_blobs(tmp_path)
    out = screen(ctx, result.ref)
    assert out["canary"]["recall"] == 0.0
    decision = record_decision(ctx, result.ref)
    assert decision["outcome"] == "quarantine"
    whys = [r["why"] for r in decision["reasons"] if r["check"] == "canary"]
    assert whys and whys[0].startswith("screens not trustworthy on this data: canary recall 0.00 below floor 0.80")
    assert any(r["check"] == "leakage" and r["outcome"] == "quarantine" for r in decision["reasons"])


def test_policy_sets_the_verdicts_level_for_the_real_screen(sqlite_home, tmp_path, monkeypatch):
    from dataward.errors import BadInput
    from dataward.governance.policy import load_policy
    from dataward.stages.screen import screen

    policy = tmp_path / "policy.yaml"
    policy.write_text("version: t\nscreening: {verdict_alpha: 0.05, verdict_confidence: 0.9}\n"
                      "canary: {enabled: false}\n")
    monkeypatch.setenv("DATAWARD_POLICY", str(policy))
    ctx, result, flipped = ingest_blobs(tmp_path, flips=12)
    out = screen(ctx, result.ref)  # the real engine
    config = out["summary"]["config"]
    assert (config["verdict"]["alpha"], config["verdict"]["confidence"]) == (0.05, 0.9)
    combine = out["summary"]["combine"]
    # either the 90 % bound holds at alpha, or the reference rows each row is judged
    # against are too few for it and the level is the lowest p-value they allow
    floor = 1 / (combine["judged_reference_rows"] + 1)
    assert combine["clean_flag_rate_upper_90"] <= 0.05 or combine["p_value_level"] == pytest.approx(floor)
    assert combine["p_value_level"] < 0.05  # stricter than alpha alone

    for bad in ("screening: {verdict_alpha: 0.7}\n", "screening: {verdict_confidence: 1.5}\n",
                "screening: {verdict_alpha: lots}\n"):
        policy.write_text("version: t\n" + bad)
        with pytest.raises(BadInput, match="verdict"):
            load_policy(policy)


# --- what a run without a trusted reference plants and promises (issue 25, part 6) -----------

def ingest_table(tmp_path, table: pa.Table, name: str):
    """Ingest ``table`` as a first import with no reference (so no trusted rows of any kind)."""
    from dataward.context import Context
    from dataward.stages.ingest import ingest

    pq.write_table(table, tmp_path / f"{name}.parquet")
    manifest = {"name": name, "owner": "t@example.com", "license": "CC-BY-4.0",
                "source": {"uri": "https://example.com"}, "label_column": "label"}
    ctx = Context()
    return ctx, ingest(ctx, tmp_path / f"{name}.parquet", manifest=manifest)


def sklearn_table(name: str) -> pa.Table:
    from sklearn import datasets

    d = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = d.data.rename(columns=lambda c: c.replace(" ", "_"))
    if name == "wine":  # the before-stop smoke table: a string label and a categorical column
        frame["region"] = [("north", "south", "east", "west")[i % 4] for i in range(len(frame))]
        frame["label"] = [("a", "b", "c")[t] for t in d.target]
    else:
        frame["label"] = d.target
    return pa.Table.from_pandas(frame, preserve_index=False)


def test_without_reference_only_label_flips_are_planted_with_the_reason():
    data = blobs()
    with_ref = plant_canaries(data, label_col="label", seed=3)
    without = plant_canaries(data, label_col="label", seed=3, with_reference=False)
    assert set(without.kinds) == {"label_flip"} and without.trigger is None and without.target is None
    # the same label flips as a run with a reference plants: only the trigger rows are left out
    flips = with_ref.kinds == "label_flip"
    assert without.table.equals(with_ref.table.filter(pa.array(flips)))
    described = without.describe()
    assert described["kinds"] == ["label_flip"] and with_ref.describe()["kinds"] == list(KINDS)
    assert any("without a trusted reference" in n for n in described["notes"])


@pytest.mark.parametrize("name", ["wine", "breast_cancer"])
def test_clean_first_import_without_reference_is_not_held_by_the_canary_rule(sqlite_home, tmp_path, name):
    """The real engine on an ordinary clean table with no reference: it catches the kinds it
    plants (label flips), so only the limited-assurance rule holds it, not the canary floor.
    Before issue 25 part 6 it planted trigger canaries too, caught none of them (recall
    0.50) and every such first import was held as "screens not trustworthy"."""
    from dataward.stages.decide import record_decision
    from dataward.stages.screen import screen

    ctx, result = ingest_table(tmp_path, sklearn_table(name), name.replace("_", "-"))
    out = screen(ctx, result.ref)
    assert out["status"] == "done" and not out["used_reference"]
    decision = record_decision(ctx, result.ref)
    assert [r["why"] for r in decision["reasons"] if r["check"] == "canary"] == []
    assert any(r["why"].startswith("limited assurance") for r in decision["reasons"])  # kept: a separate rule
    canary = out["canary"]
    assert canary["kinds"] == ["label_flip"] and canary["counts"]["trigger"] == 0
    assert canary["recall"] >= 0.8


def flag_nothing_screen():
    """A stand-in for ``screen_table`` whose screens miss everything (no reference needed)."""
    from screening import ScreenResult

    def screen_table(data, *, label_col, reference=None, **_):
        y = data.column(label_col).to_numpy()
        n, classes = len(y), sorted(set(y.tolist()))
        zero = np.zeros(n)
        scores = pd.DataFrame({"row_id": np.arange(n), "spectral": zero, "label_noise": zero, "influence": zero,
                               "flagged": np.zeros(n, bool), "activation_cluster": zero, "reason": ""})
        summary = {"n_rows": n, "feature_cols": [c for c in data.column_names if c != label_col],
                   "classes": classes, "screens": {"label_noise": {"flagged": 0}},
                   "combine": {"flagged": 0, "flagged_per_class": {}}}
        k = len(classes)
        return ScreenResult(scores, summary, np.zeros((n, 2), np.float32), np.full((n, k), 1 / k),
                            np.full((n, k), 1 / k), classes)

    return screen_table


def test_without_reference_screens_that_miss_label_flips_are_held(sqlite_home, tmp_path, monkeypatch):
    """The floor still fails: a run without a reference whose screens miss the label flips it
    promises to catch is quarantined, and the reason names what was planted and why."""
    import screening
    from dataward.stages.decide import record_decision
    from dataward.stages.screen import screen

    monkeypatch.setattr(screening, "screen_table", flag_nothing_screen())
    ctx, result = ingest_table(tmp_path, blobs(), "blobs-noref")
    out = screen(ctx, result.ref)
    assert not out["used_reference"] and out["canary"]["kinds"] == ["label_flip"]
    assert out["canary"]["recall"] == 0.0
    decision = record_decision(ctx, result.ref)
    assert decision["outcome"] == "quarantine"
    whys = [r["why"] for r in decision["reasons"] if r["check"] == "canary"]
    assert whys and whys[0].startswith("screens not trustworthy on this data: canary recall 0.00 below floor 0.80")
    assert "label_flip 0 of 10" in whys[0] and "without a trusted reference" in whys[0]


def test_report_sentence_says_which_kinds_were_planted_and_why():
    from dataward.reports.check_sections import canary_section
    from screening.canary import NO_REFERENCE_NOTE

    c = plant_canaries(blobs(), label_col="label", seed=0, with_reference=False).describe()
    flagged = {"n": 10, "caught": 9, "recall": 0.9,
               "per_kind": {"label_flip": {"n": 10, "caught": 9, "recall": 0.9}}}
    section = canary_section({"status": "done", "canary": {**c, "status": "done", "recall": 0.9,
                                                           "flagged": flagged, "min_recall": 0.8}})
    assert section["met_floor"] and "10 label flips were planted" in section["sentence"]
    assert NO_REFERENCE_NOTE[1:] in section["sentence"] and "Label flips only" in section["sentence"]
