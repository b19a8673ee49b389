"""The combined per-row verdict as typed data (docs/verdict.md has the statistics).

:func:`decide` picks the rule named by :class:`~screening.config.VerdictConfig` and
returns a :class:`Verdict`: which rows are flagged, why, and every number the report
needs to say so. Nothing here writes prose; ``dataward.reports.verdict_text`` does.

Rules:

* ``reference_calibrated`` (``auto`` with a trusted reference): row-level cross-conformal
  p-values of the label margin under the reference-anchored probe, the class-excess test
  on each :class:`Statistic` (the label margin and, given the cross-validated probe's
  margins, two trigger contrasts) with ``excess_delta`` split between them, then the
  trigger expansion in the classes where the excess fired, then the label-noise floor
  (``noise.py``): at least as many noisy rows as the table's excess disagreement with
  the cross-validated probe certifies.
* ``cleanlab_cross_validated`` (``auto`` without a reference): cleanlab's
  ``find_label_issues`` on the cross-validated probe (exactly the peer's flags), with the
  reference-free backdoor screen's; its clean flag rate depends on the probe and is
  reported, not bounded.
* ``label_noise``: cleanlab's flags alone; ``union``: any screen's flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..encoding import jsonable
from ..screens import verdict_inputs
from .conformal import (
    CHUNK_ROWS,
    TAIL_MIN_REFERENCE,
    apply_tail,
    calibrated_level,
    clean_rate_upper_bound,
    conformal_lower_pvalues,
    cross_conformal_pvalues,
    fit_tail,
    judged_reference_rows,
    reference_fold_pvalues,
)
from .details import AttackScreenGroup, CleanlabFallback, NoiseFloor, ReferenceCalibratedDetails
from .excess import class_excess, detectable_attack, excess_tests
from .expansion import trigger_expansion
from .noise import cleanlab_fallback, noise_floor


@dataclass
class Statistic:
    """One score the class-excess test reads, with its share ``delta`` of the family-wise
    error budget; ``p_values()`` returns (data rows' p-values (N,), the reference rows'
    own p-values (M,)), computed on demand so one (N,) array is held at a time."""

    name: str
    delta: float
    p_values: Callable[[], tuple[np.ndarray, np.ndarray]]


@dataclass
class Verdict:
    """The per-row verdict.

    rule: ``reference_calibrated``, ``cleanlab_cross_validated``, ``label_noise`` or ``union``.
    flagged: (N,) bool.
    p_values: (N,) float64 row-level conformal p-values (reference-calibrated rule only).
    details: the reference-calibrated rule's figures (:class:`ReferenceCalibratedDetails`,
        class indices; see :meth:`summary`); None for the other rules.
    attack_classes: class indices where a concentrated attack was found (class excess);
        a flagged row outside them is read as label noise, a candidate for relabelling.
    """

    rule: str
    flagged: np.ndarray
    p_values: np.ndarray | None = None
    details: ReferenceCalibratedDetails | None = None
    attack_classes: tuple = ()

    def label_noise_rows(self, labels) -> np.ndarray:
        """(N,) bool: flagged rows outside every class where an attack was found."""
        if not self.attack_classes:
            return self.flagged.copy()
        return self.flagged & ~np.isin(np.asarray(labels), list(self.attack_classes))

    @property
    def flag_rate(self) -> float:
        return float(self.flagged.mean()) if len(self.flagged) else 0.0

    def summary(self, classes: list | None = None) -> dict[str, Any]:
        """JSON-ready dict: ``name`` and the rule's details, class indices replaced by
        the class names of ``classes``."""
        out: dict[str, Any] = {"name": self.rule}
        for key, value in (self.details.to_dict() if self.details is not None else {}).items():
            if isinstance(value, list) and classes is not None:
                value = [_named(d, classes) if isinstance(d, dict) and "class" in d else d for d in value]
            out[key] = value
        return out


def _named(d: dict, classes: list) -> dict:
    return {**d, "class": jsonable(classes[d["class"]])}


def decide(config, *, labels, screen_flags: dict | None = None, label_probs=None, anchored=None, ref_labels=None,
           cv_margins=None, cv_reference_margins=None, features=None, reference_features=None,
           cv_pred_probs=None, cv_reference_pred_probs=None) -> Verdict:
    """The verdict of ``config.verdict.rule``.

    Args:
        config: :class:`screening.ScreenConfig` (``verdict``, ``n_folds``, ``seed``).
        labels: (N,) int class indices.
        screen_flags: per-screen (N,) bool flags (``"label_noise"`` at least), for the
            rules that read them.
        label_probs: (N, K) the label screen's pred_probs (the rule without a reference).
        anchored: :class:`screening.probe.AnchoredProbe` with ``ref_labels`` (M,): the
            reference-calibrated rule.
        cv_margins, cv_reference_margins: (N,) and (M,) label margins under the
            cross-validated probe: they add the trigger-contrast statistics.
        features, reference_features: (N, ...) and (M, ...) normalised features: they
            enable the trigger expansion.
        cv_pred_probs, cv_reference_pred_probs: (N, K) and (M, K) the cross-validated
            probe's probabilities: they enable the cleanlab fallback of the noise floor.
    """
    rule = config.verdict.rule
    screen_flags = screen_flags or {}
    if rule == "union":
        flagged = np.zeros(len(labels), dtype=bool)
        for f in screen_flags.values():
            flagged |= f
        return Verdict("union", flagged)
    if rule == "label_noise":
        return Verdict("label_noise", screen_flags["label_noise"].copy())
    if anchored is not None:
        return reference_calibrated(config, labels, anchored, ref_labels, cv_margins, cv_reference_margins,
                                    features, reference_features, cv_pred_probs, cv_reference_pred_probs)
    # the screens the registry says the verdict reads (Screen.verdict_reads): cleanlab's
    # label-noise flags and the reference-free backdoor screen's attack flags
    flagged = np.zeros(len(labels), dtype=bool)
    attack: set[int] = set()
    for name, finds in verdict_inputs().items():
        f = screen_flags.get(name)
        if f is None:
            continue
        flagged |= f
        if finds == "attack":
            attack |= {int(c) for c in np.asarray(labels)[f]}
    return Verdict("cleanlab_cross_validated", flagged, attack_classes=tuple(sorted(attack)))


def with_attack_screens(verdict: Verdict, screen_flags: dict, labels, config) -> Verdict:
    """Part 6 of the reference-calibrated rule: the verdict plus the rows of every group
    that a screen which finds attacks without a reference flagged (the reference-free
    backdoor screen, :func:`~screening.screens.verdict_inputs`), their classes counted
    as attacked. The row-level test and the class excess judge a class against its own
    trusted rows, tens in a small reference, too few to certify a trigger confined to
    one class; that screen judges a class against every other class's rows and gates it
    on superposition (docs/verdict.md, "Without a reference"), so it sees such a trigger.
    A class where parts 1-4 already saw the attack (the class excess fired there, or the
    rule flagged at least half of the group itself) keeps the verdict's own flags: the
    group's other rows would add only that screen's false alarms. Unchanged for the
    other rules, or with ``config.verdict.attack_screens`` off."""
    if verdict.rule != "reference_calibrated" or verdict.details is None or not config.verdict.attack_screens:
        return verdict
    labels = np.asarray(labels)
    flagged, attack = verdict.flagged.copy(), set(verdict.attack_classes)
    groups: list[AttackScreenGroup] = []
    for name, finds in verdict_inputs().items():
        f = screen_flags.get(name)
        if finds != "attack" or f is None or not f.any():
            continue
        for c in np.unique(labels[f]):
            rows = f & (labels == c)
            already = int((rows & verdict.flagged).sum())
            # parts 1-4 already saw this attack: the class excess fired there, or the rule
            # flagged most of the group itself; the group's other rows would add only the
            # screen's own false alarms
            seen = int(c) in verdict.attack_classes or 2 * already >= int(rows.sum())
            groups.append(AttackScreenGroup({"screen": name, "class": int(c), "flagged": int(rows.sum()),
                                             "already": already, "added": 0 if seen else int(rows.sum()) - already}))
            attack.add(int(c))
            if not seen:
                flagged |= rows
    if not groups:
        return verdict
    details = dataclasses.replace(verdict.details, attack_screens=groups,
                                  attack_screens_flagged=int((flagged & ~verdict.flagged).sum()))
    return Verdict(verdict.rule, flagged, verdict.p_values, details, tuple(sorted(attack)))


def _statistics(anchored, judges, ref_labels, pvals, ref_p, ref_margins, cv_margins, cv_reference_margins, delta):
    """The class-excess statistics: the label margin, and with the cross-validated
    probe's margins the trigger contrast under the last round and under round 0
    (``judges``: part 1's, the models that judge each row)."""
    stats = [Statistic("label margin", delta, lambda: (pvals, ref_p))]
    if cv_margins is None or cv_reference_margins is None:
        return stats
    cv_ref = np.asarray(cv_reference_margins, dtype=np.float64)
    ref_c = ref_margins - cv_ref
    ref_c0 = anchored.initial_reference_margins - cv_ref
    return stats + [
        Statistic("trigger contrast", delta / 2, lambda: (
            cross_conformal_pvalues(anchored.model_margins, judges, ref_c, anchored.reference_folds,
                                    row_offset=cv_margins),
            reference_fold_pvalues(ref_c, anchored.reference_folds))),
        Statistic("trigger contrast, reference-only probe", delta / 2, lambda: (
            conformal_lower_pvalues(anchored.initial_margins, ref_c0, row_offset=cv_margins),
            reference_fold_pvalues(ref_c0, np.zeros(len(ref_labels), dtype=np.int64)))),
    ]


def _row_level(pvals, level, labels, fired_classes, row_fdr, fdr_p=None) -> np.ndarray:
    """The row-level flags: every row at ``p <= level`` when ``row_fdr`` is None; else the
    Benjamini-Hochberg rejections at ``row_fdr`` of ``fdr_p`` (the tail-refined p-values,
    :func:`~screening.verdict.conformal.tail_pvalues`) run within each class (separate
    families: the false discovery rate is controlled in every class, so a clean class
    flags a row with chance at most ``row_fdr``; a backdoor's few rows, all in its target
    class, compete with that class's rows only, not with the whole table's), plus the rows
    at ``p <= level`` of the classes where the class excess fired."""
    if row_fdr is None:
        return pvals <= level
    from scipy.stats import false_discovery_control

    p = pvals if fdr_p is None else fdr_p
    flags = np.zeros(len(p), dtype=bool)
    for c in np.unique(labels):  # within each class: a backdoor's rows compete with their class only
        rows = np.flatnonzero(labels == c)
        flags[rows] = false_discovery_control(p[rows], method="bh") <= row_fdr
    if fired_classes:
        flags |= np.isin(labels, sorted(fired_classes)) & (pvals <= level)
    return flags


def _excess_over_statistics(stats, labels, ref_labels, vc) -> tuple[np.ndarray, list]:
    """Part 2 on every statistic: (the rows the class excess flags, the fired classes,
    each with the statistic that fired)."""
    flags = np.zeros(len(labels), dtype=bool)
    fired = []
    for stat in stats:
        p, rp = stat.p_values()
        more, fired_s = class_excess(p, rp, labels, ref_labels, fdr=vc.excess_fdr, delta=stat.delta,
                                     levels=tuple(vc.excess_levels))
        flags |= more
        fired += [{**f, "statistic": stat.name} for f in fired_s]
        del p, rp, more
    return flags, fired


def _row_fdr_flags(anchored, judges, pvals, ref_margins, labels, fired, level, vc) -> tuple[np.ndarray, float | None]:
    """Part 1's row-level flags and the false discovery rate applied (None: the per-row
    level). FDR control needs p-values below the conformal floor 1 / (M + 1): the tail
    model, which needs TAIL_MIN_REFERENCE trusted rows; with fewer the per-row level
    applies (and the report says so)."""
    row_fdr = vc.row_fdr if vc.row_fdr is not None and len(ref_margins) >= TAIL_MIN_REFERENCE else None
    fdr_p = None
    if row_fdr is not None:
        # tail_pvalues of one score per row on the reference's scale, its mean margin under
        # its judges: a chunk of rows at a time (no (F, N) or (N,) temporary)
        tail = fit_tail(ref_margins)
        fdr_p = np.asarray(pvals, dtype=np.float64)
        if tail is not None:
            fdr_p = np.empty(len(pvals))
            for start in range(0, len(pvals), CHUNK_ROWS):
                rows = slice(start, start + CHUNK_ROWS)
                j = judges[:, rows]
                row_margin = (anchored.model_margins[:, rows] * j).sum(axis=0) / np.maximum(j.sum(axis=0), 1)
                fdr_p[rows] = apply_tail(pvals[rows], row_margin, tail)
    return _row_level(pvals, level, labels, {d["class"] for d in fired}, row_fdr, fdr_p), row_fdr


def _noise_part(labels, ref_labels, flagged, vc, row_fdr, cv_margins, cv_reference_margins, cv_pred_probs,
                cv_reference_pred_probs, seed: int = 0) -> tuple[np.ndarray, NoiseFloor, CleanlabFallback]:
    """Part 5: (the rows the floor and the cleanlab fallback add, the floor's figures,
    the fallback's figures)."""
    added, floor = noise_floor(cv_margins, cv_reference_margins, flagged, labels=labels, ref_labels=ref_labels,
                               level=vc.noise_floor_level, seed=seed)
    peer, fallback = cleanlab_fallback(labels, ref_labels, cv_pred_probs, cv_reference_pred_probs,
                                       flagged | added, floor, row_fdr=row_fdr, level=vc.noise_floor_level)
    if peer is not None:
        added |= peer & ~flagged
    return added, floor, fallback


def _power(labels, ref_labels, vc, delta) -> list:
    """Per class, the attack size below which the class excess (label margin) cannot flag."""
    n_tests = excess_tests(labels, tuple(vc.excess_levels))
    n_per = dict(zip(*np.unique(labels, return_counts=True)))
    m_per = dict(zip(*np.unique(ref_labels, return_counts=True)))
    return [{"class": c.item(), "rows": int(n_c), "reference_rows": int(m_per.get(c, 0)),
             "min_attack_rows": detectable_attack(n_c, m_per.get(c, 0), n_tests=n_tests, delta=delta,
                                                  fdr=vc.excess_fdr)}
            for c, n_c in n_per.items()]


def reference_calibrated(config, labels, anchored, ref_labels, cv_margins=None, cv_reference_margins=None,
                         features=None, reference_features=None, cv_pred_probs=None,
                         cv_reference_pred_probs=None) -> Verdict:
    """Row-level cross-conformal cut, class excess on every :class:`Statistic`, trigger
    expansion, label-noise floor (docs/verdict.md, parts 1-5)."""
    from ..probe import label_margin

    vc = config.verdict
    labels, ref_labels = np.asarray(labels), np.asarray(ref_labels)
    # part 1: the p-values and the level
    ref_margins = label_margin(ref_labels, anchored.reference_pred_probs)
    m = len(ref_labels)
    judges = ~np.asarray(anchored.eligible, dtype=bool)
    m_judged = judged_reference_rows(judges, anchored.reference_folds)
    level = calibrated_level(vc.alpha, m_judged, vc.confidence)
    pvals = cross_conformal_pvalues(anchored.model_margins, judges, ref_margins, anchored.reference_folds)
    ref_p = reference_fold_pvalues(ref_margins, anchored.reference_folds)
    contrast = cv_margins is not None and cv_reference_margins is not None
    delta = vc.excess_delta / (2 if contrast else 1)
    # parts 2 and 3: the class excess on the label margin and the trigger contrasts
    excess_flags, fired = _excess_over_statistics(
        _statistics(anchored, judges, ref_labels, pvals, ref_p, ref_margins, cv_margins, cv_reference_margins, delta),
        labels, ref_labels, vc)
    # part 1's row-level flags
    row_flags, row_fdr = _row_fdr_flags(anchored, judges, pvals, ref_margins, labels, fired, level, vc)
    flagged = row_flags | excess_flags
    # part 4: the trigger expansion in the classes where the excess fired
    expanded = []
    expansion_flags = np.zeros(len(flagged), dtype=bool)
    expansion_on = features is not None and reference_features is not None and vc.expansion_level > 0
    if fired and expansion_on:
        expansion_flags, expanded = trigger_expansion(
            features, labels, reference_features, ref_labels, flagged, [d["class"] for d in fired],
            level=vc.expansion_level, n_folds=config.n_folds, seed=config.seed)
        flagged = flagged | expansion_flags
    # part 5: the label-noise floor and its cleanlab fallback
    floor_flags = np.zeros(len(flagged), dtype=bool)
    floor: NoiseFloor | None = None
    fallback: CleanlabFallback | None = None
    if contrast:
        floor_flags, floor, fallback = _noise_part(labels, ref_labels, flagged, vc, row_fdr, cv_margins,
                                                   cv_reference_margins, cv_pred_probs, cv_reference_pred_probs,
                                                   seed=config.seed)
        flagged = flagged | floor_flags
    f0 = conformal_lower_pvalues(anchored.initial_margins, anchored.initial_reference_margins) <= level
    k = max(1, int(np.floor(level * (m + 1))))
    cutoff = float(np.sort(ref_margins)[min(k, m) - 1]) if m else float("nan")
    details = ReferenceCalibratedDetails(
        p_value_level=level, clean_flag_rate_bound=level,
        clean_flag_rate_upper_90=clean_rate_upper_bound(level, m_judged, 0.9) if m_judged else 1.0,
        row_fdr=row_fdr, row_fdr_requested=vc.row_fdr, tail_min_reference=TAIL_MIN_REFERENCE,
        verdict_alpha=vc.alpha, verdict_confidence=vc.confidence, reference_rows=m,
        judges_per_row=int(judges.sum(axis=0).min()) if judges.size else 0, judged_reference_rows=m_judged,
        row_level_flagged=int(row_flags.sum()), excess_delta=vc.excess_delta, excess_fdr=vc.excess_fdr,
        class_excess=fired, class_excess_flagged=int((excess_flags & ~row_flags).sum()),
        trigger_contrast=bool(contrast), expansion_level=vc.expansion_level if expansion_on else 0,
        expansion=expanded, expansion_flagged=int(expansion_flags.sum()),
        noise_floor=floor, cleanlab_fallback=fallback, noise_floor_flagged=int(floor_flags.sum()),
        detectable_attack=_power(labels, ref_labels, vc, delta),
        probes=[{"probe": f"self-trained, reference-anchored (round {len(anchored.kept_per_round)})",
                 "flagged": int(row_flags.sum()), "margin_cutoff": cutoff}],
        reference_only_probe_would_flag=int(f0.sum()))
    return Verdict("reference_calibrated", flagged, pvals, details,
                   attack_classes=tuple(sorted({int(d["class"]) for d in fired})))
