"""The verdict in words, written from the screening summary's ``combine`` data.

``screening.verdict`` returns numbers only; this module turns them into the sentences the
CLI, the report and the compliance mapping print (docs/verdict.md has the statistics).
"""

from __future__ import annotations

from typing import Any

from screening.verdict.details import ReferenceCalibratedDetails

_NO_REFERENCE = ("no trusted reference of any kind (limited assurance): cleanlab find_label_issues on the "
                 "cross-validated probe's pred_probs (flag rate on clean "
                 "data not bounded), and the reference-free backdoor screen: in a class holding significantly more "
                 "rows far from the class's majority in the data-trained model's representation than the other "
                 "classes do, those rows, when they keep their label under superposition with other rows better "
                 "than the rest of their class and better than the other classes' far rows. It cannot "
                 "see an attack spread over several classes or one the model does not separate")


def rule_text(combine: dict[str, Any]) -> str:
    """One paragraph: the rule that flagged the rows, its figures, and what fired."""
    name = combine.get("name")
    if name == "union":
        return "flagged by any screen"
    if name == "label_noise":
        return "cleanlab find_label_issues on the label screen's pred_probs"
    if name == "cleanlab_cross_validated":
        return _NO_REFERENCE
    if name != "reference_calibrated":
        return str(name or "")
    return _reference_calibrated_text(combine)


def _reference_calibrated_text(combine: dict[str, Any]) -> str:
    c = ReferenceCalibratedDetails.from_dict(combine)
    level, upper90 = c.p_value_level, c.clean_flag_rate_upper_90
    score = ("the label margin log p(label) - log max_other p, from the reference-anchored probes that could "
             "never have trained on the row, is lower than the trusted reference rows' own held-out margins allow")
    refs = (f"{c.reference_rows} reference rows, each row judged against at least "
            f"{c.judged_reference_rows}")
    q = c.row_fdr
    if q is None:
        text = (f"flagged when {score}: cross-conformal p-value <= {level:.4g} (expected flag rate on clean rows "
                f"about {level:.2%}, and below {upper90:.2%} for this table with 90 % confidence; "
                f"alpha={c.verdict_alpha}, {refs})")
        if c.row_fdr_requested is not None:
            text += (f" (the policy asks for the false discovery rate controlled at {c.row_fdr_requested:.0%}, "
                     f"which needs at least {c.tail_min_reference} trusted reference rows: with "
                     f"{c.reference_rows} the per-row level applies, so about {level:.2%} of a clean table "
                     "is flagged; a larger reference removes that)")
    else:
        text = (f"flagged when {score}, with the false discovery rate controlled at {q:.0%} in every class "
                "(Benjamini-Hochberg within each class on the cross-conformal p-values, refined below the trusted "
                f"rows' lowest tenth by a generalised Pareto fit of that tail; {refs}): among a class's rows flagged "
                f"this way about {q:.0%} or fewer are expected to be clean, and a clean table gets almost none; or, "
                "in a class where the class-excess test below found contamination, "
                f"at p-value <= {level:.4g} (alpha={c.verdict_alpha})")
    text += ("; and, in a class holding "
            "significantly more low p-values than its own reference rows allow (Beta-Binomial test, "
            f"family-wise level {c.excess_delta}, estimated false-discovery rate <= {c.excess_fdr}), "
            "every row of that class up to the level where the excess sits")
    if c.trigger_contrast:
        text += ("; the excess is sought in the label margin and in the trigger contrast (the anchored "
                 "probe, last round and reference-only round, rejecting a label that the cross-validated probe, "
                 "trained on the data, accepts: what a learned backdoor trigger does)")
    fired = c.class_excess or []
    if fired:
        text += ": " + "; ".join(f"class {d['class']!r} up to p <= {d['level']:g} in the {d['statistic']} "
                                 f"({d['count']} rows, about {d['expected_clean']:.1f} clean expected)"
                                 for d in fired)
    if c.expansion_level:
        text += ("; in a class where the excess fired, also every other row that a classifier trained to tell the "
                 "flagged rows from the class's trusted rows scores above them (cross-conformal p-value <= "
                 f"{c.expansion_level:g}: what a backdoor's trigger rows share)")
    expanded = c.expansion or []
    if expanded:
        text += ": " + "; ".join(f"class {d['class']!r}, not tried ({d['skipped']})" if "skipped" in d
                                 else f"class {d['class']!r}, {d['flagged']} more rows" for d in expanded)
    floor = c.noise_floor
    if floor and floor.get("level"):
        text += ("; and at least as many rows as the table's label noise certifies: when the rows disagree with the "
                 "cross-validated probe more often than the trusted reference rows do (one-sided level "
                 f"{floor['level']:g}), the rows with the lowest cross-validated label margin up to the lower bound "
                 "on the noisy rows")
        if floor.get("disagreement") is not None:
            text += (f" (here {floor['disagreement']:.1%} of the rows against {floor['reference_disagreement']:.1%} "
                     f"of the reference: at least {floor['noise_rows_lower_bound']} noisy rows, "
                     f"{floor['added']} added)")
    fallback = c.cleanlab_fallback
    if fallback and fallback.get("used"):
        depth = f" (p = {floor['p_value']:.2g})" if floor and floor.get("p_value") is not None else ""
        text += ("; the rows reject their labels by more than the trusted reference rows do (a permutation test "
                 f"within each class){depth}, and cleanlab's find_label_issues on the cross-validated probe flagged "
                 f"{fallback['cleanlab_flagged']} "
                 f"rows and, judged by the reference (it flags {fallback['cleanlab_reference_flag_rate']:.1%} of the "
                 f"trusted rows), would catch more of the about {fallback['noisy_rows_estimate']:.0f} noisy rows "
                 f"(expected F1 {fallback['expected_f1_cleanlab']:.2f} against "
                 f"{fallback['expected_f1_verdict']:.2f}): its flags are added")
    groups = c.attack_screens or []
    if groups:
        text += ("; and every group the reference-free backdoor screen flagged (rows far from their class in the "
                 "data-trained model's representation, in a class holding significantly more of them than the "
                 "other classes do, that keep their label under superposition better than the rest of their class "
                 "and than the other classes' far rows): " + "; ".join(
                     f"class {d['class']!r}, {d['flagged']} rows ({d['added']} added)" if d["added"] else
                     f"class {d['class']!r}, {d['flagged']} rows, none added: the rule above had flagged "
                     f"{d.get('already', 0)} of them and the class's own flags stand" for d in groups))
    return text


def power_statement(power: list[dict]) -> str | None:
    """One sentence for the least covered class of a verdict's ``detectable_attack`` list
    (entries with ``class``, ``rows``, ``reference_rows``, ``min_attack_rows``): the class
    where a concentrated backdoor can be largest, as a share of the class, and still go
    unflagged by the class excess. Entries without rows are skipped; None when none is
    left."""
    power = [d for d in power if d.get("rows")]
    if not power:
        return None
    worst = max(power, key=lambda d: float("inf") if d["min_attack_rows"] is None
                else d["min_attack_rows"] / d["rows"])
    c, m, k = worst["class"], worst["reference_rows"], worst["min_attack_rows"]
    if k is None:
        return (f"class {c}: the class-excess test cannot flag a concentrated backdoor of any size "
                f"({m} trusted rows); add trusted rows of the class")
    return (f"the class-excess test cannot flag a backdoor concentrated on class {c} below {k} of its "
            f"{worst['rows']} rows ({k / worst['rows']:.0%}; {m} trusted rows, the least covered class): "
            "smaller ones are left to the row-level test; add trusted rows of the class")


def with_rule_text(summary: dict[str, Any]) -> dict[str, Any]:
    """The screening summary with ``combine.text`` filled in (in place; returned)."""
    combine = summary.get("combine")
    if isinstance(combine, dict) and "name" in combine:
        combine["text"] = rule_text(combine)
    return summary
