"""Print the demo's outcome: decision, flagged counts against the planted poisons, report path."""

from __future__ import annotations

import json
import sys

from dataward.artifacts import read_scores
from dataward.context import Context
from dataward.reports.verdict_text import power_statement
from dataward.stage_results import finished


def main(planted_path: str) -> None:
    planted = json.loads(open(planted_path).read())
    ctx = Context()
    _, ref, decision = finished(ctx, "digits-example", "decide")
    _, _, screen = finished(ctx, ref, "screen")
    _, _, report = finished(ctx, ref, "report")
    _, _, publish = finished(ctx, ref, "publish")
    print(f"{ref}: decision {decision['outcome'].upper()} (policy {decision['policy_version']})")
    for r in decision["reasons"]:
        print(f"  - {r['check']}: {r['why']}")
    if screen and screen.get("status") == "done":
        t = read_scores(screen["scores_path"])
        flagged = set(t.loc[t["flagged"], "row_id"].tolist())
        bd, fl = set(planted["backdoor_rows"]), set(planted["flipped_rows"])
        print(f"  flagged {len(flagged)} of {len(t)} rows: "
              f"{len(flagged & bd)}/{len(bd)} backdoored rows, {len(flagged & fl)}/{len(fl)} flipped "
              f"labels, {len(flagged - bd - fl)} clean rows")
        screens = (screen.get("summary") or {}).get("screens") or {}
        per = {k: v.get("flagged") for k, v in screens.items() if isinstance(v, dict)}
        if per:
            print("  each screen on its own (its own budget; the verdict combines them): "
                  + ", ".join(f"{k} {v}" for k, v in per.items()))
        power = power_statement(((screen.get("summary") or {}).get("combine") or {}).get("detectable_attack") or [])
        if power:
            print(f"  {power}")
        canary = screen.get("canary") or {}
        if canary.get("status") == "done":
            print(f"  canary self-test: the verdict caught {canary['recall']:.0%} of "
                  f"{canary['n_canaries']} planted canaries (policy floor {canary['min_recall']:.0%})")
    if report:
        print(f"  report: {report.get('html')}")
        if report.get("pdf"):
            print(f"  report (PDF): {report['pdf']}")
    if publish and publish.get("published"):
        print(f"  snapshot: {publish['snapshot_ref']} ({publish['rows']} rows) at {publish['path']}")
    print("Next: dataward lineage show digits-example.approved   |   dataward audit verify")


if __name__ == "__main__":
    main(sys.argv[1])
