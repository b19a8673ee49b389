"""A reviewer's sign-off on a quarantined version: approve (then publish) or reject.

The sign-off, the version's new status and the audit entry are written in one
transaction, with the version row locked, so two reviewers acting at once cannot
both succeed; then an approval is published through the normal publish stage
(itself idempotent). Repeating the same sign-off is a no-op that reports the
existing one; a contrary sign-off on an already reviewed version is refused.

The audit payload records who, when, why, through which door (``via``: cli,
airflow-ui, airflow-hitl) and the SHA-256 of the report HTML that was reviewed; the
sign-off also lands in the ``decisions`` table (``decided_by = reviewer``), next to the
policy's decision. Who may knock at each door is checked there (the CLI:
:func:`authorize_cli`; Airflow: its auth manager); what any reviewer may sign is checked
here, from the policy's ``review`` section (separation of duties, override reason, two
reviewers), and every refusal is audited as ``review-refused``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from dataward.context import Context
from dataward.errors import BadInput, DatawardError
from dataward.governance.policy import ReviewPolicy, load_policy
from dataward.stage_results import finished
from lineage import audit
from lineage.ingest import resolve
from lineage.models import (
    STATUS_APPROVED,
    STATUS_REJECTED,
    Dataset,
    DatasetVersion,
    Decision,
    PipelineRun,
)

AWAITING = "quarantined"
APPROVE, REJECT = "approve", "reject"
# the first of two approvals an override needs (``review.override_reviewers: 2``)
FIRST_APPROVAL = "first-approval"


class Publisher(Protocol):
    """Publishes an approved version and returns the publish stage's output (idempotent).

    The doors wire in :func:`dataward.stages.publish.publish_approved`: governance sits
    below the stages and does not import them."""

    def __call__(self, ctx: Context, ref: str, *, reviewer: str,
                 policy: dict[str, Any] | None) -> Mapping[str, Any]: ...


class ReviewConflict(DatawardError):
    """The version cannot take this sign-off (not awaiting review, stale report...)."""


@dataclass
class SignOff:
    ref: str
    outcome: str
    reviewer: str
    reason: str
    report_sha256: str
    at: str
    created: bool
    audit_entry: int | None
    published: Mapping[str, Any] | None
    approvals: list[str] | None = None
    approvals_needed: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def awaiting_review(ctx: Context) -> list[dict[str, Any]]:
    """Versions a reviewer must act on: quarantined, with no sign-off yet."""
    with ctx.session(read_only=True) as s:
        versions = s.execute(select(DatasetVersion).join(Dataset)
                             .where(DatasetVersion.status == AWAITING)
                             .order_by(DatasetVersion.created_at, Dataset.name)).scalars().all()
        reviews = s.execute(select(Decision.version_id, Decision.outcome, Decision.decided_by)
                            .where(Decision.decided_by != "policy").order_by(Decision.id)).all()
        reviewed = {vid for vid, outcome, _ in reviews if outcome != FIRST_APPROVAL}
        firsts: dict[int, list[str]] = {}
        for vid, outcome, who in reviews:
            if outcome == FIRST_APPROVAL:
                firsts.setdefault(vid, []).append(who)
        rows = [(v.ref, v.status_reason, v.row_count, v.licence.spdx_expression if v.licence else None,
                 v.created_at, firsts.get(v.id, [])) for v in versions if v.id not in reviewed]
    out = []
    for ref, reason, rows_n, licence, created, approvals in rows:
        decision = finished(ctx, ref, "decide")[2] or {}
        report = finished(ctx, ref, "report")[2] or {}
        out.append({"ref": ref, "status_reason": reason, "rows": rows_n, "licence": licence,
                    "created_at": created.isoformat(timespec="seconds") if created else None,
                    "outcome": decision.get("outcome"), "reasons": decision.get("reasons") or [],
                    "n_flagged": decision.get("n_flagged"),
                    "report": report.get("html"), "report_sha256": report.get("sha256"),
                    "report_dir": ref.replace("@", "-v"), "approvals": approvals})
    return out


def current_report(ctx: Context, ref: str) -> dict[str, Any]:
    """The recorded report of ``ref``, checked against the file on disk."""
    _, ref, report = finished(ctx, ref, "report")
    if not report or not report.get("html"):
        raise ReviewConflict(f"{ref} has no report yet: run the report stage before reviewing")
    path = Path(report["html"])
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        raise ReviewConflict(f"the report of {ref} is missing at {path}") from None
    if actual != report["sha256"]:
        raise ReviewConflict(f"the report of {ref} was altered after it was written "
                             f"(recorded {report['sha256'][:12]}, found {actual[:12]})")
    return report


class ReviewRefused(DatawardError):
    """The policy or the door refuses this reviewer's sign-off (always audited)."""


def review_policy(ctx: Context) -> ReviewPolicy:
    """The ``review`` section of the decision policy in force."""
    return load_policy(ctx.settings.decision_policy).review


def refuse(ctx: Context, ref: str, *, actor: str, why: str, via: str,
           outcome: str | None = None, error: type[DatawardError] = ReviewRefused) -> DatawardError:
    """Audit a refused sign-off (``review-refused``) and return the error to raise."""
    with ctx.session() as s:
        audit.append(s, actor=actor or "(unknown)", action="review-refused", subject=ref,
                     payload={"outcome": outcome, "via": via, "why": why})
    exc = error(why)
    exc.audited = True
    return exc


def authorize_cli(ctx: Context, ref: str, *, actor: str, reviewer: str | None, outcome: str) -> str:
    """The CLI's door: the acting identity must be one of the reviewers the policy names.

    ``actor``: who runs the command (``DATAWARD_ACTOR``, else the OS user); ``reviewer``: the
    ``--reviewer`` given, if any, which must be that same identity. Returns the identity that
    signs; raises :class:`ReviewRefused` (audited) otherwise.
    """
    actor = (actor or "").strip()
    if reviewer and reviewer.strip() != actor:
        raise refuse(ctx, ref, actor=actor, outcome=outcome, via="cli",
                     why=f"you act as {actor!r} (DATAWARD_ACTOR or the OS user); --reviewer "
                         f"{reviewer.strip()!r} would sign as someone else")
    named = review_policy(ctx).reviewers
    if actor not in named:
        why = (f"{actor!r} is not a reviewer named by the decision policy (review.reviewers: "
               + (", ".join(named) if named else "none named") + ")")
        raise refuse(ctx, ref, actor=actor, outcome=outcome, via="cli", why=why)
    return actor


def originators(s, version) -> set[str]:
    """Who imported the version or triggered a pipeline run on it."""
    names = {version.provenance.acquired_by} if version.provenance else set()
    names |= set(s.execute(select(PipelineRun.triggered_by).where(
        PipelineRun.version_id == version.id, PipelineRun.triggered_by.is_not(None))).scalars())
    return {n for n in names if n}


def sign_off(ctx: Context, ref: str, *, outcome: str, reviewer: str, reason: str, publish: Publisher,
             report_sha256: str | None = None, via: str = "cli") -> SignOff:
    """Record ``reviewer``'s ``outcome`` (approve | reject) on quarantined ``ref``.

    ``report_sha256``: the hash of the report the reviewer read; when given it must
    match the recorded report (a reviewer never signs a report they did not see).
    The policy's ``review`` section applies whichever door was used: with
    ``separation_of_duties`` whoever imported or triggered the version may not sign it;
    approving (overriding the quarantine) needs a reason of ``override_min_reason``
    characters and, with ``override_reviewers: 2``, a second approval by another reviewer
    (the first is recorded as ``first-approval``). Every refusal is audited
    (``review-refused``). An approval publishes the version through ``publish`` (the
    policy's excluded rows if its decision was a trim, else all rows). Returns the
    :class:`SignOff`.
    """
    reviewer = (reviewer or "").strip()
    try:
        return _sign_off(ctx, ref, outcome=outcome, reviewer=reviewer, reason=reason, publish=publish,
                         report_sha256=report_sha256, via=via)
    except (ReviewRefused, ReviewConflict, BadInput) as exc:
        if getattr(exc, "audited", False):
            raise
        raise refuse(ctx, ref, actor=reviewer, outcome=outcome, via=via, why=str(exc),
                     error=type(exc)) from None


def _sign_off(ctx: Context, ref: str, *, outcome: str, reviewer: str, reason: str, publish: Publisher,
              report_sha256: str | None, via: str) -> SignOff:
    if outcome not in (APPROVE, REJECT):
        raise BadInput(f"a sign-off is approve or reject, not {outcome!r}")
    reason = (reason or "").strip()
    if not reviewer:
        raise BadInput("a sign-off needs the reviewer's identity")
    if not reason:
        raise BadInput("a sign-off needs a reason")
    rules = review_policy(ctx)
    report = current_report(ctx, ref)
    if report_sha256 and report_sha256 != report["sha256"]:
        raise ReviewConflict(f"the report you reviewed ({report_sha256[:12]}) is not the current "
                             f"report of {ref} ({report['sha256'][:12]}): reload it and review again")
    policy = finished(ctx, ref, "decide")[2] or {}
    with ctx.session() as s:
        v = resolve(s, ref)
        ref = v.ref
        # lock the version row: concurrent sign-offs serialize here (SQLite: BEGIN IMMEDIATE)
        v = s.execute(select(DatasetVersion).where(DatasetVersion.id == v.id)
                      .with_for_update()).scalars().one()
        reviews = s.execute(select(Decision).where(Decision.version_id == v.id,
                                                   Decision.decided_by != "policy")
                            .order_by(Decision.id)).scalars().all()
        final = [d for d in reviews if d.outcome != FIRST_APPROVAL]
        firsts = [d for d in reviews if d.outcome == FIRST_APPROVAL]
        if final:
            previous = final[-1]
            if previous.outcome != outcome:
                raise ReviewConflict(f"{ref} was already signed off: {previous.outcome} by "
                                     f"{previous.decided_by}")
            r = previous.rationale or {}
            result = SignOff(ref, outcome, previous.decided_by, r.get("reason", ""),
                             r.get("report_sha256", ""), r.get("at", ""), False,
                             r.get("audit_entry"), None)
            policy = None  # re-read at publish time
        else:
            if v.status != AWAITING:
                raise ReviewConflict(f"{ref} is {v.status}, not awaiting review "
                                     f"(only quarantined versions are signed off)")
            if rules.separation_of_duties:
                own = {n.casefold() for n in originators(s, v)}
                if reviewer.casefold() in own:
                    raise ReviewRefused(f"separation of duties: {reviewer} imported or triggered {ref} "
                                        f"and may not sign it off; another reviewer must")
            needed = rules.override_reviewers if outcome == APPROVE else 1
            if outcome == APPROVE and len(reason) < rules.override_min_reason:
                raise ReviewRefused(f"approving quarantined {ref} overrides the policy: write why, in at "
                                    f"least {rules.override_min_reason} characters")
            if outcome == APPROVE and any(d.decided_by.casefold() == reviewer.casefold() for d in firsts):
                raise ReviewRefused(f"{reviewer} already approved {ref}: overriding its quarantine needs "
                                    f"{needed} distinct reviewers")
            approvers = [d.decided_by for d in firsts] + [reviewer] if outcome == APPROVE else [reviewer]
            complete = len(approvers) >= needed
            new_status = (STATUS_APPROVED if outcome == APPROVE else STATUS_REJECTED) if complete else v.status
            entry = audit.append(s, actor=reviewer, action="review", subject=ref, payload={
                "outcome": outcome if complete else FIRST_APPROVAL, "reviewer": reviewer,
                "reason": reason, "via": via, "approvals": approvers, "approvals_needed": needed,
                "report_sha256": report["sha256"], "report": report["html"],
                "previous_status": v.status, "new_status": new_status,
                "policy_outcome": policy.get("outcome"), "policy_version": policy.get("policy_version")})
            rationale = {"reviewer": reviewer, "reason": reason, "report_sha256": report["sha256"],
                         "at": entry.at, "via": via, "audit_entry": entry.id, "approvals": approvers,
                         "policy_outcome": policy.get("outcome")}
            s.add(Decision(version_id=v.id, outcome=outcome if complete else FIRST_APPROVAL,
                           decided_by=reviewer, policy_version=policy.get("policy_version"),
                           rationale=rationale))
            v.status = new_status
            v.status_reason = (f"{outcome} by {', '.join(approvers)}: {reason}" if complete else
                               f"approved by {reviewer} ({len(approvers)} of {needed}): {reason}")
            result = SignOff(ref, outcome if complete else FIRST_APPROVAL, reviewer, reason,
                             report["sha256"], entry.at, True, entry.id, None, approvals=approvers,
                             approvals_needed=needed)
    if result.outcome == APPROVE:
        result.published = publish(ctx, ref, reviewer=result.reviewer, policy=policy)
    return result
