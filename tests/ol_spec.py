"""Validate OpenLineage events against the JSON Schemas in ``tests/openlineage_spec/``
(the spec and its standard facets) and ``lineage/openlineage/schemas/`` (Dataward's custom facets).

Every facet is checked against the schema its own ``_schemaURL`` names; a URL that
resolves to no schema here fails the check, so a custom facet cannot point nowhere.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
from referencing import Registry, Resource

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPEC_DIR = HERE / "openlineage_spec"
CUSTOM_DIR = REPO / "lineage" / "openlineage" / "schemas"
EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def _load_registry() -> Registry:
    resources = []
    for path in [*SPEC_DIR.glob("*.json"), *SPEC_DIR.glob("facets/*.json"), *CUSTOM_DIR.glob("*.json")]:
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


REGISTRY = _load_registry()
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("uri", raises=ValueError)
def _uri(value: str) -> bool:
    parts = urlsplit(value)
    return bool(parts.scheme) and bool(parts.netloc or parts.path)


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: str) -> bool:
    return "T" in value and datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value.lower()


def _validate(instance, ref: str) -> None:
    validator = jsonschema.Draft202012Validator({"$ref": ref}, registry=REGISTRY, format_checker=FORMATS)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        raise AssertionError(f"{ref}: {e.message} at {'/'.join(map(str, e.absolute_path))}")


def facets_of(event: dict):
    """(where, key, facet) for every facet of an event."""
    for k, f in (event["run"].get("facets") or {}).items():
        yield "run", k, f
    for k, f in (event["job"].get("facets") or {}).items():
        yield "job", k, f
    for side in ("inputs", "outputs"):
        for d in event.get(side) or []:
            for k, f in (d.get("facets") or {}).items():
                yield f"{side}:{d['name']}", k, f
            for k, f in (d.get("inputFacets") or {}).items():
                yield f"{side}:{d['name']}:input", k, f
            for k, f in (d.get("outputFacets") or {}).items():
                yield f"{side}:{d['name']}:output", k, f


def validate_event(event: dict) -> None:
    """Raise AssertionError unless ``event`` and each of its facets match their schemas."""
    _validate(event, EVENT_SCHEMA)
    assert event["schemaURL"] == EVENT_SCHEMA, event["schemaURL"]
    for where, key, facet in facets_of(event):
        url = facet["_schemaURL"]
        base = url.split("#")[0]
        try:
            REGISTRY.get_or_retrieve(base)
        except Exception:
            raise AssertionError(f"{where} facet {key!r}: no schema at {url}") from None
        try:
            _validate(facet, url)
        except AssertionError as exc:
            raise AssertionError(f"{where} facet {key!r}: {exc}") from None


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
