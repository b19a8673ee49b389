"""The data card: manifest fields (YAML and Croissant), the report's computed sections,
the compliance mapping that rests on them, and the published card and Croissant RAI fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report import isolated_home, make_version

CARD = {
    "purpose": "collected to compare tile classifiers",
    "annotation": "labels set by the generator; no human pass",
    "preprocessing": ["4x4 tiles", "values 0 to 16"],
    "intended_uses": ["testing the report"],
    "out_of_scope_uses": "anything else",
    "limitations": ["synthetic: no population is represented (mitigation: tests only)"],
}


def test_manifest_reads_and_checks_the_data_card_fields():
    from lineage.errors import LineageInputError
    from lineage.manifest import from_dict

    base = {"name": "t", "owner": "o@example.org", "license": "CC0-1.0", "source": {"uri": "https://x.org"}}
    m = from_dict({**base, **CARD})
    assert m.data_card["purpose"] == CARD["purpose"]
    assert m.data_card["out_of_scope_uses"] == ["anything else"]  # a text becomes a list of one
    assert m.data_card["preprocessing"] == ["4x4 tiles", "values 0 to 16"]
    assert from_dict(base).data_card["limitations"] == [] and from_dict(base).data_card["purpose"] is None
    with pytest.raises(LineageInputError, match="'limitations' must be a text or a list of texts"):
        from_dict({**base, "limitations": {"a": 1}})
    with pytest.raises(LineageInputError, match="'purpose' must be a text"):
        from_dict({**base, "purpose": ["a"]})


def test_croissant_rai_fields_become_data_card_fields(tmp_path):
    from lineage.croissant_manifest import load

    doc = {"@context": {}, "@type": "sc:Dataset", "name": "Tiles", "license": "CC-BY-4.0",
           "url": "https://example.org/tiles", "creator": {"name": "Lab", "email": "lab@example.org"},
           "rai:dataAnnotationProtocol": "by the generator",
           "rai:dataPreprocessingProtocol": ["resized", "clipped"],
           "rai:dataUseCases": "testing", "rai:dataLimitations": ["synthetic"], "rai:dataBiases": "none known",
           "dataward": {"purpose": "tests", "out_of_scope_uses": ["production"]}}
    path = tmp_path / "tiles.croissant.json"
    path.write_text(json.dumps(doc))
    card = load(path).data_card
    assert card["annotation"] == "by the generator" and card["preprocessing"] == ["resized", "clipped"]
    assert card["intended_uses"] == ["testing"] and card["limitations"] == ["synthetic", "none known"]
    assert card["purpose"] == "tests" and card["out_of_scope_uses"] == ["production"]


@pytest.fixture(scope="module")
def carded(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    with isolated_home(root) as h:
        full = make_version(root, name="tiles-card", card=CARD)
        bare = make_version(root, name="tiles-bare")
        yield {"home": h, "full": full, "bare": bare}


def _doc(ref):
    from dataward.context import Context
    from dataward.stage_results import finished

    out = finished(Context(), ref, "report")[2]
    return json.loads(Path(out["json"]).read_text()), Path(out["html"]).read_text()


def test_complete_manifest_evidences_every_item_or_says_why(carded):
    doc, html = _doc(carded["full"])
    card = doc["data_card"]
    assert not card["declared"]["missing"]
    bal = card["class_balance"]
    assert bal["status"] == "done" and set(bal["counts"]) == {"this version", "trusted reference"}
    assert sum(bal["counts"]["this version"].values()) == 120
    prof = card["columns"]
    assert prof["status"] == "done" and len(prof["columns"]) == 17
    p0 = next(c for c in prof["columns"] if c["name"] == "p0")
    assert p0["missing"] == 0 and 0 <= p0["min"] <= p0["max"] <= 16
    status = {c["ref"]: c for c in doc["compliance"]}
    assert doc["compliance_coverage"]["missing"] == 0, [c["ref"] for c in doc["compliance"] if c["status"] == "missing"]
    for ref in ("Art. 10(2)(a)", "Art. 10(2)(b)", "Art. 10(2)(c)"):
        assert status[ref]["status"] == "evidenced", status[ref]
    for c in doc["compliance"]:
        if c["status"] != "evidenced":
            assert c["why"] and c["to_evidence"], c
    assert 'id="data-card"' in html and "collected to compare tile classifiers" in html
    assert 'alt="share of rows per class"' in html


def test_missing_facts_name_the_manifest_field(carded):
    doc, html = _doc(carded["bare"])
    status = {c["ref"]: c for c in doc["compliance"]}
    assert status["Art. 10(2)(a)"]["status"] == "partial" and "purpose" in status["Art. 10(2)(a)"]["to_evidence"]
    assert status["Art. 10(2)(c)"]["status"] == "partial"
    assert "annotation" in status["Art. 10(2)(c)"]["to_evidence"]
    assert status["Art. 10(2)(f)"]["status"] == "missing" and "limitations" in status["Art. 10(2)(f)"]["to_evidence"]
    assert "original purpose: not stated (manifest field purpose)" in status["Art. 10(2)(b)"]["evidence"]
    assert "set <code>annotation</code> in the manifest" in html


def test_published_card_and_croissant_carry_the_data_card():
    from dataward.export.metadata_export import responsible_ai

    facts = {"collection_method": "generated", "publisher": None, "source_uri": "https://x.org",
             "collected_from": None, "collected_to": None, "parents": [], "pii_scan": {}, "pii": [],
             "screen": {}, "decide": {"outcome": "approve"}, "validate": {}, "excluded_rows": 0,
             "source_rows": 10, "licence": None,
             "data_card": {"declared": {"values": {**CARD, "out_of_scope_uses": ["anything else"]}},
                           "class_balance": {"sentence": "3 classes."}, "columns": {"sentence": "no gaps."}}}
    rai = responsible_ai(facts)
    assert "original purpose: collected to compare tile classifiers" in rai["data_collection"]
    assert rai["data_annotation_protocol"] == [CARD["annotation"]]
    assert rai["data_preprocessing_protocol"] == CARD["preprocessing"]
    assert "Intended: testing the report" in rai["data_use_cases"]
    assert "Out of scope: anything else" in rai["data_use_cases"]
    assert CARD["limitations"][0] in rai["data_limitations"]
    assert "Class balance: 3 classes." in rai["data_biases"]
