"""The decision policy: licence verdict + GX outcome + screen results -> one decision.

Outcomes, from best to worst: ``approve`` (as is), ``trim`` (approve without the
flagged rows), ``quarantine`` (a person must review), ``reject``. Every rule that
fired is kept in the rationale, so a reviewer sees all the reasons, not only the
first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dataward.errors import BadInput
from lineage.models import STATUS_APPROVED, STATUS_QUARANTINED, STATUS_REJECTED, STATUS_TRIMMED

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "defaults" / "policy.yaml"
OUTCOMES = ("approve", "trim", "quarantine", "reject")
_SEVERITY = {o: i for i, o in enumerate(OUTCOMES)}
# the version's status after each outcome
STATUS_FOR = {"approve": STATUS_APPROVED, "trim": STATUS_TRIMMED,
              "quarantine": STATUS_QUARANTINED, "reject": STATUS_REJECTED}


@dataclass(frozen=True)
class CanaryPolicy:
    """The canary self-test (``canary:`` in the policy file)."""

    enabled: bool = True
    fraction: float = 0.02
    min_per_kind: int = 10
    max_fraction: float = 0.10
    seed: int = 0
    min_recall: float = 0.8
    on_below_floor: str = "quarantine"


@dataclass(frozen=True)
class PiiPolicy:
    """Personal data (``pii:``): the categories that hold a version, and what a hit or a
    failed scan does."""

    quarantine_on: tuple[str, ...] = ("payment_card", "national_id", "iban")
    action: str = "quarantine"
    on_scan_failure: str = "quarantine"


@dataclass(frozen=True)
class LeakagePolicy:
    """Evaluation-set leakage (``leakage:``)."""

    on_eval_exact_duplicate: str = "quarantine"
    on_eval_near_duplicate: str = "report"
    eval_near_max_fraction: float = 0.01


@dataclass(frozen=True)
class VerdictPolicy:
    """The screens' verdict settings the policy may set (``screening.verdict_alpha``,
    ``screening.verdict_confidence``, ``screening.row_fdr``): fields of
    :class:`screening.VerdictConfig`, whose defaults they take."""

    alpha: float
    confidence: float | None
    row_fdr: float | None

    def config_fields(self) -> dict[str, Any]:
        """Keyword arguments for :class:`screening.VerdictConfig`."""
        return {"alpha": self.alpha, "confidence": self.confidence, "row_fdr": self.row_fdr}


@dataclass(frozen=True)
class ReviewPolicy:
    """Sign-off (``review:``; see defaults/policy.yaml)."""

    reviewers: tuple[str, ...] = ()
    separation_of_duties: bool = True
    override_min_reason: int = 20
    override_reviewers: int = 1
    timeout_hours: float = 72.0
    on_timeout: str = "quarantine"


@dataclass(frozen=True)
class TrustChainPolicy:
    """The trust chain (:mod:`dataward.governance.reference`): on or off, and how many
    trusted rows of a class it keeps (None: every row). 140 trusted rows of a class let
    the class-excess test see a backdoor of about 5 % of that class (about 7 / share rows
    are needed, docs/verdict.md); a class keeps all its snapshot rows when it has fewer."""

    enabled: bool = True
    rows_per_class: int | None = 140


@dataclass(frozen=True)
class Policy:
    version: str
    digest: str
    licence_on_disallowed: str
    validation_on_failure: str
    validation_on_missing_suite: str
    max_trim_fraction: float
    reject_above_fraction: float
    on_screen_error: str
    on_not_applicable: str = "quarantine"
    on_no_reference: str = "quarantine"
    # rows flagged only as label noise that have a suggested label (cleanlab's): remove them
    # (trim) or relabel them in the published snapshot
    on_label_noise: str = "remove"
    raw: dict[str, Any] = field(default_factory=dict)
    canary: CanaryPolicy = field(default_factory=CanaryPolicy)
    pii: PiiPolicy = field(default_factory=PiiPolicy)
    leakage: LeakagePolicy = field(default_factory=LeakagePolicy)
    verdict: VerdictPolicy = field(default_factory=lambda: _verdict_defaults())
    review: ReviewPolicy = field(default_factory=ReviewPolicy)
    trust_chain: TrustChainPolicy = field(default_factory=TrustChainPolicy)


def _verdict_defaults() -> VerdictPolicy:
    """The verdict settings a policy leaves out: the screening engine's own defaults."""
    from screening.config import VerdictConfig

    return VerdictPolicy(alpha=VerdictConfig.alpha, confidence=VerdictConfig.confidence, row_fdr=VerdictConfig.row_fdr)


def load_policy(path: str | Path | None = None) -> Policy:
    path = Path(path) if path else DEFAULT_POLICY
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text) or {}
    except OSError as exc:
        raise BadInput(f"cannot read decision policy {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise BadInput(f"decision policy {path} is not valid YAML") from None
    if not isinstance(raw, dict):
        raise BadInput(f"decision policy {path} must be a mapping")

    def get(section: str, key: str, default, allowed=None):
        value = (raw.get(section) or {}).get(key, default)
        if allowed and value not in allowed:
            raise BadInput(f"decision policy {path}: {section}.{key} must be one of {', '.join(allowed)}")
        return value

    judged = ("quarantine", "reject")
    max_trim = float(get("screening", "max_trim_fraction", 0.15))
    reject_above = float(get("screening", "reject_above_fraction", 0.40))
    if not 0 <= max_trim <= reject_above <= 1:
        raise BadInput(f"decision policy {path}: need 0 <= max_trim_fraction <= reject_above_fraction <= 1")
    cd = CanaryPolicy()
    canary = CanaryPolicy(
        enabled=bool(get("canary", "enabled", cd.enabled)),
        fraction=float(get("canary", "fraction", cd.fraction)),
        min_per_kind=int(get("canary", "min_per_kind", cd.min_per_kind)),
        max_fraction=float(get("canary", "max_fraction", cd.max_fraction)),
        seed=int(get("canary", "seed", cd.seed)),
        min_recall=float(get("canary", "min_recall", cd.min_recall)),
        on_below_floor=get("canary", "on_below_floor", cd.on_below_floor, judged),
    )
    if not 0 <= canary.min_recall <= 1 or not 0 < canary.fraction <= canary.max_fraction <= 0.5:
        raise BadInput(f"decision policy {path}: need 0 <= canary.min_recall <= 1 and "
                       "0 < canary.fraction <= canary.max_fraction <= 0.5")
    defaults = _verdict_defaults()
    a = get("screening", "verdict_alpha", defaults.alpha)
    c = get("screening", "verdict_confidence", defaults.confidence)
    if (not isinstance(a, (int, float)) or isinstance(a, bool) or not 0 < a < 0.5
            or c is not None and (not isinstance(c, (int, float)) or isinstance(c, bool) or not 0.5 <= c < 1)):
        raise BadInput(f"decision policy {path}: need 0 < screening.verdict_alpha < 0.5 and "
                       "screening.verdict_confidence null or in [0.5, 1)")
    q = get("screening", "row_fdr", defaults.row_fdr)
    if q is not None and (not isinstance(q, (int, float)) or isinstance(q, bool) or not 0 < q < 0.5):
        raise BadInput(f"decision policy {path}: need screening.row_fdr null or 0 < row_fdr < 0.5")
    verdict = VerdictPolicy(alpha=float(a), confidence=None if c is None else float(c),
                            row_fdr=None if q is None else float(q))
    pd_ = PiiPolicy()
    pii_on = get("pii", "quarantine_on", list(pd_.quarantine_on))
    if not isinstance(pii_on, list) or not all(isinstance(t, str) for t in pii_on):
        raise BadInput(f"decision policy {path}: pii.quarantine_on must be a list of tag names")
    pii = PiiPolicy(quarantine_on=tuple(pii_on), action=get("pii", "action", pd_.action, judged),
                    on_scan_failure=get("pii", "on_scan_failure", pd_.on_scan_failure, judged))
    acting = ("report", "quarantine", "reject")
    ld = LeakagePolicy()
    leakage = LeakagePolicy(
        on_eval_exact_duplicate=get("leakage", "on_eval_exact_duplicate", ld.on_eval_exact_duplicate, acting),
        on_eval_near_duplicate=get("leakage", "on_eval_near_duplicate", ld.on_eval_near_duplicate, acting),
        eval_near_max_fraction=float(get("leakage", "eval_near_max_fraction", ld.eval_near_max_fraction)),
    )
    review = _review_settings(raw, path, get)
    td = TrustChainPolicy()
    chain = get("screening", "trust_chain", td.enabled)
    per_class = get("screening", "trust_chain_rows_per_class", td.rows_per_class)
    if not isinstance(chain, bool) or per_class is not None and (
            not isinstance(per_class, int) or isinstance(per_class, bool) or per_class < 1):
        raise BadInput(f"decision policy {path}: need screening.trust_chain true|false and "
                       "screening.trust_chain_rows_per_class null or an integer >= 1")
    return Policy(
        version=str(raw.get("version", "unversioned")),
        digest=hashlib.sha256(text.encode()).hexdigest(),
        licence_on_disallowed=get("licence", "on_disallowed", "quarantine", judged),
        validation_on_failure=get("validation", "on_failure", "quarantine", judged),
        validation_on_missing_suite=get("validation", "on_missing_suite", "quarantine", judged),
        max_trim_fraction=max_trim,
        reject_above_fraction=reject_above,
        on_screen_error=get("screening", "on_screen_error", "quarantine", judged),
        on_not_applicable=get("screening", "on_not_applicable", "quarantine",
                              ("approve", "quarantine", "reject")),
        on_no_reference=get("screening", "on_no_reference", "quarantine", ("approve", "quarantine")),
        on_label_noise=get("screening", "on_label_noise", "remove", ("remove", "relabel")),
        raw=raw, canary=canary, pii=pii, leakage=leakage, verdict=verdict, review=review,
        trust_chain=TrustChainPolicy(enabled=chain, rows_per_class=per_class),
    )


def _review_settings(raw: dict[str, Any], path: Path, get) -> ReviewPolicy:
    d = ReviewPolicy()
    reviewers = get("review", "reviewers", list(d.reviewers))
    if not isinstance(reviewers, list) or not all(isinstance(r, str) and r.strip() for r in reviewers):
        raise BadInput(f"decision policy {path}: review.reviewers must be a list of identities")
    sod = get("review", "separation_of_duties", d.separation_of_duties)
    min_reason = get("review", "override_min_reason", d.override_min_reason)
    n = get("review", "override_reviewers", d.override_reviewers)
    hours = get("review", "timeout_hours", d.timeout_hours)
    if (not isinstance(sod, bool) or not isinstance(min_reason, int) or isinstance(min_reason, bool)
            or min_reason < 1 or n not in (1, 2) or not isinstance(hours, (int, float))
            or isinstance(hours, bool) or hours <= 0):
        raise BadInput(f"decision policy {path}: need review.separation_of_duties true|false, "
                       "review.override_min_reason >= 1, review.override_reviewers 1|2 and "
                       "review.timeout_hours > 0")
    return ReviewPolicy(reviewers=tuple(r.strip() for r in reviewers), separation_of_duties=sod,
                        override_min_reason=min_reason, override_reviewers=n, timeout_hours=float(hours),
                        on_timeout=get("review", "on_timeout", d.on_timeout, ("quarantine", "reject")))


@dataclass
class PolicyDecision:
    outcome: str
    reasons: list[dict[str, str]]
    excluded_row_ids: list[int]
    policy_version: str
    # [row_id, new label (the class name as text)]: rows kept with cleanlab's suggested label
    relabels: list[list[Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reasons": self.reasons,
                "excluded_rows": len(self.excluded_row_ids), "relabelled_rows": len(self.relabels),
                "policy_version": self.policy_version}


def apply_policy(policy: Policy, *, licence: dict[str, Any] | None, validation: dict[str, Any] | None,
                 screening: dict[str, Any] | None, flagged_row_ids: list[int], n_rows: int,
                 pii_tags: list[dict[str, Any]] | None = None, pii_scan: dict[str, Any] | None = None,
                 suggested_labels: dict[int, str] | None = None, relabel_blocked: str | None = None
                 ) -> PolicyDecision:
    """Apply ``policy``; each argument is the recorded output of that stage (None = not run).

    ``suggested_labels``: row id -> the label cleanlab suggests, for the flagged rows the
    verdict holds to be label noise only (the screen's ``suggested_label`` column). With
    ``screening.on_label_noise: relabel`` those rows are kept, relabelled, instead of removed;
    the flagged-fraction limits count them all the same (every flagged row is a change).
    ``relabel_blocked``: why this version's rows cannot be relabelled (its label type), said
    in the trim rule when the policy asks for relabelling.
    Only a screen that had a trusted reference relabels: without one, a third to two thirds
    of the suggestions fall on clean rows and a model retrained on the relabelled table
    loses up to 6.5 points against removal (``benchmarks/bench_detection.py``,
    ``dAcc_relabel``), so those rows are removed.

    ``pii_tags``: the version's column tags (:func:`lineage.tags.column_tags`);
    ``pii_scan``: ``{"scanned", "failed"}`` (None: not known, no rule fires).
    """
    reasons: list[dict[str, str]] = []

    def rule(outcome: str, check: str, why: str) -> None:
        reasons.append({"outcome": outcome, "check": check, "why": why})

    _input_rules(policy, licence, validation, rule)
    excluded, relabels = _screening_rules(policy, screening, flagged_row_ids, n_rows, suggested_labels,
                                          relabel_blocked, rule)
    if screening is not None and screening.get("status") == "done":
        if not screening.get("used_reference", True):
            rule(policy.on_no_reference, "screening",
                 "limited assurance: screened without a trusted reference of any kind, so the verdict's flag "
                 "rates are not calibrated and backdoors that a model learns from the data itself can pass; "
                 "confirm a reference (dataward reference sample / confirm) or approve after review")
        _self_test_rules(policy, screening, rule)
    _pii_rules(policy, pii_tags, pii_scan, rule)
    outcome = max((r["outcome"] for r in reasons), key=_SEVERITY.__getitem__, default="approve")
    if outcome not in ("approve", "trim"):
        excluded, relabels = [], []
    return PolicyDecision(outcome, reasons, excluded, policy.version, relabels)


def _input_rules(policy: Policy, licence: dict[str, Any] | None, validation: dict[str, Any] | None, rule) -> None:
    """The licence verdict and the validation outcome."""
    if licence is None or not licence.get("allowed_for_training"):
        rule(policy.licence_on_disallowed, "licence",
             (licence or {}).get("reason", "no licence verdict recorded"))
    if validation is None:
        rule("quarantine", "validation", "the validation stage has not recorded a result")
    elif validation.get("status") == "missing_suite":
        rule(policy.validation_on_missing_suite, "validation", validation.get("reason", "no suite"))
    elif not validation.get("success"):
        failed = validation.get("failed", [])
        rule(policy.validation_on_failure, "validation",
             f"{len(failed)} expectation(s) failed: " + "; ".join(failed[:5]))


def _screening_rules(policy: Policy, screening: dict[str, Any] | None, flagged_row_ids: list[int], n_rows: int,
                     suggested_labels: dict[int, str] | None, relabel_blocked: str | None,
                     rule) -> tuple[list[int], list[list[Any]]]:
    """The screen stage's outcome and the flagged share against the trim and reject
    limits. Returns (row ids to exclude, [row id, new label] to relabel) for a trim."""
    if screening is None:
        rule("quarantine", "screening", "the screening stage has not recorded a result")
        return [], []
    if screening.get("status") == "error":
        rule(policy.on_screen_error, "screening", screening.get("reason", "screening failed"))
        return [], []
    if screening.get("status") == "not_applicable":
        rule(policy.on_not_applicable, "screening",
             "screens not applicable: " + screening.get("reason", "the table has no class labels"))
        return [], []
    frac = len(flagged_row_ids) / n_rows if n_rows else 0.0
    pct = f"{len(flagged_row_ids)} of {n_rows} rows ({frac:.1%}) flagged"
    if frac > policy.reject_above_fraction:
        rule("reject", "screening", f"{pct}, above the reject threshold {policy.reject_above_fraction:.0%}")
        return [], []
    if frac > policy.max_trim_fraction:
        rule("quarantine", "screening", f"{pct}, above the automatic trim limit {policy.max_trim_fraction:.0%}")
        return [], []
    if not flagged_row_ids:
        rule("approve", "screening", "no rows flagged")
        return [], []
    excluded = sorted(int(i) for i in flagged_row_ids)
    relabels: list[list[Any]] = []
    why_not = None  # why the policy's relabelling does not apply to this version
    if policy.on_label_noise == "relabel":
        if relabel_blocked:
            why_not = f"not relabelled: {relabel_blocked}"
        elif suggested_labels and not screening.get("used_reference", True):
            why_not = ("the policy relabels label noise only with a trusted reference: without one the "
                       "suggested labels are too often wrong")
        elif suggested_labels:
            relabels = [[i, str(suggested_labels[i])] for i in excluded if i in suggested_labels]
            excluded = [i for i in excluded if i not in suggested_labels]
    if relabels:
        rule("trim", "screening", f"{pct}: approved with {len(relabels)} of them relabelled to the label "
             f"cleanlab suggests (label noise only) and {len(excluded)} removed")
    else:
        rule("trim", "screening", f"{pct}: approved without them" + (f" ({why_not})" if why_not else ""))
    return excluded, relabels


def _self_test_rules(policy: Policy, screening: dict[str, Any], rule) -> None:
    """Canary recall floor and evaluation-set leakage (outputs of the screen stage)."""
    canary = screening.get("canary") or {}
    floor = policy.canary.min_recall
    if policy.canary.enabled and canary.get("status") == "done" and canary.get("recall") is not None:
        recall = float(canary["recall"])
        if recall < floor:
            # the run planted only the kinds it claims to catch (screening/canary.py): name them and why
            caught = "; ".join(f"{k} {v['caught']} of {v['n']}"
                               for k, v in (canary["flagged"].get("per_kind") or {}).items())
            notes = "; ".join(canary.get("notes") or [])
            rule(policy.canary.on_below_floor, "canary",
                 f"screens not trustworthy on this data: canary recall {recall:.2f} below floor {floor:.2f} "
                 f"({canary['flagged']['caught']} of {canary['flagged']['n']} planted canaries flagged"
                 + (f": {caught}" if caught else "") + (f"; {notes}" if notes else "") + ")")
    leak = screening.get("leakage") or {}
    totals = leak.get("totals") or {}
    exact = int(totals.get("eval_exact_train_rows") or 0)
    action = policy.leakage.on_eval_exact_duplicate
    if exact and action != "report":
        rule(action, "leakage", f"{exact} training row(s) are exact copies of evaluation rows "
             f"({int(totals.get('eval_exact_eval_rows') or 0)} evaluation row(s) leaked)")
    near_action = policy.leakage.on_eval_near_duplicate
    if near_action != "report":
        n_eval = sum(int(e.get("n_rows") or 0) for e in (leak.get("evaluation") or {}).values())
        near = int(totals.get("eval_near_eval_rows") or 0)
        limit = policy.leakage.eval_near_max_fraction
        if n_eval and near / n_eval > limit:
            rule(near_action, "leakage", f"{near} of {n_eval} evaluation rows have a near duplicate in the "
                 f"training data ({near / n_eval:.1%}, above {limit:.0%})")


def _pii_rules(policy: Policy, tags: list[dict[str, Any]] | None, scan: dict[str, Any] | None, rule) -> None:
    if scan is not None and scan.get("failed"):
        rule(policy.pii.on_scan_failure, "personal data", f"the personal-data scan failed: {scan['failed']}")
    watched = set(policy.pii.quarantine_on)
    hits = [t for t in tags or [] if t.get("category", t["tag"].split(":")[-1]) in watched
            or t["tag"] in watched]
    if hits:
        listed = ", ".join(f"{t['column']} ({t['tag']})" for t in hits[:6])
        rule(policy.pii.action, "personal data",
             f"column(s) hold personal data the policy does not admit: {listed}"
             + (f" and {len(hits) - 6} more" if len(hits) > 6 else ""))
