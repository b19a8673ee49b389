"""Personal-data scan on a generated table with known answers (checks/pii.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from checks import pii


def _luhn_complete(prefix: str, length: int, rng) -> str:
    body = prefix + "".join(str(d) for d in rng.integers(0, 10, size=length - len(prefix) - 1))
    for check in "0123456789":
        if pii.luhn_ok(body + check):
            return body + check
    raise AssertionError


def _iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(ch, 36)) for ch in moved)) % 97
    return f"{country}{check:02d}{bban}"


def known_table(n: int = 400, seed: int = 1) -> tuple[pa.Table, dict[str, str]]:
    """Columns with planted personal data and decoys; returns (table, column -> expected tag)."""
    rng = np.random.default_rng(seed)
    names = ["ana", "bo", "chen", "dmitri", "eve", "farah"]
    cards = [_luhn_complete(rng.choice(["4", "51", "37", "6011"]), 16, rng) for _ in range(n)]
    ssn = [f"{rng.integers(1, 665):03d}-{rng.integers(1, 99):02d}-{rng.integers(1, 9999):04d}" for _ in range(n)]
    table = pa.table({
        "email": [f"{names[i % 6]}.{i}@example{i % 3}.org" for i in range(n)],
        "phone": [f"+44 20 7946 {rng.integers(0, 9999):04d}" for _ in range(n)],
        "ip": [f"10.{rng.integers(0, 255)}.{rng.integers(0, 255)}.{rng.integers(1, 255)}" if i % 2
               else f"2001:db8::{rng.integers(1, 65535):x}" for i in range(n)],
        "card": [f"{c[:4]} {c[4:8]} {c[8:12]} {c[12:]}" for c in cards],
        "ssn": ssn,
        "nino": [f"AB{rng.integers(0, 999999):06d}C" for _ in range(n)],
        "iban": [_iban("DE", f"{rng.integers(10**17, 10**18)}") for _ in range(n)],
        "notes": [f"call back re order {i}" + (f", mail {names[i % 6]}@corp.example.com" if i % 10 == 0 else "")
                  for i in range(n)],
        # decoys: must stay untagged
        "order_id": [f"{rng.integers(10**15, 10**16)}" for _ in range(n)],       # 16 digits, random
        "version": [f"{rng.integers(0, 9)}.{rng.integers(0, 9)}.{rng.integers(0, 9)}" for _ in range(n)],
        "bad_ssn": [f"{rng.choice(['000', '666', '912'])}-{rng.integers(1, 99):02d}-{rng.integers(1, 9999):04d}"
                    for _ in range(n)],
        "time": [f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}" for _ in range(n)],
        "comment": ["nothing personal here, just words" for _ in range(n)],
        "amount": rng.normal(size=n),
    })
    expected = {"email": "email", "phone": "phone", "ip": "ip_address", "card": "payment_card",
                "ssn": "national_id", "nino": "national_id", "iban": "iban", "notes": "free_text:email"}
    return table, expected


def test_scan_finds_planted_columns_and_spares_decoys():
    table, expected = known_table()
    found = {(t.column, t.tag) for t in pii.scan_table(table)}
    want = set(expected.items())
    tp = len(found & want)
    precision, recall = tp / len(found), tp / len(want)
    assert (precision, recall) == (1.0, 1.0), (found - want, want - found)


def test_fractions_examples_masked_and_card_numbers_stored_as_integers():
    rng = np.random.default_rng(3)
    cards = [int(_luhn_complete("4", 16, rng)) for _ in range(50)]
    table, _ = known_table(n=60)
    table = table.append_column("card_int", pa.array(cards + [4] * 10, pa.int64()))
    tags = {t.column: t for t in pii.scan_table(table)}
    assert tags["card_int"].tag == "payment_card" and tags["card_int"].fraction == pytest.approx(50 / 60)
    assert tags["notes"].fraction == pytest.approx(6 / 60)
    for t in tags.values():
        for ex in t.examples:
            assert ex not in [str(v) for v in table.column(t.column).to_pylist()]  # never the raw value
    assert tags["card"].examples[0].startswith("*") and tags["email"].examples[0].endswith(".org")


def test_checksums():
    assert pii.luhn_ok("4111111111111111") and not pii.luhn_ok("4111111111111112")
    assert pii.iban_ok("GB82 WEST 1234 5698 7654 32") and not pii.iban_ok("GB82 WEST 1234 5698 7654 33")
    assert pii.ssn_ok("123-45-6789") and not pii.ssn_ok("666-45-6789") and not pii.ssn_ok("123-00-6789")
    assert pii.find_entities("srv at 192.168.1.300 or 192.168.1.30", "ip_address") == ["192.168.1.30"]


def test_sampling_is_bounded_and_uniform():
    table, expected = known_table(n=1200)
    tags = pii.scan_batches(table.to_batches(max_chunksize=200), n_rows=1200, sample_rows=300)
    assert {t.column for t in tags} == set(expected)
    assert all(t.sampled <= 300 for t in tags)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend (see conftest)
def test_ingest_records_tags_emits_them_and_policy_quarantines(home, tmp_path, monkeypatch):
    """On SQLite and PostgreSQL (the ``home`` fixture): migration 0004, tags, facet, policy."""
    import json

    import pyarrow.parquet as pq

    monkeypatch.delenv("DATAWARD_POLICY", raising=False)
    from dataward.context import Context
    from dataward.stages.decide import record_decision
    from dataward.stages.ingest import ingest, scan_personal_data
    from lineage import tags
    from lineage.db import dispose_all

    table, expected = known_table(n=120)
    table = table.append_column("label", pa.array([i % 2 for i in range(120)]))
    pq.write_table(table, tmp_path / "people.parquet")
    try:
        ctx = Context()
        result = ingest(ctx, tmp_path / "people.parquet", manifest={
            "name": "people", "owner": "t@example.com", "license": "CC-BY-4.0",
            "source": {"uri": "https://example.com"}, "label_column": "label"})
        with ctx.session() as s:
            recorded = {(t["column"], t["tag"]) for t in tags.column_tags(s, result.version_id)}
        assert recorded == set(expected.items())
        assert scan_personal_data(ctx, result.version_id) == scan_personal_data(ctx, result.version_id)
        events = [json.loads(line) for line in ctx.emitter.events_file.read_text().splitlines()]
        complete = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "dataward.ingest"]
        facet = complete[-1]["outputs"][0]["facets"]["tags"]["tags"]
        assert {(t["field"], t["value"]) for t in facet} == set(expected.items())
        assert all(t["key"] == "pii" for t in facet)
        decision = record_decision(ctx, result.ref)
        pii_reasons = [r for r in decision["reasons"] if r["check"] == "personal data"]
        assert decision["outcome"] == "quarantine" and pii_reasons
        assert "card (payment_card)" in pii_reasons[0]["why"] and "email" not in pii_reasons[0]["why"]
        assert {t["tag"] for t in decision["pii"]["tags"]} >= {"email", "payment_card"}
    finally:
        dispose_all()


# -- identifiers through python-stdnum and phonenumbers -------------------------------------

@pytest.mark.parametrize("text, tag, found", [
    # the two false positives of the rule-only scan
    ("DE5112345678901", "iban", False),          # mod 97 holds, but German IBANs have 22 characters
    ("lot 03/2024 1530", "phone", False),        # a lot number, not a French phone number
    ("030/12345678", "phone", True),             # Berlin, written the German way
    # IBANs: per-country length and BBAN format
    ("DE89 3704 0044 0532 0130 00", "iban", True),
    ("GB82WEST12345698765432", "iban", True),
    ("FR1420041010050500013M02606", "iban", True),
    ("GB82WEST12345698765433", "iban", False),   # check digits wrong
    ("NL91ABNA0417164300", "iban", True),
    ("NL91ABNA041716430", "iban", False),        # one character short for NL
    # payment cards: Luhn and issuer
    ("4111 1111 1111 1111", "payment_card", True),
    ("5500-0000-0000-0004", "payment_card", True),
    ("4111 1111 1111 1112", "payment_card", False),
    ("9111 1111 1111 1111", "payment_card", False),  # no issuer starts with 9
    # national identifiers
    ("536-90-4399", "national_id", True),        # US SSN
    ("078-05-1120", "national_id", False),       # the famous specimen SSN, never valid
    ("AB123456C", "national_id", True),          # UK NINO
    ("12345678Z", "national_id", True),          # ES DNI
    ("12345678A", "national_id", False),         # ES DNI, wrong letter
    ("X1234567L", "national_id", True),          # ES NIE
    ("RSSMRA85T10A562S", "national_id", True),   # IT codice fiscale
    ("RSSMRA85T10A562T", "national_id", False),
    ("2 95 10 99 126 111 93", "national_id", True),  # FR NIR
    ("131052-308T", "national_id", True),        # FI HETU
    ("131052-308U", "national_id", False),
    ("880320-0016", "national_id", True),        # SE personnummer
    ("85.07.30-033.28", "national_id", True),    # BE national number
    # phones: international numbers valid, national ones as the region writes them
    ("call +44 20 7946 0018 today", "phone", True),
    ("+49 30 12345678", "phone", True),
    ("(212) 555-0182", "phone", True),
    ("020 7946 0018", "phone", True),
    ("01 42 68 53 00", "phone", True),
    ("+1 000 000 0000", "phone", False),         # not a valid number anywhere
    ("order 2024 1530 0099", "phone", False),
    ("build 12-345-6789", "phone", False),
    ("version 1.2.3, 2024-03-15 10:30:00", "phone", False),
])
def test_identifier_table(text, tag, found):
    assert bool(pii.find_entities(text, tag)) is found, pii.find_entities(text, tag)


def test_false_positives_tag_no_column():
    n = 200
    table = pa.table({"lot": [f"lot {i % 12 + 1:02d}/2024 {1000 + i}" for i in range(n)],
                      "ref": ["DE5112345678901"] * n})
    assert pii.scan_table(table) == []


def test_phone_regions_are_configurable(monkeypatch):
    monkeypatch.setenv("DATAWARD_PHONE_REGIONS", "GB")
    assert pii.find_entities("020 7946 0018", "phone")
    assert not pii.find_entities("01 42 68 53 00", "phone")  # French, not read in GB only
