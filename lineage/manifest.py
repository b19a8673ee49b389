"""The dataset manifest: who made the data, where it came from, under which licence.

Required keys: ``name``, ``source.uri``, ``license``, ``owner``. Optional:
``description``, ``label_column``, ``kind``, ``parents`` (list of NAME[@VERSION]),
``source.publisher``, ``collection.method``, ``collection.from``, ``collection.to``,
``reference`` (a trusted reference set for the influence screen),
``evaluation_sets`` (named evaluation sets for leakage checks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from lineage.errors import LineageInputError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
REQUIRED = ("name", "source.uri", "license", "owner")
KNOWN_TOP = {"name", "description", "owner", "license", "kind", "label_column", "parents",
             "source", "collection", "reference", "evaluation_sets", "version_note", "tags"}


@dataclass(frozen=True)
class Manifest:
    name: str
    owner: str
    license: str
    source_uri: str
    publisher: str | None = None
    description: str | None = None
    kind: str | None = None
    label_column: str | None = None
    parents: tuple[str, ...] = ()
    collection_method: str | None = None
    collected_from: str | None = None
    collected_to: str | None = None
    reference: str | None = None
    evaluation_sets: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)
    base_dir: Path | None = None  # relative paths in the manifest are relative to this

    def side_file(self, value: str) -> Path:
        """A path named in the manifest (reference, evaluation set), made absolute."""
        p = Path(value).expanduser()
        if not p.is_absolute():
            p = (self.base_dir or Path.cwd()) / p
        return p


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``NAME[@VERSION]``; the version is a positive integer or absent (latest)."""
    name, _, version = ref.strip().partition("@")
    if not NAME_RE.match(name):
        raise LineageInputError(
            f"{ref!r} is not a dataset name (lower-case letters, digits, '.', '_' and '-')"
        )
    if not version:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise LineageInputError(f"{ref!r}: the version after '@' must be a positive number")
    return name, int(version)


def load(path: str | Path) -> Manifest:
    """Read and check a manifest file; LineageInputError with one clear message if wrong."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, a FIFO (which would block), a device
        raise LineageInputError(f"manifest {path} is not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LineageInputError(f"manifest {path} does not exist") from None
    except UnicodeDecodeError:
        raise LineageInputError(f"manifest {path} is not UTF-8 text") from None
    except OSError as exc:
        raise LineageInputError(f"cannot read manifest {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise LineageInputError(f"manifest {path} is not valid YAML{where}") from None
    return from_dict(raw, where=str(path), base_dir=path.resolve().parent)


def from_dict(raw: Any, *, where: str = "manifest", base_dir: Path | None = None) -> Manifest:
    if not isinstance(raw, dict):
        raise LineageInputError(f"{where} must be a YAML mapping of keys to values")
    source = raw.get("source") or {}
    if isinstance(source, str):
        source = {"uri": source}
    if not isinstance(source, dict):
        raise LineageInputError(f"{where}: 'source' must be a mapping with a 'uri'")
    values = {"name": raw.get("name"), "source.uri": source.get("uri"),
              "license": raw.get("license"), "owner": raw.get("owner")}
    missing = [k for k in REQUIRED if values[k] in (None, "")]
    if missing:
        raise LineageInputError(f"{where} is missing required key{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(m) for m in missing)}")
    for key in ("name", "license", "owner"):
        if not isinstance(raw[key], str):
            raise LineageInputError(f"{where}: {key!r} must be a string")
    if not isinstance(source["uri"], str):
        raise LineageInputError(f"{where}: 'source.uri' must be a string")
    unknown = sorted(set(raw) - KNOWN_TOP)
    if unknown:
        raise LineageInputError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(KNOWN_TOP))})")
    name = raw["name"].strip()
    if not NAME_RE.match(name):
        raise LineageInputError(
            f"{where}: name {name!r} must be lower-case letters, digits, '.', '_' or '-' "
            "(at most 128 characters, starting with a letter or digit)"
        )
    parents = raw.get("parents") or []
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise LineageInputError(f"{where}: 'parents' must be a list of NAME[@VERSION]")
    for p in parents:
        parse_ref(p)
    collection = raw.get("collection") or {}
    if not isinstance(collection, dict):
        raise LineageInputError(f"{where}: 'collection' must be a mapping")
    evals = raw.get("evaluation_sets") or []
    if isinstance(evals, str):
        evals = [evals]
    for key in ("description", "kind", "label_column", "reference"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise LineageInputError(f"{where}: {key!r} must be a string")
    return Manifest(
        name=name,
        owner=raw["owner"].strip(),
        license=raw["license"].strip(),
        source_uri=source["uri"].strip(),
        publisher=_opt_str(source.get("publisher")),
        description=_opt_str(raw.get("description")),
        kind=_opt_str(raw.get("kind")),
        label_column=_opt_str(raw.get("label_column")),
        parents=tuple(parents),
        collection_method=_opt_str(collection.get("method")),
        collected_from=_opt_str(collection.get("from")),
        collected_to=_opt_str(collection.get("to")),
        reference=_opt_str(raw.get("reference")),
        evaluation_sets=tuple(str(e) for e in evals),
        raw=_jsonable(raw),
        base_dir=base_dir,
    )


def _opt_str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    return str(v).strip() or None


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    return v
