"""A reviewer confirms a trusted reference set from a version's own rows.

``sample_reference`` draws a seeded, class-stratified sample and shows each row as the
report does; ``confirm_reference`` checks the sample against the version (a digest per
row: an edited sample is refused), applies the reviewer's label corrections, records the
rows as the content-addressed version ``NAME.reference@N`` (:mod:`dataward.governance.reference`
makes it the one the version's next screen uses) and re-runs the screens. The CLI
(``dataward reference``) and the review page are its two doors; who may knock follows
the sign-off rules of :mod:`dataward.governance.review`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from sqlalchemy import func, select

from dataward.context import Context
from dataward.errors import BadInput
from dataward.governance.reference import (
    CONFIRMED_RELATION,
    CONFIRMED_STATUS,
    jsonable,
    min_reference_rows,
    reference_dataset,
    row_digests,
)
from dataward.governance.review import authorize_cli, originators, refuse, review_policy
from dataward.reports.figures import _row_content
from dataward.reports.render import environment
from dataward.runs import live_runs_on
from dataward.stage_results import finished, read_table, write_atomic
from lineage import audit
from lineage.files import schema_fingerprint, schema_json
from lineage.ingest import resolve
from lineage.models import (
    DatasetVersion,
    Snapshot,
    VersionParent,
)
from lineage.queries import derived_dataset, record_derived_file

SAMPLE_FORMAT = "dataward-reference-sample/1"


class Rerun(Protocol):
    """Re-runs a version's stages from ``from_stage`` and returns the pipeline summary: the
    CLI passes :func:`dataward.pipeline.rerun` (governance does not run pipelines)."""

    def __call__(self, ctx: Context, ref: str, *, from_stage: str, reason: str, actor: str) -> dict[str, Any]: ...


def sample_reference(ctx: Context, ref: str, *, per_class: int, seed: int = 0) -> dict[str, Any]:
    """A seeded, class-stratified sample of ``ref``'s rows, each as a reviewer sees it.

    Returns the sample document (format :data:`SAMPLE_FORMAT`): the version, its content
    hash, and per row its ``row_id``, ``digest`` (of its content: the confirmation checks
    it), ``label`` and ``shown`` (the text, image or values, as the report shows a row).
    """
    if per_class < 1:
        raise BadInput("--per-class must be at least 1")
    with ctx.session(read_only=True) as s:
        v = resolve(s, ref)
        ref, version_id, label_col, content_hash = v.ref, v.id, v.label_column, v.content_hash
    if not label_col:
        raise BadInput(f"{ref} names no label_column: a reference set needs labels")
    data = read_table(ctx, version_id)
    labels = [str(x) for x in data.column(label_col).to_pylist()]
    label_arr = np.asarray(labels, dtype=object)
    rng = np.random.default_rng(seed)
    ids: list[int] = []
    for c in sorted(set(labels)):
        members = np.flatnonzero(label_arr == c)
        k = min(per_class, len(members))
        ids += [int(i) for i in rng.choice(members, size=k, replace=False)]
    ids.sort()
    screen = finished(ctx, ref, "screen")[2] or {}
    summary = screen.get("summary") or {}
    picked = data.take(pa.array(ids, type=pa.int64()))
    digests = row_digests(picked)
    rows, thumbs = [], []
    for j, i in enumerate(ids):
        shown = _row_content(picked, j, label_col, summary)
        thumbs.append(shown.get("image"))
        if shown.get("image"):  # pixels stay out of the JSON (the HTML view shows them)
            img = shown["image"]
            shown["image"] = {"height": img.get("height"), "width": img.get("width"),
                              "channels": img.get("channels"),
                              "source": _image_source(picked, j)}
        rows.append({"row_id": i, "digest": digests[j],
                     "label": jsonable(picked.column(label_col)[j].as_py()), "shown": shown})
    return {"format": SAMPLE_FORMAT, "ref": ref, "content_hash": content_hash, "label_column": label_col,
            "per_class": per_class, "seed": seed,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "created_by": ctx.settings.actor, "rows": rows, "_thumbs": thumbs}


def _image_source(table, j: int) -> str | None:
    """Where a row's image can be seen: its path in the image folder, if the row has one."""
    rec = table.slice(j, 1).to_pylist()[0]
    for v in rec.values():
        if isinstance(v, dict) and isinstance(v.get("path"), str):
            return v["path"]
    return None


def write_sample(doc: dict[str, Any], path: Path) -> tuple[Path, Path]:
    """Write the sample (JSON, what ``confirm`` reads) and beside it an HTML view of the
    rows with image thumbnails (``FILE.html``); returns both paths."""
    thumbs = doc.pop("_thumbs", None) or [None] * len(doc["rows"])
    write_atomic(path, json.dumps(doc, indent=1, default=str).encode())
    html = path.with_name(path.name + ".html")
    page = environment().get_template("reference_sample.html.j2").render(doc=doc, thumbs=thumbs,
                                                                         sample_path=str(path))
    write_atomic(html, page.encode("utf-8"))
    return path, html


def default_sample_path(ctx: Context, ref: str) -> Path:
    return ctx.settings.home / "references" / f"{ref.replace('@', '-v')}-sample.json"


def _load_sample(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"cannot read the sample file {path}: {exc.strerror}") from None
    except ValueError:
        raise BadInput(f"the sample file {path} is not valid JSON") from None
    return _check_sample(doc, str(path))


def _check_sample(doc: Any, shown: str) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("format") != SAMPLE_FORMAT or not isinstance(doc.get("rows"), list):
        raise BadInput(f"{shown} is not a sample written by `dataward reference sample` (format {SAMPLE_FORMAT})")
    return doc


def _load_corrections(path: Path | None) -> dict[int, Any]:
    """``row_id: label`` (YAML or JSON); a null label leaves the row out of the reference."""
    if path is None:
        return {}
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"cannot read the corrections file {path}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise BadInput(f"the corrections file {path} is not valid YAML or JSON") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadInput(f"the corrections file {path} must map row ids to labels (null: leave the row out)")
    out = {}
    for k, v in raw.items():
        try:
            out[int(k)] = v
        except (TypeError, ValueError):
            raise BadInput(f"the corrections file {path}: {k!r} is not a row id") from None
    return out


def confirm_reference(ctx: Context, ref: str, *, sample_path: Path | None = None, actor: str,
                      reviewer: str | None = None, corrections_path: Path | None = None,
                      via: str = "cli", rerun: Rerun | None = None, door_checked: bool = False,
                      sample: dict[str, Any] | None = None, corrections: dict[int, Any] | None = None
                      ) -> dict[str, Any]:
    """Record the sampled rows a reviewer confirmed as ``NAME.reference@N`` and, with
    ``rerun``, re-run the screens of ``ref`` with it.

    Who may: the acting identity must be one of the policy's ``review.reviewers``
    (``reviewer``, when given, must be that identity; ``door_checked``: a door such as the
    Airflow page already authorized ``actor`` through its own auth manager) and, with
    ``review.separation_of_duties``, not whoever imported or triggered ``ref``; refusals
    are audited (``review-refused``). Every check runs before anything is written: an
    unknown version, a sample of another version or content, a row whose content is not
    that row of the version, a correction to a label the version does not have, or a
    version already published is :class:`BadInput` and leaves no trace but the refusal.

    ``sample`` / ``corrections``: the sample document and ``row_id: label`` corrections
    themselves, instead of their files (the web page posts them).

    Returns ``reference`` (its ref), ``created``, ``rows``, ``corrected``, ``dropped``,
    ``audit_entry``, ``at`` and, after the rerun, ``rerun`` (the pipeline summary).
    """
    with ctx.session(read_only=True) as s:
        v = resolve(s, ref)  # an unknown version: NotFound, exit 2
        ref, version_id, label_col, content_hash = v.ref, v.id, v.label_column, v.content_hash
        own = {n.casefold() for n in originators(s, v)}
    who = (actor or "").strip() if door_checked else \
        authorize_cli(ctx, ref, actor=actor, reviewer=reviewer, outcome="reference-confirm")
    if not who:
        raise BadInput("confirming a reference needs the reviewer's identity")
    if review_policy(ctx).separation_of_duties and who.casefold() in own:
        raise refuse(ctx, ref, actor=who, outcome="reference-confirm", via=via,
                     why=f"separation of duties: {who} imported or triggered {ref} and may not confirm "
                         f"its reference set; another reviewer must")
    doc = _check_sample(sample, "the posted sample") if sample is not None else _load_sample(sample_path)
    sample_path = sample_path or "the posted sample"
    if doc.get("ref") != ref or doc.get("content_hash") != content_hash:
        raise BadInput(f"the sample {sample_path} was drawn from {doc.get('ref')!r}, not from {ref} "
                       f"(content {content_hash[:12]})")
    if not label_col:
        raise BadInput(f"{ref} names no label_column: a reference set needs labels")
    _check_rerun_possible(ctx, ref, version_id)
    corrections = _load_corrections(corrections_path) if corrections is None else dict(corrections)
    data = read_table(ctx, version_id)
    ids: list[int] = []
    for pos, row in enumerate(doc["rows"]):
        rid = row.get("row_id") if isinstance(row, dict) else None
        if not isinstance(rid, int) or isinstance(rid, bool) or not 0 <= rid < data.num_rows:
            raise BadInput(f"sample row {pos + 1} (row_id {rid!r}) is not a row of {ref} "
                           f"({data.num_rows} rows): draw a new sample with `dataward reference sample`")
        ids.append(rid)
    if len(set(ids)) != len(ids):
        raise BadInput(f"the sample {sample_path} lists a row more than once")
    if not ids:
        raise BadInput(f"the sample {sample_path} holds no rows")
    picked = data.take(pa.array(ids, type=pa.int64()))
    digests = row_digests(picked)
    for j, row in enumerate(doc["rows"]):
        if row.get("digest") != digests[j]:
            raise BadInput(f"sample row_id {ids[j]} is not row {ids[j]} of {ref}: its content differs "
                           f"(the sample was edited); put label corrections in --corrections")
        if str(row.get("label")) != str(picked.column(label_col)[j].as_py()):
            raise BadInput(f"sample row_id {ids[j]}: its label was edited in the sample file; put label "
                           f"corrections in --corrections FILE (row_id: label)")
    unknown = sorted(set(corrections) - set(ids))
    if unknown:
        raise BadInput(f"the corrections name row(s) {', '.join(map(str, unknown[:5]))} that are not in the sample")
    classes = {str(x): x for x in data.column(label_col).unique().to_pylist() if x is not None}
    labels = picked.column(label_col).to_pylist()
    keep, corrected, dropped = [], [], []
    for j, rid in enumerate(ids):
        if rid in corrections:
            new = corrections[rid]
            if new is None:
                dropped.append(rid)
                continue
            if str(new) not in classes:
                raise BadInput(f"correction for row {rid}: {new!r} is not a label of {ref} "
                               f"({', '.join(sorted(classes)[:10])})")
            if str(new) != str(labels[j]):
                corrected.append({"row_id": rid, "from": jsonable(labels[j]), "to": jsonable(classes[str(new)])})
                labels[j] = classes[str(new)]
        keep.append(j)
    counts: dict[str, int] = {}
    for j in keep:
        counts[str(labels[j])] = counts.get(str(labels[j]), 0) + 1
    if max(counts.values(), default=0) < min_reference_rows():
        raise BadInput(f"{len(keep)} confirmed row(s) are too few for a reference (it needs at least "
                       f"{min_reference_rows()} rows of one class): draw a larger sample")
    idx = pa.array(keep, type=pa.int64())
    table = picked.take(idx)
    col = pa.array([labels[j] for j in keep], type=data.schema.field(label_col).type)
    table = table.set_column(table.schema.get_field_index(label_col), data.schema.field(label_col), col)
    per_class: dict[str, int] = {}
    for lab in col.to_pylist():
        per_class[str(lab)] = per_class.get(str(lab), 0) + 1
    recorded = _record_confirmed(ctx, version_id, table, reviewer=who, via=via, details={
        "version_row_ids": [ids[j] for j in keep], "rows_per_class": per_class, "corrected_rows": corrected,
        "dropped_rows": dropped, "sample_seed": doc.get("seed"), "sample_per_class": doc.get("per_class"),
        "sample_created_at": doc.get("created_at"), "sample_created_by": doc.get("created_by")})
    out = {**recorded, "ref": ref, "rows": table.num_rows, "rows_per_class": per_class,
           "corrected": corrected, "dropped": dropped}
    if rerun is not None:
        out["rerun"] = rerun(ctx, ref, from_stage="screen", actor=who,
                             reason=f"reference {recorded['reference']} confirmed by {who}")
    return out


def _check_rerun_possible(ctx: Context, ref: str, version_id: int) -> None:
    """The rerun a confirmation triggers must be possible before anything is recorded."""
    with ctx.session(read_only=True) as s:
        published = s.execute(select(Snapshot.id).where(Snapshot.source_version_id == version_id)).first()
    if published:
        raise BadInput(f"{ref} is already published: its screens are not re-run; confirm a reference on "
                       f"the next version (the trust chain carries this one's approved rows to it)")
    busy = live_runs_on(ctx, version_id)
    if busy:
        raise BadInput(f"{ref} is being processed by run {busy[0]}: wait for it to finish")


def _record_confirmed(ctx: Context, version_id: int, table, *, reviewer: str, via: str,
                      details: dict[str, Any]) -> dict[str, Any]:
    """Store ``table`` in the content store and record it as ``NAME.reference@N`` with its
    provenance, licence, parent edge and audit entry, in one transaction."""

    ctx.store.sweep()
    tmp = ctx.store.staging_file("reference", ".parquet")
    try:
        pq.write_table(table, str(tmp))
        path, digest, size = ctx.store.adopt_written(tmp, "parquet")
    finally:
        tmp.unlink(missing_ok=True)
    content_hash = hashlib.sha256(f"reference.parquet\0{digest}\n".encode()).hexdigest()
    with ctx.session() as s:
        source = s.get(DatasetVersion, version_id)
        ds = derived_dataset(s, reference_dataset(source.dataset.name), source,
                             f"Reviewer-confirmed reference sets of {source.dataset.name}")
        refv = s.execute(select(DatasetVersion).where(DatasetVersion.dataset_id == ds.id,
                                                      DatasetVersion.content_hash == content_hash)
                         ).scalars().first()
        created = refv is None
        if created:
            number = (s.execute(select(func.max(DatasetVersion.version))
                                .where(DatasetVersion.dataset_id == ds.id)).scalar() or 0) + 1
            refv = DatasetVersion(
                dataset=ds, version=number, content_hash=content_hash, row_count=table.num_rows,
                schema_fingerprint=schema_fingerprint(table.schema), schema_json=schema_json(table.schema),
                status=CONFIRMED_STATUS, kind=source.kind, label_column=source.label_column,
                manifest={"confirmed_for": source.ref, "confirmed_by": reviewer, **details})
            s.add(refv)
            s.flush()
            record_derived_file(s, refv, source, relpath="reference.parquet", sha256=digest, size_bytes=size,
                                rows=table.num_rows, publisher="dataward reference confirm", actor=reviewer,
                                method=f"{table.num_rows} rows of {source.ref} confirmed by {reviewer}")
        edge = s.execute(select(VersionParent).where(VersionParent.child_id == refv.id,
                                                     VersionParent.parent_id == source.id)).scalars().first()
        if edge is None:
            s.add(VersionParent(child_id=refv.id, parent_id=source.id, relation=CONFIRMED_RELATION))
        entry = audit.append(s, actor=reviewer, action="reference-confirm", subject=source.ref, payload={
            "reference": refv.ref, "reviewer": reviewer, "via": via, "sha256": digest, "rows": table.num_rows,
            "rows_per_class": details["rows_per_class"], "corrected_rows": details["corrected_rows"],
            "dropped_rows": details["dropped_rows"], "created": created})
        if created:  # who confirmed it and when: the audit entry's own time
            refv.manifest = {**refv.manifest, "confirmed_at": entry.at, "audit_entry": entry.id}
        return {"reference": refv.ref, "created": created, "sha256": digest, "path": str(path),
                "audit_entry": entry.id, "at": entry.at, "reviewer": reviewer}


# ------------------------------------------------------------------------ the web page door

LEAVE_OUT = "__leave_out__"


def form_corrections(doc: dict[str, Any], form: dict[str, str]) -> dict[int, Any]:
    """The corrections a review page's form makes to ``doc`` (fields ``label-ROW_ID``: a
    class, or :data:`LEAVE_OUT`); unchanged labels are not corrections."""
    out: dict[int, Any] = {}
    for row in doc.get("rows") or []:
        if not isinstance(row, dict) or not isinstance(row.get("row_id"), int):
            continue
        chosen = form.get(f"label-{row['row_id']}")
        if chosen is None:
            continue
        if chosen == LEAVE_OUT:
            out[row["row_id"]] = None
        elif chosen != str(row.get("label")):
            out[row["row_id"]] = chosen
    return out
