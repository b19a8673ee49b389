"""The reference-calibrated verdict's figures as typed data.

:class:`ReferenceCalibratedDetails` is what :func:`screening.verdict.decide` returns in
``Verdict.details`` and what ``summary.json``'s ``combine`` holds (``to_dict``); the
report reads it back with :meth:`ReferenceCalibratedDetails.from_dict`, so the writer
and every reader share one list of names that a type checker sees. The per-class entries
keep the JSON key ``class`` (a class index in the verdict, its name in the summary), so
they are :class:`~typing.TypedDict`\\ s. docs/verdict.md, "The numbers a report prints",
says what each figure is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypedDict

ClassExcess = TypedDict("ClassExcess", {"class": Any, "level": float, "count": int, "expected_clean": float,
                                        "tail_probability": float, "statistic": str})
Expansion = TypedDict("Expansion", {"class": Any, "positives": int, "reference_rows": int, "flagged": int,
                                    "skipped": str}, total=False)
AttackScreenGroup = TypedDict("AttackScreenGroup", {"screen": str, "class": Any, "flagged": int, "already": int,
                                                    "added": int})
DetectableAttack = TypedDict("DetectableAttack", {"class": Any, "rows": int, "reference_rows": int,
                                                  "min_attack_rows": int | None})


class ProbeLine(TypedDict):
    probe: str
    flagged: int
    margin_cutoff: float


class NoiseFloor(TypedDict):
    level: float
    disagreement: float | None
    reference_disagreement: float | None
    p_value: float | None
    noise_rows_lower_bound: int
    found: int
    added: int


class CleanlabFallback(TypedDict, total=False):
    used: bool
    noisy_rows_estimate: float
    cleanlab_flagged: int
    cleanlab_reference_flag_rate: float
    expected_f1_cleanlab: float
    expected_f1_verdict: float


@dataclass
class ReferenceCalibratedDetails:
    """Every figure of the reference-calibrated rule (parts 1-5 of docs/verdict.md)."""

    p_value_level: float
    clean_flag_rate_bound: float
    clean_flag_rate_upper_90: float
    row_fdr: float | None
    row_fdr_requested: float | None
    tail_min_reference: int
    verdict_alpha: float
    verdict_confidence: float | None
    reference_rows: int
    judges_per_row: int
    judged_reference_rows: int
    row_level_flagged: int
    excess_delta: float
    excess_fdr: float
    class_excess: list[ClassExcess] = field(default_factory=list)
    class_excess_flagged: int = 0
    trigger_contrast: bool = False
    expansion_level: float = 0.0
    expansion: list[Expansion] = field(default_factory=list)
    expansion_flagged: int = 0
    # part 5; absent from summaries written before it (read back as None / 0)
    noise_floor: NoiseFloor | None = None
    cleanlab_fallback: CleanlabFallback | None = None
    noise_floor_flagged: int = 0
    detectable_attack: list[DetectableAttack] = field(default_factory=list)
    probes: list[ProbeLine] = field(default_factory=list)
    reference_only_probe_would_flag: int = 0
    # part 6: the reference-free attack screens' groups (absent from older summaries)
    attack_screens: list[AttackScreenGroup] = field(default_factory=list)
    attack_screens_flagged: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, one key per field (the nested entries are plain dicts already)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceCalibratedDetails:
        """From a ``combine`` mapping: its other keys (``name``, ``text``, ``flagged``...)
        are ignored; a field it lacks takes its default, and a required one it lacks is
        an error naming it."""
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as exc:
            raise ValueError(f"not a reference-calibrated verdict summary: {exc}") from None
