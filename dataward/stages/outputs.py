"""What each stage returns (and records in the lineage DB), key by key.

The stages record JSON dicts (``StageResult.output``), so their results stay plain dicts;
these TypedDicts declare the keys. Code that reads a stage's output annotates it with its
type, so a type checker catches a key nothing writes (``summary["flagged_counts"]`` once
read a key no stage wrote), and :func:`check_output` finds the same mistakes at run time,
in the tests. Keys marked ``Required`` are always there; the others depend on the
status (``reason`` on failure, the figures on success). Outputs recorded by older code
may lack newer keys: readers use ``.get`` for those.

The ingest stage returns :class:`lineage.ingest.IngestResult` (a dataclass).
"""

# No `from __future__ import annotations` here: TypedDict reads Required[...] only from
# evaluated annotations.
from typing import Any, Required, TypedDict, get_type_hints


class ValidateOutput(TypedDict, total=False):
    """:func:`dataward.stages.validate.validate`: the GX suite's verdict."""

    success: Required[bool]
    status: Required[str]  # passed | failed | missing_suite
    kind: Required[str | None]
    failed: Required[list[str]]  # one line per failing expectation
    reason: str  # why there is no verdict (missing_suite)
    suite: str
    suite_sha256: str | None
    n_expectations: int
    n_rows: int
    elapsed_s: float
    data_docs: str | None
    n_batches: int
    checkpoint: Any
    outcomes: list[dict[str, Any]]
    stale: str  # added on read when the suite changed after the outcome


class ScreenStageOutput(TypedDict, total=False):
    """:func:`dataward.stages.screen.screen`: the screens' verdict and self-tests."""

    status: Required[str]  # done | not_applicable | error
    reason: str  # not_applicable / error
    n_rows: int
    n_flagged: int
    flagged_fraction: float
    scores_path: str
    projection_path: str
    used_reference: bool
    reference: dict[str, Any] | None  # which trusted set (dataward.governance.reference), for the report
    summary: dict[str, Any]  # the screens' own summary (summary.json)
    canary: dict[str, Any]
    leakage: dict[str, Any]
    diff: dict[str, Any] | None
    elapsed_s: float
    # set when a Ray cluster is named (DATAWARD_RAY_ADDRESS, or the screen task's Airflow
    # connection): name (ray | in-process), address, address_source, workers, n_shards,
    # not_run (what the Ray path leaves out, with why), fallback_reason or error
    engine: dict[str, Any]


class PiiStatus(TypedDict):
    scanned: bool
    failed: str | None
    tags: list[dict[str, Any]]


class DecideOutput(TypedDict, total=False):
    """:func:`dataward.stages.decide.record_decision`: the policy's decision."""

    outcome: Required[str]  # approve | trim | quarantine | reject
    reasons: Required[list[dict[str, str]]]
    excluded_rows: Required[int]
    policy_version: Required[str]
    policy_digest: Required[str]
    n_rows: Required[int | None]
    n_flagged: Required[int]
    excluded_row_ids: Required[list[int]]
    relabelled_rows: int  # rows kept with cleanlab's suggested label (screening.on_label_noise: relabel)
    relabels: list[list[Any]]  # [row_id, new label as text]
    pii: Required[PiiStatus]


class ReportOutput(TypedDict, total=False):
    """:func:`dataward.stages.report.report`: the report files."""

    json: Required[str]
    html: Required[str]
    pdf: Required[str]
    sha256: Required[str]  # of report.html: what a reviewer signs
    pdf_sha256: Required[str]
    outcome: Required[str | None]
    compliance: Required[Any]


class PublishOutput(TypedDict, total=False):
    """:func:`dataward.stages.publish.publish`: the snapshot, or why there is none."""

    published: Required[bool]
    ref: str  # not published
    reason: str  # not published
    source: str
    path: str
    sha256: str
    rows: int
    excluded_rows: int
    relabelled_rows: int
    outcome: str
    snapshot_ref: str
    croissant: str  # the metadata files beside the snapshot
    card: str


class PipelineSummary(TypedDict, total=False):
    """:func:`dataward.pipeline.summarize` (what ``dataward run --json`` prints)."""

    ref: Required[str]
    run_id: Required[str]
    outcome: Required[str]
    reasons: Required[list[dict[str, str]]]
    n_rows: Required[int | None]
    n_flagged: Required[int]
    flagged_by_screen: Required[dict[str, int] | None]
    screening_status: Required[str | None]
    screening_power: Required[str | None]
    reference: Required[str | None]  # the trusted set the screen used, in words
    validation: Required[str | None]
    report: Required[str | None]
    report_json: Required[str | None]
    snapshot: Required[str | None]
    snapshot_ref: Required[str | None]
    created: bool  # dataward run: False when the content was already ingested
    from_stage: str  # dataward rerun
    reason: str
    superseded: list[dict[str, Any]]


class StageOutputs(TypedDict):
    """Every stage's output of one pipeline run, by stage name."""

    validate: ValidateOutput
    screen: ScreenStageOutput
    decide: DecideOutput
    report: ReportOutput
    publish: PublishOutput


OUTPUT_TYPES: dict[str, Any] = {"validate": ValidateOutput, "screen": ScreenStageOutput,
                                 "decide": DecideOutput, "report": ReportOutput,
                                 "publish": PublishOutput, "summary": PipelineSummary}


def check_output(stage: str, output: dict[str, Any]) -> None:
    """Raise ``KeyError`` naming keys ``output`` has that ``stage``'s type does not declare,
    or required keys it lacks (``stage``: a stage name, or ``summary``)."""
    typed = OUTPUT_TYPES[stage]
    declared = set(get_type_hints(typed))
    required = set(typed.__required_keys__)
    undeclared = sorted(set(output) - declared)
    missing = sorted(required - set(output))
    if undeclared or missing:
        raise KeyError(f"{stage} output: undeclared keys {undeclared}, missing keys {missing}")
