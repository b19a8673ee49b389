"""Decide stage: the policy turns licence, validation and screens into one decision."""

from __future__ import annotations

from dataward.artifacts import flagged_row_ids, suggested_labels
from dataward.context import Context
from dataward.governance.policy import STATUS_FOR, apply_policy, load_policy
from dataward.stage_results import finished, record, version_schema
from dataward.stages.outputs import DecideOutput, PiiStatus, ScreenStageOutput, ValidateOutput
from dataward.stages.publish import relabelable
from lineage import tags
from lineage.models import DatasetVersion, Decision


def record_decision(ctx: Context, ref: str, *, run_id: str | None = None) -> DecideOutput:
    """Record the policy's decision for ``ref``; idempotent. Returns the decision dict."""
    version_id, ref, done = finished(ctx, ref, "decide")
    if done is not None:
        return done
    policy = load_policy(ctx.settings.decision_policy)
    validation: ValidateOutput | None = finished(ctx, ref, "validate")[2]
    screening: ScreenStageOutput | None = finished(ctx, ref, "screen")[2]
    with ctx.session() as s:
        v = s.get(DatasetVersion, version_id)
        lic = v.licence
        licence = None if lic is None else {"allowed_for_training": lic.allowed_for_training,
                                            "reason": lic.verdict_reason}
        n_rows, label_col = v.row_count, v.label_column
        pii_tags = tags.column_tags(s, version_id, source="pii-scan")
        pii_scan = tags.scan_status(s, version_id)
    flagged = flagged_row_ids(screening) if screening else []
    suggested, blocked = {}, None
    if screening and policy.on_label_noise == "relabel":
        schema = version_schema(ctx, version_id) if label_col else None
        label_type = schema.field(label_col).type if schema is not None and label_col in schema.names else None
        if label_type is not None and relabelable(label_type):
            suggested = suggested_labels(screening)
        else:
            blocked = f"labels of type {label_type} cannot be relabelled"
    decision = apply_policy(policy, licence=licence, validation=validation, screening=screening,
                            flagged_row_ids=flagged, n_rows=n_rows, pii_tags=pii_tags,
                            pii_scan=pii_scan if pii_scan["scanned"] else None, suggested_labels=suggested,
                            relabel_blocked=blocked)
    output = DecideOutput(**decision.to_dict(), policy_digest=policy.digest, n_rows=n_rows,
                          n_flagged=len(flagged), excluded_row_ids=decision.excluded_row_ids,
                          relabels=decision.relabels,
                          pii=PiiStatus(scanned=pii_scan["scanned"], failed=pii_scan["failed"], tags=pii_tags))
    reason = "; ".join(r["why"] for r in decision.reasons
                       if r["outcome"] in ("quarantine", "reject")) or None

    def add_decision(s, v):
        s.add(Decision(version_id=v.id, run_id=run_id, outcome=decision.outcome, decided_by="policy",
                       policy_version=policy.version, rationale=output))

    return record(ctx, version_id, "decide", output, status=decision.outcome, run_id=run_id,
                  new_status=STATUS_FOR[decision.outcome], reason=reason, actor="policy",
                  extra=add_decision)
