"""Standard metadata for approved snapshots: a Croissant file and a dataset card.

* ``croissant.json``: Croissant 1.x (JSON-LD, built with ``mlcroissant``) with the
  snapshot as a FileObject (content hash), one RecordSet of its columns, and the
  Responsible-AI fields: collection (provenance), personal and sensitive information
  (the personal-data scan), biases and limitations (class balance, screens, canaries,
  the screens' power), intended use (the licence verdict).
* ``README.md``: a Hugging Face style dataset card: YAML front matter (licence, task,
  size, source datasets, tags) and the provenance and screening results in prose.

Both are written beside the snapshot, in ``DATAWARD_HOME/snapshots/NAME.approved/N/``
(with the snapshot itself linked in as ``snapshot.parquet`` where the file system
allows), atomically, and recorded in the audit log. ``dataward export`` writes them
anywhere for any published snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jinja2
import yaml
from sqlalchemy import select

from dataward.context import Context
from dataward.errors import BadInput
from dataward.reports import report_dir
from dataward.reports.datacard import declared_facts
from dataward.reports.verdict_text import power_statement
from dataward.stage_results import finished, json_safe, write_atomic
from lineage import audit, tags
from lineage.ingest import resolve
from lineage.models import DatasetVersion, Snapshot, VersionParent

CARD_TEMPLATE = "dataset_card.md.j2"
_HF_TASKS = {"tabular": "tabular-classification", "image": "image-classification",
             "text": "text-classification"}


def snapshot_facts(ctx: Context, ref: str) -> dict[str, Any]:
    """Everything the metadata says, read from the lineage DB for snapshot ``ref``."""
    with ctx.session() as s:
        v = resolve(s, ref)
        snap = s.execute(select(Snapshot).where(Snapshot.version_id == v.id)).scalars().first()
        if snap is None:
            raise BadInput(f"{v.ref} is not a published snapshot (export works on NAME.approved@N)")
        src = s.get(DatasetVersion, snap.source_version_id)
        prov, lic = src.provenance, (v.licence or src.licence)
        facts: dict[str, Any] = {
            "ref": v.ref, "name": v.dataset.name, "version": v.version, "source_ref": src.ref,
            "description": src.dataset.description or v.dataset.description or "",
            "owner": src.dataset.owner, "kind": src.kind, "label_column": src.label_column,
            "rows": snap.row_count, "excluded_rows": len(snap.excluded_row_ids or []),
            "relabelled_rows": len(snap.relabels or []),
            "source_rows": src.row_count, "path": snap.path, "sha256": snap.sha256,
            "created": snap.created_at.date().isoformat() if snap.created_at else None,
            "schema": v.schema_json,
            "source_uri": prov.source_uri if prov else None,
            "publisher": prov.publisher if prov else None,
            "collection_method": prov.collection_method if prov else None,
            "collected_from": prov.collected_from if prov else None,
            "collected_to": prov.collected_to if prov else None,
            "licence": None if lic is None else {
                "expression": lic.spdx_expression, "use_class": lic.use_class,
                "allowed_for_training": lic.allowed_for_training, "reason": lic.verdict_reason,
                "attribution_required": lic.attribution_required, "share_alike": lic.share_alike},
            "parents": [p.ref for p in _parents(s, src.id)],
            "pii": tags.column_tags(s, src.id, source="pii-scan"),
            "pii_scan": tags.scan_status(s, src.id),
        }
        manifest = src.manifest
    for stage in ("validate", "screen", "decide"):
        facts[stage] = finished(ctx, facts["source_ref"], stage)[2] or {}
    facts["data_card"] = _data_card(ctx, facts["source_ref"], manifest)
    return facts


def _data_card(ctx: Context, source_ref: str, manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The data card of the source version as its report states it (the same facts), or the
    manifest's declared facts alone when no report was written."""
    path = report_dir(ctx, source_ref) / "report.json"
    try:
        card = json.loads(path.read_text()).get("data_card")
    except (OSError, ValueError):
        card = None
    return card or {"declared": declared_facts(manifest), "class_balance": {}, "columns": {}}


def _parents(session, version_id: int):
    ids = session.execute(select(VersionParent.parent_id).where(VersionParent.child_id == version_id)).scalars()
    return [session.get(DatasetVersion, i) for i in ids]


def responsible_ai(f: dict[str, Any]) -> dict[str, Any]:
    """The Croissant RAI fields, in words, from the facts."""
    card = f.get("data_card") or {}
    declared = (card.get("declared") or {}).get("values") or {}
    collection = "; ".join(x for x in [
        f["collection_method"],
        f"original purpose: {declared['purpose']}" if declared.get("purpose") else None,
        f"published by {f['publisher']}" if f["publisher"] else None,
        f"source: {f['source_uri']}" if f["source_uri"] else None,
        (f"collected {f['collected_from'] or '?'} to {f['collected_to'] or '?'}"
         if f["collected_from"] or f["collected_to"] else None),
        f"derived from {', '.join(f['parents'])}" if f["parents"] else None,
    ] if x) or "not stated in the manifest"
    if f["pii_scan"].get("failed"):
        personal = [f"The personal-data scan failed ({f['pii_scan']['failed']}): unknown."]
    elif f["pii"]:
        personal = [f"Column {t['column']}: {t['tag']} in {t['fraction']:.0%} of sampled values"
                    for t in f["pii"]]
    else:
        personal = ["Dataward's personal-data scan (e-mail, phone, IP address, payment card, "
                    "national identifier, IBAN) found none."]
    screen, decide, validate = f["screen"], f["decide"], f["validate"]
    summary = screen.get("summary") or {}
    biases = []
    counts = summary.get("class_counts")
    if counts:
        biases.append("Class counts before screening: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    balance = card.get("class_balance") or {}
    if balance.get("sentence"):
        biases.append(f"Class balance: {balance['sentence']}")
    profile = card.get("columns") or {}
    if profile.get("sentence"):
        biases.append(f"Missing values: {profile['sentence']}")
    leak = screen.get("leakage") or {}
    if isinstance(leak, dict) and leak.get("summary"):
        biases.append(f"Leakage check: {leak['summary']}")
    limitations = [*(declared.get("limitations") or []),
        f"{f['excluded_rows']} of {f['source_rows']} rows were flagged by the poisoning screens and "
        f"left out of this snapshot (decision: {decide.get('outcome', '?')})."]
    if f.get("relabelled_rows"):
        limitations.append(f"{f['relabelled_rows']} more flagged rows, held to be label noise only, are kept "
                           "with the label cleanlab suggests; the snapshot's lineage lists each old and new label.")
    power = power_statement(((summary.get("combine") or {}).get("detectable_attack")) or [])
    if power:
        limitations.append(f"Screening power: {power}.")
    canary = screen.get("canary")
    if isinstance(canary, dict) and canary.get("recall") is not None:
        limitations.append(f"Planted canaries recalled: {canary['recall']}.")
    elif summary.get("canary_note"):
        limitations.append(f"Canaries: {summary['canary_note']}")
    if validate.get("status"):
        limitations.append(f"Schema validation ({validate.get('suite') or validate.get('kind')}): "
                           f"{validate['status']}, {validate.get('n_expectations', 0)} expectations.")
    lic = f["licence"]
    if lic is None:
        uses = ["No licence verdict recorded: do not use before review."]
    elif lic["allowed_for_training"]:
        uses = [f"Training and evaluating machine-learning models, as {lic['expression']} allows "
                f"({lic['use_class']}: {lic['reason']})"
                + ("; attribution required" if lic["attribution_required"] else "")
                + ("; share-alike" if lic["share_alike"] else "") + "."]
    else:
        uses = [f"Not for training: {lic['reason']} ({lic['expression']})."]
    uses = [*(f"Intended: {u}" for u in declared.get("intended_uses") or []),
            *(f"Out of scope: {u}" for u in declared.get("out_of_scope_uses") or []), *uses]
    out = {"data_collection": collection, "personal_sensitive_information": personal,
           "data_biases": biases or ["No class balance recorded."], "data_limitations": limitations,
           "data_use_cases": uses}
    if declared.get("annotation"):
        out["data_annotation_protocol"] = [declared["annotation"]]
    if declared.get("preprocessing"):
        out["data_preprocessing_protocol"] = list(declared["preprocessing"])
    return out


def _data_type(arrow_type: str):
    """The Croissant data type of a column of ``arrow_type`` (Arrow's type string), None
    for a type mlcroissant cannot read back (durations, structs, maps): such a column is
    left out of the record set and named in its description. A list column takes its
    elements' type (mlcroissant reads each record's list)."""
    import mlcroissant as mlc

    t = arrow_type.lower()
    for prefix in ("list<", "large_list<", "fixed_size_list<"):
        if t.startswith(prefix):  # list<item: double> / fixed_size_list<item: float>[4]
            inner = t[len(prefix):].split(":", 1)[-1].strip()
            return _data_type(inner.rsplit(">", 1)[0].strip())
    if t.startswith(("duration", "struct", "map")):
        return None
    if t.startswith(("int", "uint")):
        return mlc.DataType.INTEGER
    if t.startswith(("float", "double", "decimal", "halffloat")):
        return mlc.DataType.FLOAT
    if t.startswith("bool"):
        return mlc.DataType.BOOL
    if t.startswith("timestamp"):
        return mlc.DataType.DATETIME
    if t.startswith("date"):
        return mlc.DataType.DATE
    return mlc.DataType.TEXT


def _licence_url(expression: str | None) -> list[str] | None:
    if not expression:
        return None
    if all(ch.isalnum() or ch in "-.+" for ch in expression):
        return [f"https://spdx.org/licenses/{expression}.html"]
    return [expression]


def croissant(facts: dict[str, Any], content_url: str) -> dict[str, Any]:
    """The Croissant JSON-LD (a dict) for the snapshot, its file at ``content_url``."""
    import mlcroissant as mlc

    file_id = "snapshot.parquet"
    typed = [(c, _data_type(c["type"])) for c in facts["schema"]]
    fields = [mlc.Field(id=f"records/{c['name']}", name=c["name"], data_types=[dt],
                        source=mlc.Source(file_object=file_id, extract=mlc.Extract(column=c["name"])))
              for c, dt in typed if dt is not None]
    left_out = [f"{c['name']} ({c['type']})" for c, dt in typed if dt is None]
    rai = responsible_ai(facts)
    lic = facts["licence"] or {}
    meta = mlc.Metadata(
        name=facts["name"], description=facts["description"] or facts["name"],
        version=f"{facts['version']}.0.0", url=facts["source_uri"],
        license=_licence_url(lic.get("expression")),
        creators=[mlc.Organization(name=facts["publisher"])] if facts["publisher"] else [],
        publisher=[mlc.Person(name=facts["owner"], email=facts["owner"] if "@" in facts["owner"] else None)],
        cite_as=f"{facts['ref']} (Dataward snapshot of {facts['source_ref']}, sha256 {facts['sha256']})",
        keywords=[k for k in [facts["kind"], "dataward", "screened"] if k],
        distribution=[mlc.FileObject(id=file_id, name=file_id, content_url=content_url,
                                     encoding_formats=["application/x-parquet"], sha256=facts["sha256"],
                                     description=f"The approved rows of {facts['source_ref']}")],
        record_sets=[mlc.RecordSet(id="records", name="records", fields=fields,
                                   description="One record per approved row." + (
                                       f" Not described (no Croissant data type that mlcroissant reads): "
                                       f"{', '.join(left_out)}." if left_out else ""))],
        **rai,
    )
    issues = meta.issues
    if issues.errors:
        raise ValueError(f"the Croissant description of {facts['ref']} is invalid: {issues.report()}")
    return json_safe(meta.to_json())


def _size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
                         (100_000_000, "10M<n<100M")):
        if n < bound:
            return label
    return "n>100M"


def card_front_matter(facts: dict[str, Any]) -> dict[str, Any]:
    lic = (facts["licence"] or {}).get("expression")
    simple = lic and all(ch.isalnum() or ch in "-." for ch in lic)
    kind = (facts["kind"] or "").split("-")[0]
    fm: dict[str, Any] = {
        "pretty_name": facts["name"],
        "license": lic.lower() if simple else "other",
        "size_categories": [_size_category(int(facts["rows"]))],
        "source_datasets": [facts["source_ref"], *facts["parents"]]
                           + ([facts["source_uri"]] if facts["source_uri"] else []),
        "tags": ["dataward", "poisoning-screened"],
    }
    if not simple and lic:
        fm["license_name"] = lic
    if facts["label_column"] and kind in _HF_TASKS:
        fm["task_categories"] = [_HF_TASKS[kind]]
    fm["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": "snapshot.parquet"}]}]
    return fm


def dataset_card(facts: dict[str, Any]) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("dataward", "templates"),
                             autoescape=False, keep_trailing_newline=True)
    front = yaml.safe_dump(card_front_matter(facts), sort_keys=False, allow_unicode=True)
    return env.get_template(CARD_TEMPLATE).render(front_matter=front, f=facts, rai=responsible_ai(facts))


def export(ctx: Context, ref: str, what: str, out: str | os.PathLike[str] | None = None) -> Path:
    """Write ``croissant`` or ``card`` for snapshot ``ref`` to ``out`` (a file or folder)."""
    facts = snapshot_facts(ctx, ref)
    target = Path(out) if out else _default_dir(ctx, facts)
    if target.is_dir() or out is None or str(out).endswith(os.sep):
        target = target / ("croissant.json" if what == "croissant" else "README.md")
    target = target.resolve()
    if what == "croissant":
        data = json.dumps(croissant(facts, _content_url(facts, target.parent)), indent=2) + "\n"
    else:
        data = dataset_card(facts)
    write_atomic(target, data.encode())
    return target


def _default_dir(ctx: Context, facts: dict[str, Any]) -> Path:
    return ctx.settings.snapshots_root / facts["name"] / str(facts["version"])


def _content_url(facts: dict[str, Any], folder: Path) -> str:
    """``snapshot.parquet`` linked beside the metadata when possible, else a relative path."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "snapshot.parquet"
    if not link.exists():
        try:
            os.link(facts["path"], link)
        except OSError:
            return os.path.relpath(facts["path"], folder)
    return link.name


def write_beside_snapshot(ctx: Context, ref: str, actor: str = "pipeline") -> dict[str, str]:
    """Write both files beside snapshot ``ref`` (idempotent) and record new ones in the audit log."""
    folder = None
    written = {}
    for what in ("croissant", "card"):
        path = export(ctx, ref, what)
        folder = path.parent
        written[what] = str(path)
    digests = {k: hashlib.sha256(Path(p).read_bytes()).hexdigest() for k, p in written.items()}
    payload = {"files": written, "sha256": digests, "folder": str(folder)}
    with ctx.session() as s:
        from sqlalchemy import select

        from lineage.models import AuditEntry

        seen = s.execute(select(AuditEntry).where(AuditEntry.action == "metadata",
                                                  AuditEntry.subject == ref)).scalars().all()
        if not any(e.payload.get("sha256") == digests for e in seen):
            audit.append(s, actor=actor, action="metadata", subject=ref, payload=payload)
    return written
