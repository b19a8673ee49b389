"""The screen contract over the registry: every registered screen, run on a small table's
real probe outputs, returns per-row float64 scores and bool flags of the table's length
and a JSON-ready summary, and reads only the probe outputs and settings it declares."""

import dataclasses
import json

import numpy as np
import pytest
from screen_helpers import FAST, blobs, frame

import screening.screens as registry
from screening import screen_table
from screening.screens.base import ALWAYS_READABLE, COMPANIONS, EVIDENCE, FINDS


class _Guard:
    """Lets through the attributes named in ``allowed``; any other read fails the test."""

    def __init__(self, target, allowed, what):
        object.__setattr__(self, "_t", target)
        object.__setattr__(self, "_allowed", frozenset(allowed))
        object.__setattr__(self, "_what", what)

    def __getattr__(self, name):
        if name not in self._allowed:
            raise AssertionError(f"{self._what} reads {name!r}, which it does not declare")
        return getattr(self._t, name)


@pytest.fixture(scope="module")
def probe_run():
    """One screen_table run on 3 x 60 blobs with a few flipped labels; the ProbeOutputs
    and config every screen was given, captured through the registry."""
    X, y = blobs(n_per_class=60, n_classes=3, d=6, seed=3)
    y = y.copy()
    y[:6] = (y[:6] + 1) % 3
    seen = {}

    def recording(screen):
        def run(outputs, config):
            seen[screen.name] = (dataclasses.replace(outputs), config)
            return screen.run(outputs, config)
        return dataclasses.replace(screen, run=run)

    original = registry.SCREENS
    registry.SCREENS = tuple(recording(s) for s in original)
    try:
        res = screen_table(frame(X, y), label_col="label", config=FAST)
    finally:
        registry.SCREENS = original
    return res, seen


def test_every_registered_screen_ran(probe_run):
    res, seen = probe_run
    assert set(seen) == {s.name for s in registry.SCREENS}
    assert len({s.name for s in registry.SCREENS}) == len(registry.SCREENS)


@pytest.mark.parametrize("screen", registry.SCREENS, ids=lambda s: s.name)
def test_screen_meets_the_contract_reading_only_what_it_declares(probe_run, screen):
    _, seen = probe_run
    outputs, config = seen[screen.name]
    allowed = set(ALWAYS_READABLE) | set(screen.reads)
    for field in screen.reads:
        allowed |= set(COMPANIONS.get(field, ()))
    out = screen.run(_Guard(outputs, allowed, f"screen {screen.name}"),
                     _Guard(config, screen.settings, f"screen {screen.name}'s settings"))
    n = len(outputs.labels)
    assert out.scores.shape == (n,) and out.scores.dtype == np.float64
    assert out.flagged.shape == (n,) and out.flagged.dtype == bool
    json.dumps(out.summary)  # JSON-ready as it stands
    assert out.summary["flagged"] == int(out.flagged.sum())
    assert screen.finds in FINDS and set(screen.evidence) <= set(EVIDENCE)
    for field in screen.reads:
        assert field in {f.name for f in dataclasses.fields(outputs)}, f"{screen.name} declares unknown {field}"
    for setting in screen.settings:
        assert hasattr(config, setting), f"{screen.name} declares unknown setting {setting}"


def test_guard_catches_an_undeclared_read(probe_run):
    _, seen = probe_run
    outputs, config = seen["influence"]
    sneaky = dataclasses.replace(registry.by_name()["influence"], reads=())
    with pytest.raises(AssertionError, match="does not declare"):
        sneaky.run(_Guard(outputs, ALWAYS_READABLE, "screen influence"), config)


def test_every_list_of_screen_names_derives_from_the_registry(probe_run):
    from dataward.reports import check_sections
    from screening import canary

    res, _ = probe_run
    names = [s.name for s in registry.SCREENS]
    assert sorted(registry.report_order()) == sorted(names)
    assert check_sections.SCREEN_ORDER == registry.report_order()
    assert canary.SCORE_COLUMNS == registry.canary_screens()
    # scores.parquet: row_id, the contract's leading score columns, flagged, every other screen
    lead = registry.contract_columns()
    assert list(res.scores.columns[:len(lead) + 2]) == ["row_id", *lead, "flagged"]
    assert set(names) <= set(res.scores.columns)
    assert set(registry.verdict_inputs()) <= set(names)
