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

DEFAULT_POLICY = Path(__file__).with_name("defaults") / "policy.yaml"
OUTCOMES = ("approve", "trim", "quarantine", "reject")
_SEVERITY = {o: i for i, o in enumerate(OUTCOMES)}


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
    raw: dict[str, Any] = field(default_factory=dict)


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
    return Policy(
        version=str(raw.get("version", "unversioned")),
        digest=hashlib.sha256(text.encode()).hexdigest(),
        licence_on_disallowed=get("licence", "on_disallowed", "quarantine", judged),
        validation_on_failure=get("validation", "on_failure", "quarantine", judged),
        validation_on_missing_suite=get("validation", "on_missing_suite", "quarantine", judged),
        max_trim_fraction=max_trim,
        reject_above_fraction=reject_above,
        on_screen_error=get("screening", "on_screen_error", "quarantine", judged),
        raw=raw,
    )


@dataclass
class Decision:
    outcome: str
    reasons: list[dict[str, str]]
    excluded_row_ids: list[int]
    policy_version: str

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reasons": self.reasons,
                "excluded_rows": len(self.excluded_row_ids), "policy_version": self.policy_version}


def decide(policy: Policy, *, licence: dict[str, Any] | None, validation: dict[str, Any] | None,
           screening: dict[str, Any] | None, flagged_row_ids: list[int], n_rows: int) -> Decision:
    """Apply ``policy``; each argument is the recorded output of that stage (None = not run)."""
    reasons: list[dict[str, str]] = []

    def rule(outcome: str, check: str, why: str) -> None:
        reasons.append({"outcome": outcome, "check": check, "why": why})

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
    excluded: list[int] = []
    if screening is None:
        rule("quarantine", "screening", "the screening stage has not recorded a result")
    elif screening.get("status") == "error":
        rule(policy.on_screen_error, "screening", screening.get("reason", "screening failed"))
    else:
        frac = len(flagged_row_ids) / n_rows if n_rows else 0.0
        pct = f"{len(flagged_row_ids)} of {n_rows} rows ({frac:.1%}) flagged"
        if frac > policy.reject_above_fraction:
            rule("reject", "screening", f"{pct}, above the reject threshold {policy.reject_above_fraction:.0%}")
        elif frac > policy.max_trim_fraction:
            rule("quarantine", "screening",
                 f"{pct}, above the automatic trim limit {policy.max_trim_fraction:.0%}")
        elif flagged_row_ids:
            rule("trim", "screening", f"{pct}: approved without them")
            excluded = sorted(int(i) for i in flagged_row_ids)
        else:
            rule("approve", "screening", "no rows flagged")
    outcome = max((r["outcome"] for r in reasons), key=_SEVERITY.__getitem__, default="approve")
    if outcome not in ("approve", "trim"):
        excluded = []
    return Decision(outcome, reasons, excluded, policy.version)
