"""Personal-data scan: which columns hold e-mail addresses, phone numbers, IP addresses,
payment-card numbers, national identifiers or IBANs, or free text containing them.

Rules and checksums only (no models, no downloads), so it is fast and reproducible. A
vectorised RE2 pattern (pyarrow) finds candidates; field libraries decide:

=============== ============================================================ ==========================
tag             candidate pattern (prefilter)                                exact check
=============== ============================================================ ==========================
email           local@domain.tld                                             RFC-ish shape, TLD
phone           E.164 ``+CC ...``; NANP ``(AAA) BBB-CCCC``; national trunk   ``phonenumbers``' matcher:
                ``0AA BBBB CCCC`` (a separator is required, so bare ids are  ``+`` numbers must be valid;
                not phones)                                                  national ones valid in a
                                                                             region *and* grouped as
                                                                             that region writes them
ip_address      dotted quad, or hex groups with ``:``                        ``ipaddress`` parse
payment_card    13 to 19 digits, optional space/dash groups                  ``stdnum.luhn`` + issuer
                                                                             prefix
national_id     US SSN; UK NINO; ES DNI/NIE; IT codice fiscale; FR NIR;      ``python-stdnum`` per
                FI HETU; SE personnummer; DK CPR; BE national number         country (NINO: prefix rules)
iban            CC + 2 check digits + up to 30 alphanumerics                 ``stdnum.iban``: country
                                                                             length, BBAN format, mod 97
=============== ============================================================ ==========================

National phone numbers are read in the regions ``DATAWARD_PHONE_REGIONS`` names
(default ``US,GB,DE,FR,IT,ES,NL``). Exact grouping keeps lot numbers and dates out:
"lot 03/2024 1530" is a valid French number only if one ignores how French numbers are
written (and a month/year group such as "03/2024" never starts a national number).
Likewise "DE5112345678901" passes mod 97 but is no IBAN (German ones have 22
characters).

A column is tagged ``TAG`` when at least ``column_fraction`` of its sampled non-null
values *are* such an entity (after trimming), and ``free_text:TAG`` when fewer are but
at least ``min_text_matches`` values *contain* one inside other text (free text, notes,
addresses); a minority of whole values that happen to pass a check (random 16-digit ids
pass Luhn one time in ten) tags nothing.

Speed: values are streamed in record batches and a seeded uniform sample of at most
``sample_rows`` rows is scanned (every row of a smaller table). pyarrow's vectorised
RE2 search pre-filters the sample; at most ``validate_rows`` candidate values per column
and tag (a seeded sample) reach the Python checks, and the counts are scaled back up.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TAGS = ("email", "phone", "ip_address", "payment_card", "national_id", "iban")

# RE2-compatible pre-filters (pyarrow) and the Python patterns that extract candidates.
_EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}"
_PHONE = (r"\+[1-9]\d{0,2}(?:[ .\-]?\(?\d{1,4}\)?){2,6}"
          r"|\(?[2-9]\d{2}\)?[ .\-]\d{3}[ .\-]\d{4}"
          r"|\b0\d{1,4}[ .\-/]\d{3,4}[ .\-]?\d{3,4}\b")
_IPV4 = r"\b(?:\d{1,3}\.){3}\d{1,3}\b"
_IPV6 = r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}"
_CARD = r"\b(?:\d[ \-]?){12,18}\d\b"
_SSN = r"\b\d{3}-\d{2}-\d{4}\b"
# EU national identifiers with a distinctive shape (letters or separators): ES DNI and NIE,
# IT codice fiscale, FR NIR (15 digits, spaced), FI HETU, SE personnummer / DK CPR, BE number.
_EU_IDS = (r"\b\d{8}-?[A-Z]\b|\b[XYZ]-?\d{7}-?[A-Z]\b"
           r"|\b[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]\b"
           r"|\b[12] \d{2} \d{2} (?:\d{2}|2[AB]) \d{3} \d{3} \d{2}\b"
           r"|\b\d{6}[-+A]\d{3}[0-9A-Y]\b|\b\d{6}[-+]\d{4}\b"
           r"|\b\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}\b")
_NINO = r"\b[A-CEGHJ-PR-TW-Za-ceghj-pr-tw-z][A-CEGHJ-NPR-TW-Za-ceghj-npr-tw-z] ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d]\b"
_IBAN = r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"

_PREFILTER = {"email": _EMAIL, "phone": _PHONE, "ip_address": f"{_IPV4}|{_IPV6}",
              "payment_card": _CARD, "national_id": f"{_SSN}|{_NINO}|{_EU_IDS}", "iban": _IBAN}
_FINDERS = {tag: re.compile(p) for tag, p in _PREFILTER.items()}


def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a digit string (``stdnum.luhn``)."""
    from stdnum import luhn

    return luhn.is_valid(digits)


def _card_ok(s: str) -> bool:
    digits = re.sub(r"[ \-]", "", s)
    if not (13 <= len(digits) <= 19) or not digits.isdigit():
        return False
    # Issuer prefixes (Visa 4, Mastercard 51-55 / 2221-2720, Amex 34/37, Discover 6011/64/65,
    # JCB 35, Diners 36/38/300-305, UnionPay 62): cuts Luhn's 1-in-10 false positives on ids.
    if not re.match(r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[4-8]|30[0-5]|6(?:011|[245])", digits):
        return False
    return len(set(digits)) > 1 and luhn_ok(digits)


def iban_ok(s: str) -> bool:
    """ISO 13616 IBAN (``stdnum.iban``): the country's length and BBAN format, mod 97 = 1."""
    from stdnum import iban

    return iban.is_valid(s)


def ssn_ok(s: str) -> bool:
    """US social security number (``stdnum.us.ssn``: no 000, 666, 9xx, 00, 0000, known fakes)."""
    from stdnum.us import ssn

    return re.fullmatch(r"\d{3}-\d{2}-\d{4}", s) is not None and ssn.is_valid(s)


def _eu_id_ok(s: str) -> bool:
    from stdnum.be import nn
    from stdnum.dk import cpr
    from stdnum.es import dni, nie
    from stdnum.fi import hetu
    from stdnum.fr import nir
    from stdnum.it import codicefiscale
    from stdnum.se import personnummer

    for module in (dni, nie, codicefiscale, nir, hetu, personnummer, cpr, nn):
        try:
            if module.is_valid(s):
                return True
        except Exception:  # a module may choke on another country's shape
            continue
    return False


def _nino_ok(s: str) -> bool:
    s = s.replace(" ", "").upper()
    return (re.fullmatch(_NINO.replace(r"\b", "").replace(" ?", ""), s) is not None
            and s[:2] not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"))


def _ip_ok(s: str) -> bool:
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return False
    return not ip.is_unspecified


# A month and a year ("03/2024", "11-2025"): lot and batch numbers, expiry dates.
_MONTH_YEAR = re.compile(r"(?<!\d)(?:0?[1-9]|1[0-2])[/.\-](?:19|20)\d{2}(?!\d)")


def phone_regions() -> tuple[str, ...]:
    """Regions national phone numbers are read in (``DATAWARD_PHONE_REGIONS``)."""
    raw = os.environ.get("DATAWARD_PHONE_REGIONS", "US,GB,DE,FR,IT,ES,NL")
    return tuple(r.strip().upper() for r in raw.split(",") if r.strip())


def find_phones(text: str) -> list[str]:
    """Phone numbers in ``text`` by ``phonenumbers``' matcher: international (``+``) numbers
    that are valid, national ones valid in a region and grouped as that region writes them."""
    import phonenumbers
    from phonenumbers import Leniency, PhoneNumberMatcher

    found: dict[int, str] = {}
    if "+" in text:
        for m in PhoneNumberMatcher(text, "ZZ", leniency=Leniency.VALID):
            found.setdefault(m.start, m.raw_string)
    for region in phone_regions():
        for m in PhoneNumberMatcher(text, region, leniency=Leniency.EXACT_GROUPING):
            if _MONTH_YEAR.search(m.raw_string):
                continue
            if not m.raw_string.lstrip().startswith("+") or phonenumbers.is_valid_number(m.number):
                found.setdefault(m.start, m.raw_string)
    return [found[k] for k in sorted(found)]


def _email_ok(s: str) -> bool:
    local, _, domain = s.rpartition("@")
    return 0 < len(local) <= 64 and ".." not in s and not local.startswith(".") and len(domain) <= 253


def _nid_ok(s: str) -> bool:
    return ssn_ok(s) or _nino_ok(s) or _eu_id_ok(s)


_CHECKS = {"email": _email_ok, "ip_address": _ip_ok, "payment_card": _card_ok,
           "national_id": _nid_ok, "iban": iban_ok}


def find_entities(text: str, tag: str) -> list[str]:
    """The validated entities of kind ``tag`` inside ``text``."""
    if tag == "phone":
        return find_phones(text)
    return [m.group(0) for m in _FINDERS[tag].finditer(text) if _CHECKS[tag](m.group(0))]


def mask(value: str, tag: str) -> str:
    """A value with most characters hidden (examples in reports never show the data)."""
    v = value.strip()
    if tag == "email":
        local, _, domain = v.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if tag == "ip_address":
        sep = ":" if ":" in v else "."
        return v.split(sep)[0] + sep + "***"
    keep = 4 if tag in ("payment_card", "iban") else 2
    chars = [c for c in v if c.isalnum()]
    return "*" * max(0, len(chars) - keep) + "".join(chars[-keep:])


@dataclass
class ColumnTag:
    """One finding: ``column`` holds (``tag``) or contains (``free_text:tag``) personal data.

    fraction: share of the column's sampled non-null values that matched.
    matches / sampled: the counts behind it. examples: up to three masked values.
    """

    column: str
    tag: str
    fraction: float
    matches: int
    sampled: int
    examples: list[str] = field(default_factory=list)

    @property
    def category(self) -> str:
        return self.tag.split(":")[-1]

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "tag": self.tag, "category": self.category,
                "fraction": round(self.fraction, 6), "matches": self.matches, "sampled": self.sampled,
                "examples": self.examples}


def _sample(batches: Iterable[pa.RecordBatch], n_rows: int | None, sample_rows: int, seed: int
            ) -> pa.Table | None:
    rng = np.random.default_rng(seed)
    rate = 1.0 if not n_rows or n_rows <= sample_rows else sample_rows / n_rows
    parts = []
    taken = 0
    for batch in batches:
        if rate < 1.0:
            keep = np.flatnonzero(rng.random(batch.num_rows) < rate)
            batch = batch.take(pa.array(keep))
        if taken + batch.num_rows > sample_rows:
            batch = batch.slice(0, sample_rows - taken)
        if batch.num_rows:
            parts.append(batch)
            taken += batch.num_rows
        if taken >= sample_rows:
            break
    if not parts:
        return None
    return pa.Table.from_batches(parts).combine_chunks() if len(parts) > 1 else pa.Table.from_batches(parts)


def scannable(t: pa.DataType) -> bool:
    """Whether :func:`scan_batches` looks at a column of type ``t`` (integers and text)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)


def scan_batches(batches: Iterable[pa.RecordBatch], *, n_rows: int | None = None,
                 sample_rows: int = 20_000, column_fraction: float = 0.3, min_text_matches: int = 1,
                 seed: int = 0) -> list[ColumnTag]:
    """Scan record batches (one table's worth, streamed) and return the column tags.

    Args:
        batches: the table's record batches (read lazily; reading stops once the sample is full).
        n_rows: the table's row count when known; makes the sample uniform over the whole
            table instead of the first ``sample_rows`` rows.
        sample_rows: the most rows scanned.
        column_fraction: share of values that must be an entity for a column tag.
        min_text_matches: values that must contain an entity for a ``free_text:`` tag.
    """
    table = _sample(batches, n_rows, sample_rows, seed)
    if table is None:
        return []
    out: list[ColumnTag] = []
    for name in table.column_names:
        col = table.column(name)
        t = col.type
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_integer(t):
            out.extend(_scan_integers(name, col))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            out.extend(_scan_strings(name, col, column_fraction, min_text_matches))
    return out


def _scan_integers(name: str, col: pa.ChunkedArray) -> list[ColumnTag]:
    """Card numbers stored as integers (13 to 19 digits)."""
    vals = pc.drop_null(col).to_numpy(zero_copy_only=False)
    if not len(vals):
        return []
    big = vals[np.abs(vals.astype(np.float64)) >= 1e12]
    if len(big) < 0.3 * len(vals):
        return []
    hits = [str(int(v)) for v in big if _card_ok(str(int(v)))]
    if len(hits) < 0.3 * len(vals):
        return []
    return [ColumnTag(name, "payment_card", len(hits) / len(vals), len(hits), len(vals),
                      [mask(h, "payment_card") for h in hits[:3]])]


def _scan_strings(name: str, col: pa.ChunkedArray, column_fraction: float, min_text_matches: int,
                  validate_rows: int = 1000, seed: int = 0) -> list[ColumnTag]:
    col = pc.drop_null(col)
    n = len(col)
    if not n:
        return []
    rng = np.random.default_rng(seed)
    found: list[ColumnTag] = []
    for tag in TAGS:
        candidates = pc.match_substring_regex(col, _PREFILTER[tag])
        n_cand = pc.sum(candidates).as_py() or 0
        if not n_cand:
            continue
        values = pc.filter(col, candidates)
        # The exact checks run in Python on at most ``validate_rows`` candidates (seeded
        # sample); counts are scaled back up, so the cost does not grow with the sample.
        if n_cand > validate_rows:
            values = values.take(pa.array(np.sort(rng.choice(n_cand, validate_rows, replace=False))))
        values = values.to_pylist()
        scale = n_cand / len(values)
        whole, contains, examples = 0, 0, []
        for v in values:
            ents = find_entities(v, tag)
            if not ents:
                continue
            contains += 1
            if len(ents) == 1 and ents[0] == v.strip():
                whole += 1
            if len(examples) < 3:
                examples.append(mask(ents[0], tag))
        whole, contains = round(whole * scale), round(contains * scale)
        if whole and whole >= column_fraction * n:
            found.append(ColumnTag(name, tag, whole / n, whole, n, examples))
        elif contains - whole >= min_text_matches:
            # only values where the entity sits inside other text count: a few id-like values
            # that happen to pass a checksum do not make a column free text
            found.append(ColumnTag(name, f"free_text:{tag}", contains / n, contains, n, examples))
    # A card number or IBAN is also a digit run that the phone pattern can read; keep the
    # stronger (checksummed) finding only.
    strong = {t.column for t in found if t.category in ("payment_card", "iban") and ":" not in t.tag}
    return [t for t in found if not (t.category == "phone" and t.column in strong)]


def scan_table(table: pa.Table, **kwargs) -> list[ColumnTag]:
    """:func:`scan_batches` over an in-memory table."""
    return scan_batches(table.to_batches(), n_rows=table.num_rows, **kwargs)
