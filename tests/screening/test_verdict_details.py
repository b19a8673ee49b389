"""The verdict's figures are typed (screening.verdict.details): what screen_table writes
into ``combine`` reads back into the same dataclass, the report's rule text is written
from it, and a summary written before part 5 still reads."""

import json

import pytest
from screen_helpers import FAST, flipped_blobs, frame

from dataward.reports.verdict_text import rule_text
from screening import screen_table
from screening.verdict.details import ReferenceCalibratedDetails


@pytest.fixture(scope="module")
def combine():
    X, _, y_noisy, _, Xr, yr = flipped_blobs()
    res = screen_table(frame(X, y_noisy), label_col="label", reference=frame(Xr, yr), config=FAST)
    return json.loads(json.dumps(res.summary["combine"]))  # as stored in summary.json


def test_combine_round_trips_through_the_typed_details(combine):
    d = ReferenceCalibratedDetails.from_dict(combine)
    assert d.reference_rows == 120 and d.noise_floor is not None
    back = d.to_dict()
    assert {k: combine[k] for k in back} == back
    text = rule_text(combine)
    assert "false discovery rate" in text and "label noise certifies" in text


def test_a_summary_from_before_part_5_still_reads(combine):
    old = {k: v for k, v in combine.items() if k not in ("noise_floor", "cleanlab_fallback", "noise_floor_flagged")}
    d = ReferenceCalibratedDetails.from_dict(old)
    assert d.noise_floor is None and d.noise_floor_flagged == 0
    assert "label noise certifies" not in rule_text(old)


def test_a_summary_that_is_not_reference_calibrated_is_refused_by_name():
    with pytest.raises(ValueError, match="p_value_level"):
        ReferenceCalibratedDetails.from_dict({"name": "cleanlab_cross_validated", "flagged": 3})


def test_rule_text_names_the_depth_test_when_the_cleanlab_fallback_is_used(combine):
    used = dict(combine, noise_floor={**combine["noise_floor"], "p_value": 0.0035},
                cleanlab_fallback={"used": True, "noisy_rows_estimate": 41.0, "cleanlab_flagged": 90,
                                   "cleanlab_reference_flag_rate": 0.12, "expected_f1_cleanlab": 0.46,
                                   "expected_f1_verdict": 0.05})
    text = rule_text(used)
    assert "permutation test within each class) (p = 0.0035)" in text
    assert "flagged 90 rows" in text and "about 41 noisy rows" in text
