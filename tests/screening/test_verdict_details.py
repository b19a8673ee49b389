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
