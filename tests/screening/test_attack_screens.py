"""Part 6 of the reference-calibrated verdict (docs/verdict.md): with a trusted reference
the verdict also takes the groups of the reference-free backdoor screen, once the
class's trusted rows confirm them. A blended trigger behind a 270-row reference (27
trusted rows a class) is not certified by the reference's own tests, and was kept whole
before this part; the backdoor screen, which calibrates a class on the other classes'
rows, finds it. A far-out segment of a clean class that the screen took for a group is
as common among the class's trusted rows, and is not flagged.

The tables are scikit-learn's 8 x 8 digits and the synthetic mixed table from
benchmarks/matrix.py (both on the tuning half).
"""
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dataward.reports.verdict_text import rule_text
from screening import ScreenConfig, screen_table
from screening.screens.backdoor import confirmed_by_reference
from screening.verdict import Verdict, with_attack_screens
from screening.verdict.details import ReferenceCalibratedDetails

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import matrix as M  # noqa: E402


def _details(**kw):
    return ReferenceCalibratedDetails(p_value_level=0.02, clean_flag_rate_bound=0.02, clean_flag_rate_upper_90=0.03,
                                      row_fdr=0.1, row_fdr_requested=0.1, tail_min_reference=50, verdict_alpha=0.02,
                                      verdict_confidence=None, reference_rows=100, judges_per_row=3,
                                      judged_reference_rows=60, row_level_flagged=1, excess_delta=0.1,
                                      excess_fdr=0.2, **kw)


def test_the_backdoor_screens_groups_join_the_reference_calibrated_verdict():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    own = np.array([1, 0, 0, 0, 0, 0, 0, 0], bool)
    base = Verdict("reference_calibrated", own, p_values=np.full(8, 0.5), details=_details(), attack_classes=())
    backdoor = np.array([1, 0, 0, 1, 1, 0, 0, 0], bool)
    label_noise = np.array([0, 0, 0, 0, 0, 0, 1, 1], bool)  # cleanlab's: not an attack screen
    cfg = ScreenConfig()
    out = with_attack_screens(base, {"backdoor": backdoor, "label_noise": label_noise}, labels, cfg)
    assert out.flagged.tolist() == (own | backdoor).tolist()
    # a group the rule had mostly flagged itself: its other rows are not added
    half = np.array([1, 1, 0, 0, 0, 0, 0, 0], bool)
    wide = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    mostly = Verdict("reference_calibrated", half, p_values=np.full(8, 0.5), details=_details(), attack_classes=())
    out2 = with_attack_screens(mostly, {"backdoor": wide}, labels, cfg)
    assert out2.flagged.tolist() == half.tolist() and out2.attack_classes == (0,)
    assert out2.details.attack_screens[0]["added"] == 0 and out2.details.attack_screens[0]["already"] == 2
    assert out.attack_classes == (0, 1)
    # class 0's group (one row) is the rule's own flag already: nothing added there
    assert out.details.attack_screens == [{"screen": "backdoor", "class": 0, "flagged": 1, "already": 1, "added": 0},
                                          {"screen": "backdoor", "class": 1, "flagged": 2, "already": 0, "added": 2}]
    assert out.details.attack_screens_flagged == 2
    assert base.flagged.tolist() == own.tolist()  # the verdict it was given is not changed
    # a class where the class excess already found the attack keeps the verdict's own flags
    found = Verdict("reference_calibrated", own, p_values=np.full(8, 0.5), details=_details(), attack_classes=(1,))
    kept = with_attack_screens(found, {"backdoor": backdoor}, labels, cfg)
    assert kept.flagged.tolist() == (own | (backdoor & (labels == 0))).tolist() and kept.attack_classes == (0, 1)
    assert [(g["class"], g["added"]) for g in kept.details.attack_screens] == [(0, 0), (1, 0)]
    # nothing to add, the part turned off, or another rule: the verdict as it was
    assert with_attack_screens(base, {"backdoor": np.zeros(8, bool)}, labels, cfg) is base
    off = replace(cfg, verdict=replace(cfg.verdict, attack_screens=False))
    assert with_attack_screens(base, {"backdoor": backdoor}, labels, off) is base
    other = Verdict("cleanlab_cross_validated", own.copy())
    assert with_attack_screens(other, {"backdoor": backdoor}, labels, cfg) is other


@pytest.fixture(scope="module")
def blend():
    return M.build_case(M.load_source("digits8", 0), "blend-3%", 0)["given"]


def _screen(case, **verdict):
    cfg = ScreenConfig(threads=1, seed=0)
    cfg = replace(cfg, verdict=replace(cfg.verdict, **verdict))
    return screen_table(case.train, label_col="label", reference=case.reference, config=cfg)


def test_a_blended_backdoor_behind_a_small_reference_is_removed(blend):
    res = _screen(blend)
    flagged = res.scores["flagged"].to_numpy()
    assert flagged[blend.truth].mean() >= 0.9, f"recall {flagged[blend.truth].mean():.2f}"
    assert flagged[~blend.truth].mean() <= 0.02
    combine = json.loads(json.dumps(res.summary["combine"]))  # as summary.json stores it
    groups = ReferenceCalibratedDetails.from_dict(combine).attack_screens
    assert [g["class"] for g in groups] == [blend.target]
    assert combine["attack_screens_flagged"] >= int(blend.truth.sum()) * 0.9
    assert "reference-free backdoor screen flagged" in rule_text(combine)
    # the target class is read as attacked: no relabelling suggested for its rows
    assert res.scores["suggested_label"][blend.truth].isna().all()


def test_without_part_6_the_same_backdoor_is_kept(blend):
    """What part 6 adds: the reference's own tests leave this trigger unflagged."""
    res = _screen(blend, attack_screens=False)
    flagged = res.scores["flagged"].to_numpy()
    assert flagged[blend.truth].mean() < 0.5
    assert res.summary["combine"]["attack_screens"] == []


def test_the_reference_confirms_a_group_only_where_its_trusted_rows_are_not_as_far_out():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 100)
    scores = rng.random(300)
    p = np.ones(300)
    p[:20] = 0.01  # class 0's group: its 20 farthest rows
    scores[:20] = 5 + rng.random(20)
    p[100:120] = 0.01  # class 1's group
    scores[100:120] = 5 + rng.random(20)
    ref_labels = np.repeat([0, 1, 2], [30, 30, 0])
    ref_scores = rng.random(60)
    ref_scores[30:36] = 6.0  # a fifth of class 1's trusted rows are as far out as its group
    kept = [{"class": 0, "level": 0.05}, {"class": 1, "level": 0.05}, {"class": 2, "level": 0.05}]
    confirmed, tested = confirmed_by_reference(scores, labels, p, kept, ref_scores, ref_labels, level=0.05)
    assert [d["class"] for d in confirmed] == [0, 2]  # class 2 has no trusted row: nothing to confirm with
    by_class = {d["class"]: d for d in tested}
    assert by_class[0]["reference_rows_as_far"] == 0 and by_class[0]["reference_p"] < 0.01
    assert by_class[1]["reference_rows_as_far"] == 6 and by_class[1]["reference_p"] > 0.05
    assert 2 not in by_class and confirmed[1]["reference_p"] is None


def test_a_far_out_segment_of_a_clean_class_is_not_flagged_as_a_backdoor():
    """The synthetic mixed table with 10 % uniform flips: the screen's gate passed 51 far
    rows of class 'bronze' (9 flipped) and its expansion 60 more; 17 of bronze's 117
    trusted rows are as far out, so the reference rejects the group."""
    case = M.build_case(M.load_source("mixed_synth", 0), "uniform-10%", 0)["given"]
    res = _screen(case)
    backdoor = res.summary["screens"]["backdoor"]
    assert backdoor["flagged"] == 0 and backdoor["classes_found"] == []
    rejected = backdoor["classes_rejected_by_reference"]
    assert [d["class"] for d in rejected] == ["bronze"] and rejected[0]["reference_rows_as_far"] >= 10
    assert res.summary["combine"]["attack_screens"] == []
