"""Which requirement each recorded check evidences, and what is missing and why.

The mapping is explicit, one function per requirement family, so an auditor can
read exactly why a requirement is marked ``evidenced``, ``partial`` or ``missing``.
The texts paraphrase the requirements; the report links the check that evidences them.
"""

from __future__ import annotations

from typing import Any

from dataward.reports.formatting import pct

EVIDENCED, PARTIAL, MISSING = "evidenced", "partial", "missing"

EU_AI_ACT = "EU AI Act (Regulation (EU) 2024/1689)"
NIST_AML = "NIST AI 100-2 (adversarial ML taxonomy): poisoning"
NIST_RMF = "NIST AI RMF 1.0"


def _item(framework: str, ref: str, requirement: str, status: str, evidence: list[str],
          why: str) -> dict[str, Any]:
    return {"framework": framework, "ref": ref, "requirement": requirement, "status": status,
            "evidence": evidence, "why": why}


def fact(what: str, value: Any, field: str) -> str:
    """An evidence line: the fact, or what is missing and the manifest field that supplies it."""
    if value in (None, "", [], {}):
        return f"{what}: not stated (manifest field {field})"
    if isinstance(value, (list, tuple)):
        value = "; ".join(str(v) for v in value)
    return f"{what}: {value}"


def _period(prov: dict[str, Any]) -> str | None:
    a, b = prov.get("collected_from"), prov.get("collected_to")
    if a and b:
        return f"{a} to {b}"
    return f"from {a}" if a else f"until {b}" if b else None


def compliance_mapping(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per requirement: ``framework, ref, requirement, status, evidence, why``.

    ``doc`` is the report document (see :func:`dataward.reports.build_document`).
    """
    ds = doc["dataset"]
    prov, lic = ds.get("provenance") or {}, ds.get("licence") or {}
    val, scr = doc.get("validation") or {}, doc.get("screening") or {}
    dec, audit = doc.get("decision") or {}, doc.get("audit") or {}
    figs = doc.get("figures") or {}
    screens = {s["name"] for s in figs.get("screens", [])}
    screened = scr.get("status") == "done"
    validated = val.get("status") in ("passed", "failed")
    items: list[dict[str, Any]] = []

    def eu(ref, req, status, evidence, why):
        items.append(_item(EU_AI_ACT, ref, req, status, evidence, why))

    eu("Art. 10(2)(a)", "Relevant design choices", PARTIAL,
       [f"dataset kind {ds.get('kind') or '-'}, label column {ds.get('label_column') or '-'}",
        f"decision policy {dec.get('policy_version') or '-'}"],
       "The data design recorded here (kind, label, expectation suite, decision policy) is "
       "evidenced; design choices about the model's intended purpose are made outside Dataward "
       "and must be documented by the provider.")
    has_origin = bool(prov.get("source_uri"))
    has_collection = bool(prov.get("collection_method") or prov.get("collected_from"))
    eu("Art. 10(2)(b)", "Data collection processes and the origin of data",
       EVIDENCED if has_origin and has_collection else PARTIAL if has_origin else MISSING,
       [fact("source", prov.get("source_uri"), "source.uri"),
        fact("publisher", prov.get("publisher"), "source.publisher"),
        fact("collection method", prov.get("collection_method"), "collection.method"),
        fact("collection period", _period(prov), "collection.from and collection.to"),
        f"acquired {prov.get('acquired_at')} by {prov.get('acquired_by')}"],
       "Origin and collection are recorded from the manifest." if has_origin and has_collection
       else "The manifest gives no collection method or period." if has_origin
       else "No provenance is recorded for this version.")
    diff = doc.get("diff") or {}
    diff_line = (f"diff against {diff.get('a')}: {(diff.get('rows') or {}).get('added', 0)} added, "
                 f"{(diff.get('rows') or {}).get('removed', 0)} removed, "
                 f"{(diff.get('rows') or {}).get('changed', 0)} relabelled row(s)" if diff.get("status") == "done"
                 else f"version diff: {diff.get('reason') or 'not recorded'}")
    eu("Art. 10(2)(c)", "Data-preparation operations (labelling, cleaning, enrichment)",
       EVIDENCED,
       [f"{len(ds.get('parents') or [])} parent version(s) in the lineage tree",
        f"decision {dec.get('outcome') or '-'}: {dec.get('excluded_rows', 0) or 0} row(s) excluded",
        diff_line,
        f"content hash {ds.get('content_hash', '')[:16]}..."],
       "Lineage records every derivation (parents), and the decision records which rows "
       "cleaning removes; the published snapshot is content-addressed. The version diff "
       "shows what changed (rows added, removed, relabelled) since the last approved version.")
    eu("Art. 10(2)(d)", "Formulation of assumptions about what the data measure",
       EVIDENCED if validated else MISSING,
       [f"expectation suite {val.get('suite') or '-'} ({val.get('n_expectations') or 0} expectations)"],
       "The reviewed Great Expectations suite states the assumptions (schema, ranges, "
       "label set) as executable checks." if validated
       else (val.get("reason") or "No expectation suite was run for this version."))
    cls = (figs.get("per_class") or {}).get("rows") or {}
    eu("Art. 10(2)(e)", "Availability, quantity and suitability of the data",
       EVIDENCED if validated and screened else PARTIAL,
       [f"{ds.get('rows')} rows", f"{len(cls)} classes" + (f", smallest {min(cls.values())} rows" if cls else ""),
        f"validation {val.get('status') or 'not run'}", f"screening {scr.get('status') or 'not run'}"],
       "Quantity and per-class counts are reported; suitability is evidenced by validation "
       "and the screens." if validated and screened
       else "Validation or screening did not complete, so suitability is not fully evidenced.")
    eu("Art. 10(2)(f)", "Examination for biases affecting health, safety or fundamental rights",
       MISSING, ["per-class flag counts (a data-quality signal only)"],
       "Dataward does not examine biases with respect to persons or groups: no protected "
       "attributes are declared or analysed. A bias assessment must be attached separately.")
    eu("Art. 10(2)(g)", "Measures to detect, prevent and mitigate those biases", MISSING, [],
       "Depends on the bias examination of 10(2)(f), which Dataward does not perform.")
    reasons = dec.get("reasons") or []
    gaps = [r for r in reasons if r.get("outcome") in ("quarantine", "reject")]
    eu("Art. 10(2)(h)", "Identification of data gaps or shortcomings and how to address them",
       EVIDENCED if dec else MISSING,
       [f"{r.get('check')}: {r.get('why')}" for r in reasons] or ["no decision recorded"],
       ("Shortcomings found are listed with the rule that fired; a reviewer's sign-off records "
        "how they are addressed." if gaps else "Every check ran and none found a shortcoming.")
       if dec else "No decision has been recorded.")
    leak = doc.get("leakage") or {}
    leaked = leak.get("status") == "done"
    ltot = leak.get("totals") or {}
    leak_lines = ([f"{(leak.get('exact') or {}).get('n_rows') or 0} exact duplicate row(s), "
                   f"{(leak.get('conflicting_labels') or {}).get('n_rows') or 0} row(s) with conflicting labels, "
                   f"{(leak.get('near') or {}).get('n_rows') or 0} near-duplicate row(s)",
                   f"{ltot.get('eval_exact_eval_rows', 0) or 0} evaluation row(s) copied exactly and "
                   f"{ltot.get('eval_near_eval_rows', 0) or 0} near-copied in the training data "
                   f"({len(leak.get('evaluation') or [])} evaluation set(s) checked)"]
                  if leaked else [f"leakage check: {leak.get('reason') or 'not run'}"])
    eu("Art. 10(3)", "Relevant, representative, free of errors and complete",
       PARTIAL if validated and screened else MISSING,
       [f"validation {val.get('status') or 'not run'}",
        f"{scr.get('n_flagged', '-')} of {scr.get('n_rows', '-')} rows flagged as mislabelled or poisoned",
        *leak_lines],
       "Errors are evidenced by validation, the label-noise screen and the duplicate checks "
       "(identical features under different labels are label errors; exact and near duplicates "
       "over-weight rows). Training rows that copy evaluation rows make the test data "
       "unfit to measure the model (the 'free of errors' of the testing set), and are "
       "listed and judged by the policy. Representativeness for the intended population "
       "is not assessed by Dataward."
       if validated and screened else "Validation or screening did not complete.")
    pii = doc.get("pii") or {}
    pii_tags = pii.get("tags") or []
    eu("Art. 10(5)", "Special categories of personal data: processed only where strictly necessary "
       "for bias detection, with safeguards",
       PARTIAL if pii.get("status") == "done" else MISSING,
       ([f"personal-data scan at ingest: {len(pii.get('columns') or [])} column(s) tagged"
         + (f" ({', '.join(sorted({t['category'] for t in pii_tags}))})" if pii_tags else ""),
         "examples stored masked; the data stays in the content store",
         f"policy acts on: {', '.join(pii.get('watched') or []) or '-'}"]
        if pii.get("status") == "done" else [pii.get("reason") or "no scan recorded"]),
       ("The scan records which columns hold personal data (identifiers such as e-mail, phone, "
        "IP address, payment card, national id, IBAN), so its presence is known and the policy "
        "can quarantine it. It does not detect the special categories of Art. 10(5) (GDPR "
        "Art. 9: health, ethnic origin, beliefs...), and the safeguards of 10(5)(a)-(f) "
        "(necessity, pseudonymisation, access control, deletion, records) are organisational "
        "and must be documented by the provider.")
       if pii.get("status") == "done" else (pii.get("reason") or "No personal-data scan is recorded."))
    chain_ok = audit.get("intact")
    eu("Art. 12", "Record-keeping: automatic recording of events",
       EVIDENCED if chain_ok else MISSING,
       [f"hash-chained audit log: {audit.get('entries', 0)} entries, "
        f"{'intact' if chain_ok else 'NOT intact'}",
        f"run {doc.get('run_id') or '-'}, code {doc.get('code_version')}",
        "OpenLineage events per stage"],
       "Every stage, decision and sign-off is appended to a tamper-evident audit log."
       if chain_ok else "The audit chain did not verify: " + "; ".join(audit.get("problems", [])[:3]))
    can = doc.get("canary") or {}
    can_done = can.get("status") == "done"
    can_line = (f"canary self-test: {can.get('caught')} of {can.get('n')} planted poisons caught "
                f"(recall {pct(can.get('recall'))}, floor {pct(can.get('min_recall'))}: "
                f"{'met' if can.get('met_floor') else 'NOT met'})" if can_done
                else f"canary self-test: {can.get('reason') or 'not run'}")
    eu("Art. 15(5)", "Measures against data poisoning",
       (EVIDENCED if can_done and can.get("met_floor") else PARTIAL) if screened else MISSING,
       [f"screens: {', '.join(sorted(screens)) or '-'}",
        f"verdict rule: {(figs.get('verdict') or {}).get('rule') or '-'}", can_line],
       ("The training data were screened for poisoned rows, the policy acted on the result, and "
        "planted canaries show the screens catch poisons of the tested kinds in this very data."
        if can_done and can.get("met_floor") else
        "The data were screened, but the canary self-test shows the screens missed too many planted "
        "poisons on this data: their verdict is weak evidence." if can_done else
        "The data were screened, but how well the screens detect poisons in this data was not "
        "measured (no canary self-test).")
       if screened else (scr.get("reason") or "The screens did not run."))

    def nist(ref, req, status, evidence, why):
        items.append(_item(NIST_AML, ref, req, status, evidence, why))

    nist("Availability poisoning", "Indiscriminate corruption (e.g. label flipping) degrading the model",
         EVIDENCED if screened and "label_noise" in screens else MISSING,
         ["label-noise screen (cleanlab on out-of-sample probabilities)", *_kind_recall(can, "label_flip")],
         "Mislabelled rows are found by label consistency and removed or quarantined."
         if screened else "The screens did not run.")
    nist("Targeted poisoning", "Rows crafted to change predictions on specific inputs",
         PARTIAL if screened and "influence" in screens else MISSING,
         ["influence screen (TracIn against the reference set)"],
         "Rows with outsized influence on the trusted reference set are scored; attacks on "
         "specific deployment inputs that the reference set does not contain can go unseen."
         if screened and "influence" in screens else "No influence screen ran.")
    backdoor = screened and ({"spectral", "activation_cluster"} & screens)
    nist("Backdoor poisoning", "Trigger patterns planted with (or without) changed labels",
         PARTIAL if backdoor else MISSING,
         ["label consistency against the reference-anchored probe (dirty-label triggers)",
          "spectral signatures, activation clustering (representation outliers)",
          *_kind_recall(can, "trigger"), *_detectable(figs.get("per_class") or {})],
         "Dirty-label backdoors are caught by label consistency; clean-label backdoors rely on "
         "the representation screens, which are weaker, so this is partial evidence."
         if backdoor else "No representation screen ran.")

    def rmf(ref, req, status, evidence, why):
        items.append(_item(NIST_RMF, ref, req, status, evidence, why))

    licence_known = bool(lic.get("expression"))
    rmf("MAP 4.1", "Legal risks of components, including third-party data, are mapped and documented",
        EVIDENCED if licence_known and has_origin else PARTIAL if licence_known else MISSING,
        [f"licence {lic.get('expression') or '-'} ({lic.get('use_class') or '-'}): "
         f"{'allowed' if lic.get('allowed_for_training') else 'NOT allowed'} for training",
         f"licence policy {lic.get('policy_version') or '-'}"],
        (lic.get("reason") or "") if licence_known else "No licence verdict is recorded.")
    rmf("MEASURE 2.7", "Security and resilience are evaluated and documented",
        EVIDENCED if screened and validated and can_done else PARTIAL if screened or validated else MISSING,
        ["poisoning screens with per-screen distributions and thresholds", "schema validation",
         can_line + ("; per-screen recall and AUROC in the canary section" if can_done else "")],
        "This report documents the evaluation, including how sensitive the screens were on this "
        "data (canary recall per screen against a policy floor)." if screened and validated and can_done
        else "The screens' sensitivity on this data was not measured (no canary self-test)."
        if screened and validated else "Validation or screening did not complete.")
    return items


def _kind_recall(canary: dict[str, Any], kind: str) -> list[str]:
    """The canary recall on one planted kind, as an evidence line (none if not planted)."""
    for k in canary.get("per_kind") or []:
        if k.get("kind") == kind:
            return [f"canaries ({k.get('name')}): {k.get('caught')} of {k.get('n')} caught ({pct(k.get('recall'))})"]
    return []


def coverage(items: list[dict[str, Any]]) -> dict[str, int]:
    out = {EVIDENCED: 0, PARTIAL: 0, MISSING: 0}
    for it in items:
        out[it["status"]] += 1
    return out


def _detectable(per_class: dict[str, Any]) -> list[str]:
    """The class-excess test's power (:func:`dataward.reports.verdict_text.power_statement`), from the
    report's per-class figures."""
    from dataward.reports.verdict_text import power_statement

    k, rows, trusted = (per_class.get(key) or {} for key in ("min_attack_rows", "rows", "trusted_rows"))
    line = power_statement([{"class": c, "rows": rows.get(c) or 0, "reference_rows": trusted.get(c, 0),
                             "min_attack_rows": k[c]} for c in k])
    return [line] if line else []
