"""The declared stage outputs (dataward/stages/outputs.py) catch keys nothing writes."""

from __future__ import annotations

import pytest

from dataward.stages.outputs import DecideOutput, PiiStatus, ScreenStageOutput, check_output


def test_check_output_names_undeclared_and_missing_keys():
    decision = DecideOutput(outcome="trim", reasons=[], excluded_rows=1, policy_version="1",
                            policy_digest="d", n_rows=10, n_flagged=1, excluded_row_ids=[3],
                            pii=PiiStatus(scanned=True, failed=None, tags=[]))
    check_output("decide", decision)
    with pytest.raises(KeyError, match=r"undeclared keys \['flagged_counts'\]"):
        check_output("decide", {**decision, "flagged_counts": {}})
    with pytest.raises(KeyError, match=r"missing keys \['n_flagged'\]"):
        check_output("decide", {k: v for k, v in decision.items() if k != "n_flagged"})
    check_output("screen", ScreenStageOutput(status="error", reason="refused"))
    check_output("validate", {"success": False, "status": "missing_suite", "kind": None, "failed": [],
                              "reason": "no kind"})


def test_summary_reads_only_declared_keys():
    from dataward.pipeline import summarize

    outputs = {"validate": {"success": True, "status": "passed", "kind": "k", "failed": []},
               "screen": {"status": "done", "summary": {"screens": {"spectral": {"flagged": 2}},
                                                        "combine": {}}},
               "decide": DecideOutput(outcome="approve", reasons=[], excluded_rows=0, policy_version="1",
                                      policy_digest="d", n_rows=5, n_flagged=0, excluded_row_ids=[],
                                      pii=PiiStatus(scanned=True, failed=None, tags=[])),
               "report": {"json": "r.json", "html": "r.html", "pdf": "r.pdf", "sha256": "s",
                          "pdf_sha256": "p", "outcome": "approve", "compliance": {}},
               "publish": {"published": True, "path": "snap.parquet", "snapshot_ref": "x.approved@1"}}
    for stage, output in outputs.items():
        check_output(stage, output)
    summary = summarize("x@1", "run", outputs)
    check_output("summary", summary)
    assert summary["flagged_by_screen"] == {"spectral": 2} and summary["snapshot_ref"] == "x.approved@1"
