"""Which requirement each recorded check evidences, and what is missing and why.

The mapping is explicit, one function per requirement family, so an auditor can
read exactly why a requirement is marked ``evidenced``, ``partial`` or ``missing``.
The texts paraphrase the requirements; the report links the check that evidences them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dataward.reports.formatting import pct
from screening.screens import evidence_of

EVIDENCED, PARTIAL, MISSING = "evidenced", "partial", "missing"

EU_AI_ACT = "EU AI Act (Regulation (EU) 2024/1689)"
NIST_AML = "NIST AI 100-2 (adversarial ML taxonomy): poisoning"
NIST_RMF = "NIST AI RMF 1.0"


def _item(framework: str, ref: str, requirement: str, status: str, evidence: list[str],
          why: str, to_evidence: str | None = None) -> dict[str, Any]:
    return {"framework": framework, "ref": ref, "requirement": requirement, "status": status,
            "evidence": evidence, "why": why, "to_evidence": to_evidence}


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
    f = _Facts.of(doc)
    items = _eu_design(f) + _eu_bias_and_gaps(f) + _eu_quality_and_records(f) + _nist_aml(f) + _nist_rmf(f)
    remedies = _remedies(f)
    for it in items:
        if it["status"] != EVIDENCED and not it["to_evidence"]:
            it["to_evidence"] = remedies.get(it["ref"])
    return items


@dataclass(frozen=True)
class _Facts:
    """What the mapping reads from the report document, read once."""

    doc: dict[str, Any]
    ds: dict[str, Any]
    prov: dict[str, Any]
    lic: dict[str, Any]
    val: dict[str, Any]
    scr: dict[str, Any]
    dec: dict[str, Any]
    audit: dict[str, Any]
    figs: dict[str, Any]
    screens: set[str]
    declared: dict[str, Any]
    balance: dict[str, Any]
    profile: dict[str, Any]
    pii: dict[str, Any]
    can: dict[str, Any]

    @classmethod
    def of(cls, doc: dict[str, Any]) -> _Facts:
        ds = doc["dataset"]
        figs = doc.get("figures") or {}
        card = doc.get("data_card") or {}
        return cls(doc=doc, ds=ds, prov=ds.get("provenance") or {}, lic=ds.get("licence") or {},
                   val=doc.get("validation") or {}, scr=doc.get("screening") or {}, dec=doc.get("decision") or {},
                   audit=doc.get("audit") or {}, figs=figs, screens={s["name"] for s in figs.get("screens", [])},
                   declared=(card.get("declared") or {}).get("values") or {},
                   balance=card.get("class_balance") or {}, profile=card.get("columns") or {},
                   pii=doc.get("pii") or {}, can=doc.get("canary") or {})

    @property
    def screened(self) -> bool:
        return self.scr.get("status") == "done"

    @property
    def validated(self) -> bool:
        return self.val.get("status") in ("passed", "failed")

    @property
    def has_origin(self) -> bool:
        return bool(self.prov.get("source_uri"))

    @property
    def compared(self) -> list[str]:
        return self.balance.get("compared_with") or []

    @property
    def lim(self) -> list[str]:
        return self.declared.get("limitations") or []

    @property
    def can_done(self) -> bool:
        return self.can.get("status") == "done"

    @property
    def can_line(self) -> str:
        can = self.can
        return (f"canary self-test: {can.get('caught')} of {can.get('n')} planted poisons caught "
                f"(recall {pct(can.get('recall'))}, floor {pct(can.get('min_recall'))}: "
                f"{'met' if can.get('met_floor') else 'NOT met'})" if self.can_done
                else f"canary self-test: {can.get('reason') or 'not run'}")

    @property
    def backdoor(self) -> bool:
        return self.screened and bool(evidence_of("representation") & self.screens)


def _unstated(declared: dict[str, Any], *keys: str) -> list[str]:
    """The manifest fields among ``keys`` that are not stated."""
    return [k for k in keys if not declared.get(k)]


def _state(keys: list[str]) -> str:
    return "state " + " and ".join(f"{k}" for k in keys) + " in the manifest (docs/importing.md#the-data-card)"


def _eu_design(f: _Facts) -> list[dict[str, Any]]:
    """EU AI Act Art. 10(2)(a)-(e): design, origin, preparation, assumptions, suitability."""
    items: list[dict[str, Any]] = []

    def eu(ref, req, status, evidence, why, to_evidence=None):
        items.append(_item(EU_AI_ACT, ref, req, status, evidence, why, to_evidence))
    ds, prov, declared, dec, val, scr, figs, balance = f.ds, f.prov, f.declared, f.dec, f.val, f.scr, f.figs, f.balance
    doc, ref_, has_origin, validated, screened = f.doc, f.ds.get("ref"), f.has_origin, f.validated, f.screened
    gaps_a = _unstated(declared, "purpose", "intended_uses") + (["kind"] if not ds.get("kind") else []) \
        + (["label_column"] if not ds.get("label_column") else [])
    eu("Art. 10(2)(a)", "Relevant design choices", PARTIAL if gaps_a else EVIDENCED,
       [fact("original purpose", declared.get("purpose"), "purpose"),
        fact("intended uses", declared.get("intended_uses"), "intended_uses"),
        fact("out-of-scope uses", declared.get("out_of_scope_uses"), "out_of_scope_uses"),
        fact("dataset kind", ds.get("kind"), "kind"), fact("label column", ds.get("label_column"), "label_column"),
        f"decision policy {dec.get('policy_version') or 'not recorded'}"],
       "The data design is recorded: the purpose and intended uses the data serve, the kind and label, "
       "the expectation suite and the decision policy." if not gaps_a else
       f"The data design is recorded only in part: {', '.join(gaps_a)} not stated.",
       None if not gaps_a else _state(gaps_a))
    gaps_b = (["source.uri"] if not has_origin else []) + \
        (["collection.method"] if not prov.get("collection_method") else []) + _unstated(declared, "purpose")
    eu("Art. 10(2)(b)", "Data collection processes, the origin of data and the original purpose of collection",
       EVIDENCED if not gaps_b else PARTIAL if has_origin else MISSING,
       [fact("source", prov.get("source_uri"), "source.uri"),
        fact("publisher", prov.get("publisher"), "source.publisher"),
        fact("collection method", prov.get("collection_method"), "collection.method"),
        fact("collection period", _period(prov), "collection.from and collection.to"),
        fact("original purpose", declared.get("purpose"), "purpose"),
        f"acquired {prov.get('acquired_at')} by {prov.get('acquired_by')}"],
       "Origin, collection method and the original purpose are recorded from the manifest." if not gaps_b
       else f"Not recorded: {', '.join(gaps_b)}.", None if not gaps_b else _state(gaps_b))
    diff = doc.get("diff") or {}
    diff_line = (f"diff against {diff.get('a')}: {(diff.get('rows') or {}).get('added', 0)} added, "
                 f"{(diff.get('rows') or {}).get('removed', 0)} removed, "
                 f"{(diff.get('rows') or {}).get('changed', 0)} relabelled row(s)" if diff.get("status") == "done"
                 else f"version diff: {diff.get('reason') or 'not recorded'}")
    gaps_c = _unstated(declared, "annotation", "preprocessing")
    eu("Art. 10(2)(c)", "Data-preparation operations (annotation, labelling, cleaning, enrichment)",
       PARTIAL if gaps_c else EVIDENCED,
       [fact("annotation", declared.get("annotation"), "annotation"),
        fact("preprocessing", declared.get("preprocessing"), "preprocessing"),
        f"{len(ds.get('parents') or [])} parent version(s) in the lineage tree",
        f"decision {dec.get('outcome') or 'not recorded'}: {dec.get('excluded_rows', 0) or 0} row(s) excluded",
        diff_line],
       ("The manifest states how the labels were made and which preprocessing was applied; lineage "
        "records every derivation, the decision which rows cleaning removes, and the version diff what "
        "changed since the last approved version." if not gaps_c else
        f"Lineage records derivations and cleaning, but {' and '.join(gaps_c)} are not stated: how the data "
        "were labelled and prepared before the import is unknown."),
       None if not gaps_c else _state(gaps_c))
    n_exp = val.get("n_expectations") or 0
    eu("Art. 10(2)(d)", "Formulation of assumptions about what the data measure and represent",
       EVIDENCED if validated and n_exp else MISSING,
       [fact("expectation suite", f"{val.get('suite')} ({n_exp} expectations)" if val.get("suite") else None,
             "kind, with a reviewed suite"),
        f"validation {val.get('status') or 'not run'}"],
       "The reviewed Great Expectations suite states the assumptions (schema, ranges, "
       "label set) as executable checks." if validated and n_exp
       else (val.get("reason") or "No expectation suite was run for this version."),
       None if validated and n_exp else
       f"dataward expectations init {ref_} --kind {ds.get('kind') or 'KIND'}; review and commit the suite, "
       f"then dataward rerun {ref_} --from validate --reason 'suite reviewed'")
    cls = balance.get("counts", {}).get("this version") or (figs.get("per_class") or {}).get("rows") or {}
    ok_e = validated and screened and balance.get("status") == "done"
    eu("Art. 10(2)(e)", "Availability, quantity and suitability of the data",
       EVIDENCED if ok_e else PARTIAL,
       [f"{ds.get('rows')} rows", f"{len(cls)} classes" + (f", smallest {min(cls.values())} rows" if cls else ""),
        f"class balance: {balance.get('sentence') or balance.get('reason') or 'not computed'}",
        f"validation {val.get('status') or 'not run'}", f"screening {scr.get('status') or 'not run'}"],
       "Quantity, class balance and suitability (validation and the screens) are evidenced." if ok_e
       else "Validation or screening did not complete, so suitability is not fully evidenced.",
       None if ok_e else ("validate with a reviewed suite (see Art. 10(2)(d))" if not validated
                          else "the screens must run (see section 5)"))
    return items


def _eu_bias_and_gaps(f: _Facts) -> list[dict[str, Any]]:
    """EU AI Act Art. 10(2)(f)-(h): biases, their mitigation, data gaps."""
    items: list[dict[str, Any]] = []

    def eu(ref, req, status, evidence, why, to_evidence=None):
        items.append(_item(EU_AI_ACT, ref, req, status, evidence, why, to_evidence))
    balance, dec, compared, lim, ref_ = f.balance, f.dec, f.compared, f.lim, f.ds.get("ref")
    examined = balance.get("status") == "done" and bool(compared)
    eu("Art. 10(2)(f)", "Examination for biases affecting health, safety or fundamental rights",
       PARTIAL if examined and lim else MISSING,
       [f"class balance against {', '.join(compared) or 'nothing (no earlier version, no reference)'}",
        fact("known limitations and biases", lim, "limitations")],
       ("The class balance is compared against the trusted reference or the previous approved version and "
        "the manifest declares the known limitations and biases; biases with respect to persons or groups "
        "(protected attributes) are not analysed by Dataward."
        if examined and lim else
        "No examination for biases is evidenced: " + "; ".join(
            x for x in ["no class balance comparison (no trusted reference, no approved earlier version)"
                        if not examined else "", "no known limitations or biases declared" if not lim else ""]
            if x) + "."),
       "attach a bias assessment with respect to the persons or groups the model affects (Dataward does "
       "not analyse protected attributes)" if examined and lim else
       "; ".join(x for x in [_state(["limitations"]) if not lim else "",
                             "give a trusted reference (manifest field reference) or approve an earlier version"
                             if not examined else ""] if x))
    eu("Art. 10(2)(g)", "Measures to detect, prevent and mitigate those biases",
       PARTIAL if lim and dec else MISSING,
       [fact("declared limitations and their mitigation", lim, "limitations"),
        f"decision {dec.get('outcome') or 'not recorded'} (the policy's measures against flagged rows)"],
       "The manifest declares known limitations with their mitigation and the policy acts on flagged rows; "
       "measures against biases affecting persons are the provider's, outside Dataward." if lim and dec
       else "No mitigation is declared.",
       "document the bias mitigation measures with the bias assessment of Art. 10(2)(f)" if lim and dec
       else _state(["limitations"]) + ", with the mitigation of each")
    reasons = dec.get("reasons") or []
    gaps = [r for r in reasons if r.get("outcome") in ("quarantine", "reject")]
    eu("Art. 10(2)(h)", "Identification of data gaps or shortcomings and how to address them",
       EVIDENCED if dec else MISSING,
       [f"{r.get('check')}: {r.get('why')}" for r in reasons] + [f"declared limitation: {x}" for x in lim]
       or ["no decision recorded"],
       ("Shortcomings found are listed with the rule that fired; a reviewer's sign-off records "
        "how they are addressed." if gaps else "Every check ran and none found a shortcoming.")
       if dec else "No decision has been recorded.",
       None if dec else f"dataward rerun {ref_} --from decide --reason 'decide'")
    return items


def _eu_quality_and_records(f: _Facts) -> list[dict[str, Any]]:
    """EU AI Act Art. 10(3), 10(5), 12 and 15(5): quality, personal data, records, poisoning."""
    items: list[dict[str, Any]] = []

    def eu(ref, req, status, evidence, why, to_evidence=None):
        items.append(_item(EU_AI_ACT, ref, req, status, evidence, why, to_evidence))
    doc, ds, val, scr, audit, figs, screens, declared, profile = (f.doc, f.ds, f.val, f.scr, f.audit, f.figs,
                                                                  f.screens, f.declared, f.profile)
    validated, screened, compared, pii, can, can_done, can_line = (f.validated, f.screened, f.compared, f.pii,
                                                                   f.can, f.can_done, f.can_line)
    leak = doc.get("leakage") or {}
    leaked = leak.get("status") == "done"
    ltot = leak.get("totals") or {}
    near_not_run = (leak.get("near") or {}).get("not_run")
    leak_lines = ([f"{(leak.get('exact') or {}).get('n_rows') or 0} exact duplicate row(s), "
                   f"{(leak.get('conflicting_labels') or {}).get('n_rows') or 0} row(s) with conflicting labels, "
                   + ("near duplicates not searched" if near_not_run else
                      f"{(leak.get('near') or {}).get('n_rows') or 0} near-duplicate row(s)"),
                   f"{ltot.get('eval_exact_eval_rows', 0) or 0} evaluation row(s) copied exactly"
                   + ("" if near_not_run else f" and {ltot.get('eval_near_eval_rows', 0) or 0} near-copied")
                   + f" in the training data ({len(leak.get('evaluation') or [])} evaluation set(s) checked)"]
                  if leaked else [f"leakage check: {leak.get('reason') or 'not run'}"])
    eu("Art. 10(3)", "Relevant, representative, free of errors and complete",
       PARTIAL if validated and screened else MISSING,
       [f"validation {val.get('status') or 'not run'}",
        f"{scr.get('n_flagged', 'no')} of {scr.get('n_rows', ds.get('rows'))} rows flagged as mislabelled or poisoned",
        *leak_lines, f"completeness: {profile.get('sentence') or profile.get('reason') or 'not profiled'}",
        f"representativeness: class balance against {', '.join(compared) or 'nothing'}",
        fact("intended uses (the population served)", declared.get("intended_uses"), "intended_uses")],
       "Errors are evidenced by validation, the label-noise screen and the duplicate checks "
       "(identical features under different labels are label errors; exact and near duplicates "
       "over-weight rows), completeness by the missing values per column, and training rows that copy "
       "evaluation rows are listed and judged by the policy. Representativeness is evidenced only as "
       "class balance against the reference or the previous version: whether the data represent the "
       "population the model serves is not assessed by Dataward."
       if validated and screened else "Validation or screening did not complete.",
       "attach a representativeness assessment for the population named in intended_uses"
       if validated and screened else _still_needed(validated, screened))
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
    return items


def _nist_aml(f: _Facts) -> list[dict[str, Any]]:
    """NIST AI 100-2 (adversarial machine learning): the three poisoning kinds."""
    items: list[dict[str, Any]] = []

    def nist(ref, req, status, evidence, why, to_evidence=None):
        items.append(_item(NIST_AML, ref, req, status, evidence, why, to_evidence))
    screened, screens, can, figs, backdoor = f.screened, f.screens, f.can, f.figs, f.backdoor

    nist("Availability poisoning", "Indiscriminate corruption (e.g. label flipping) degrading the model",
         EVIDENCED if screened and evidence_of("availability") & screens else MISSING,
         ["label-noise screen (cleanlab on out-of-sample probabilities)", *_kind_recall(can, "label_flip")],
         "Mislabelled rows are found by label consistency and removed or quarantined."
         if screened else "The screens did not run.")
    nist("Targeted poisoning", "Rows crafted to change predictions on specific inputs",
         PARTIAL if screened and evidence_of("targeted") & screens else MISSING,
         ["influence screen (TracIn against the reference set)"],
         "Rows with outsized influence on the trusted reference set are scored; attacks on "
         "specific deployment inputs that the reference set does not contain can go unseen."
         if screened and evidence_of("targeted") & screens else "No influence screen ran.")
    nist("Backdoor poisoning", "Trigger patterns planted with (or without) changed labels",
         PARTIAL if backdoor else MISSING,
         ["label consistency against the reference-anchored probe (dirty-label triggers)",
          "spectral signatures, activation clustering (representation outliers)",
          *_kind_recall(can, "trigger"), *_detectable(figs.get("per_class") or {})],
         "Dirty-label backdoors are caught by label consistency; clean-label backdoors rely on "
         "the representation screens, which are weaker, so this is partial evidence."
         if backdoor else "No representation screen ran.")
    return items


def _nist_rmf(f: _Facts) -> list[dict[str, Any]]:
    """NIST AI RMF: MAP 4.1 and MEASURE 2.7."""
    items: list[dict[str, Any]] = []

    def rmf(ref, req, status, evidence, why, to_evidence=None):
        items.append(_item(NIST_RMF, ref, req, status, evidence, why, to_evidence))
    lic, has_origin, screened, validated, can_done, can_line = (f.lic, f.has_origin, f.screened, f.validated,
                                                                f.can_done, f.can_line)

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


def _remedies(f: _Facts) -> dict[str, str]:
    """What would evidence each item that is not evidenced, by its ``ref``."""
    ref_, screened, validated, can_done, pii, backdoor = (f.ds.get("ref"), f.screened, f.validated, f.can_done,
                                                         f.pii, f.backdoor)
    rerun_screen = f"dataward rerun {ref_} --from screen --reason 'screen again'"
    canary_fix = ("add trusted rows of every class (manifest field reference) and review the flagged rows "
                  "by hand: the screens missed planted poisons on this data" if can_done
                  else "turn the canary self-test on (decision policy, canary:) and screen again: " + rerun_screen)
    return {
        "Art. 10(5)": "document the safeguards of Art. 10(5)(a)-(f) (necessity, pseudonymisation, access, "
                      "deletion, records) beside this report" if pii.get("status") == "done"
                      else "import the version again so the personal-data scan runs",
        "Art. 12": "dataward audit verify; restore the audit log from its backup",
        "Art. 15(5)": canary_fix if screened else rerun_screen,
        "Availability poisoning": rerun_screen,
        "Targeted poisoning": "add the deployment inputs of concern to the trusted reference set "
                              "(manifest field reference)" if screened else rerun_screen,
        "Backdoor poisoning": "add trusted rows of the least covered class (manifest field reference); "
                              "clean-label backdoors stay weakly covered by any screen" if backdoor else rerun_screen,
        "MAP 4.1": "state license and source.uri in the manifest",
        "MEASURE 2.7": canary_fix if screened and validated else _still_needed(validated, screened),
    }


def _still_needed(validated: bool, screened: bool) -> str:
    """What is left to run before validation and screening both evidence an item."""
    todo = ([] if validated else ["validate with a reviewed suite (see Art. 10(2)(d))"]) \
        + ([] if screened else ["screen the version (dataward rerun NAME@V --from screen)"])
    return "; ".join(todo)


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
