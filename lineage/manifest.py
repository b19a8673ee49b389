"""The dataset manifest: who made the data, where it came from, under which licence.

Required keys: ``name``, ``source.uri``, ``license``, ``owner``. Optional:
``description``, ``label_column``, ``kind``, ``parents`` (list of NAME[@VERSION]),
``source.publisher``, ``collection.method``, ``collection.from``, ``collection.to``,
``reference`` (a trusted reference set for the influence screen),
``evaluation_sets`` (named evaluation sets for leakage checks), and the data card's
declared facts (:data:`DATA_CARD_FIELDS`): ``purpose``, ``annotation`` (text),
``preprocessing``, ``intended_uses``, ``out_of_scope_uses``, ``limitations`` (a text or
a list of texts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from lineage.errors import LineageInputError
from lineage.messages import printable

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
#: A dataset kind names the GX suite file ``gx/expectations/<kind>.json``.
KIND_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: A manifest is a page of metadata: bounded in size, in nodes once aliases are
#: expanded (a YAML alias bomb expands to billions), and in the length of one value.
MAX_MANIFEST_BYTES = 1 << 20
MAX_NODES = 10_000
MAX_VALUE_CHARS = 4_096
#: Versions are 1, 2, ... in a 32-bit integer column (PostgreSQL INTEGER).
MAX_VERSION = 2**31 - 1
_VERSION_RE = re.compile(r"[0-9]+")
REQUIRED = ("name", "source.uri", "license", "owner")
#: The data card's declared facts (Datasheets for Datasets, Data Cards, EU AI Act Art. 10(2)):
#: key -> (what it says, whether it is a list of texts). Stored with the manifest in lineage.
DATA_CARD_FIELDS = {
    "purpose": ("why the data were originally collected", False),
    "annotation": ("how the labels were made: by whom, with which instructions and checks", False),
    "preprocessing": ("the steps applied to the data before this import", True),
    "intended_uses": ("what the data are meant for (tasks, the population a model serves)", True),
    "out_of_scope_uses": ("uses the data are not fit for", True),
    "limitations": ("known gaps, biases and limitations, with their mitigation", True),
}
KNOWN_TOP = {"name", "description", "owner", "license", "kind", "label_column", "parents",
             "source", "collection", "reference", "evaluation_sets", "version_note", "tags",
             *DATA_CARD_FIELDS}


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
    data_card: dict[str, Any] = field(default_factory=dict)  # see data_card_fields()
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
    # ASCII digits only ('²'.isdigit() is true but int() refuses it), and no larger than
    # the database's version column holds: a bigger number names no version, it is bad input.
    if not _VERSION_RE.fullmatch(version) or not version.strip("0"):
        raise LineageInputError(f"'{printable(ref, 60)}': the version after '@' must be a positive number")
    digits = version.lstrip("0")
    if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
        raise LineageInputError(f"'{printable(ref, 60)}': the version after '@' is larger than any version "
                                f"can be (at most {MAX_VERSION})")
    return name, int(digits)


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
    if len(text) > MAX_MANIFEST_BYTES:
        raise LineageInputError(f"manifest {path} is larger than {MAX_MANIFEST_BYTES // 1024} KiB: "
                                "a manifest describes the data, it does not hold it")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise LineageInputError(f"manifest {path} is not valid YAML{where}") from None
    except RecursionError:
        raise LineageInputError(f"manifest {path} is nested too deeply") from None
    return from_dict(raw, where=str(path), base_dir=path.resolve().parent)


def _expanded_size(v: Any, limit: int) -> int:
    """How many nodes ``v`` has once every YAML alias is expanded, counted without
    expanding anything (each shared object is sized once), stopping past ``limit``.

    PyYAML builds an alias as a reference to one object, so a bomb costs nothing to
    load; it explodes only when walked (copied, serialised). This walk is linear in
    the number of distinct objects.
    """
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(x: Any, depth: int) -> int:
        if not isinstance(x, (dict, list)):
            return 1
        key = id(x)
        if key in sizes:
            return sizes[key]
        if key in busy or depth > 64:  # a recursive alias, or absurd nesting
            return limit + 1
        busy.add(key)
        children = list(x.keys()) + list(x.values()) if isinstance(x, dict) else x
        total = 1
        for c in children:
            total += size(c, depth + 1)
            if total > limit:
                break
        busy.discard(key)
        sizes[key] = total
        return total

    return size(v, 0)


def _check_values(raw: Any, where: str) -> None:
    """Bounded size (aliases expanded), no over-long value, no control characters."""
    if _expanded_size(raw, MAX_NODES) > MAX_NODES:
        raise LineageInputError(
            f"{where} expands to more than {MAX_NODES} values (YAML aliases or nesting): refused")

    def walk(x: Any, key: str) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{key}[{i}]")
        elif isinstance(x, str):
            if len(x) > MAX_VALUE_CHARS:
                raise LineageInputError(f"{where}: {key!r} is longer than {MAX_VALUE_CHARS} characters")
            if any(ord(ch) < 32 and ch not in "\t\n\r" or ord(ch) == 127 for ch in x):
                raise LineageInputError(f"{where}: {key!r} holds control characters")
        elif isinstance(x, (bytes, bytearray)):
            raise LineageInputError(f"{where}: {key!r} holds binary data, not text")

    walk(raw, "")


def from_dict(raw: Any, *, where: str = "manifest", base_dir: Path | None = None) -> Manifest:
    if not isinstance(raw, dict):
        raise LineageInputError(f"{where} must be a YAML mapping of keys to values")
    _check_values(raw, where)
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
    for key in ("description", "kind", "label_column", "reference", "version_note"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise LineageInputError(f"{where}: {key!r} must be a string")
    kind = _opt_str(raw.get("kind"))
    if kind is not None and (not KIND_RE.match(kind) or ".." in kind):
        raise LineageInputError(
            f"{where}: kind {_short(kind)!r} is not a valid suite name: letters, digits, '.', '_' "
            "and '-' only (it names the file gx/expectations/<kind>.json)")
    for key in ("publisher",):
        if source.get(key) is not None and not isinstance(source[key], str):
            raise LineageInputError(f"{where}: 'source.{key}' must be a string")
    for key in ("method", "from", "to"):
        if collection.get(key) is not None and not isinstance(collection[key], (str, date, datetime)):
            raise LineageInputError(f"{where}: 'collection.{key}' must be a string or a date")
    if not all(isinstance(e, str) for e in evals):
        raise LineageInputError(f"{where}: 'evaluation_sets' must be a list of file paths")
    tags_ = raw.get("tags")
    if tags_ is not None and not (isinstance(tags_, list) and all(isinstance(t, (str, int, float)) for t in tags_)) \
            and not (isinstance(tags_, dict) and all(isinstance(v, (str, int, float, bool, type(None)))
                                                       for v in tags_.values())):
        raise LineageInputError(f"{where}: 'tags' must be a list of words or a mapping of names to values")
    card = data_card_fields(raw, where=where)
    return Manifest(
        name=name,
        owner=raw["owner"].strip(),
        license=raw["license"].strip(),
        source_uri=source["uri"].strip(),
        publisher=_opt_str(source.get("publisher")),
        description=_opt_str(raw.get("description")),
        kind=kind,
        label_column=_opt_str(raw.get("label_column")),
        parents=tuple(parents),
        collection_method=_opt_str(collection.get("method")),
        collected_from=_opt_str(collection.get("from")),
        collected_to=_opt_str(collection.get("to")),
        reference=_opt_str(raw.get("reference")),
        evaluation_sets=tuple(str(e) for e in evals),
        data_card=card,
        raw=_jsonable(raw),
        base_dir=base_dir,
    )


def data_card_fields(raw: dict[str, Any] | None, *, where: str = "manifest") -> dict[str, Any]:
    """The data card's declared facts of a manifest (as given, or as stored in lineage):
    every key of :data:`DATA_CARD_FIELDS`, a text or None, or a list of texts (maybe empty).
    LineageInputError names the key when a value has the wrong shape."""
    out: dict[str, Any] = {}
    for key, (_, many) in DATA_CARD_FIELDS.items():
        v = (raw or {}).get(key)
        if many:
            items = [v] if isinstance(v, (str, date, datetime)) else v if v is not None else []
            if not isinstance(items, list) or not all(isinstance(x, (str, date, datetime)) for x in items):
                raise LineageInputError(f"{where}: {key!r} must be a text or a list of texts")
            out[key] = [t for t in (_opt_str(x) for x in items) if t]
        else:
            if v is not None and not isinstance(v, (str, date, datetime)):
                raise LineageInputError(f"{where}: {key!r} must be a text")
            out[key] = _opt_str(v)
    return out


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


def _short(v: str, n: int = 60) -> str:
    return v if len(v) <= n else v[:n] + "..."
