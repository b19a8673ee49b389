"""A manifest given as a Croissant (JSON-LD) dataset description.

Croissant (https://mlcommons.org/croissant/) is what dataset hubs publish; a dataset
that arrives with one needs no hand-written YAML. Its keys map onto the manifest:

================================  =================================================
Croissant                         manifest
================================  =================================================
``name``                          ``name`` (made a valid NAME: lower case, ``-``)
``description``                   ``description``
``license`` (SPDX or CC URL/id)   ``license`` (as an SPDX id where recognisable)
``publisher`` / ``creator``       ``owner`` (e-mail, else name) and ``source.publisher``
``url`` / ``sameAs`` / the first  ``source.uri``
distribution's ``contentUrl``
``rai:dataCollection``            ``collection.method``
``rai:dataCollectionTimeframe``   ``collection.from`` / ``collection.to``
``rai:dataAnnotationProtocol``    ``annotation``
``rai:dataPreprocessingProtocol`` ``preprocessing``
``rai:dataUseCases``              ``intended_uses``
``rai:dataLimitations``,          ``limitations``
``rai:dataBiases``
``dataward`` (an object)          any manifest key (``kind``, ``label_column``,
                                  ``parents``, ``reference``, ``evaluation_sets``,
                                  ``purpose``, ``out_of_scope_uses``)
================================  =================================================

Plain JSON parsing of the compacted document, as hubs write it; a file that is not
Croissant, or lacks what the manifest requires, is refused with one clear line.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from lineage.errors import LineageInputError
from lineage.manifest import Manifest, from_dict

SUFFIXES = (".json", ".jsonld")
# Croissant files list every field of every record set, so they run larger than YAML
# manifests; past this they are refused before being read.
MAX_CROISSANT_BYTES = 16 * 1024 * 1024
_CC = re.compile(r"creativecommons\.org/licenses/([a-z-]+)/(\d\.\d)", re.I)
_CC0 = re.compile(r"creativecommons\.org/publicdomain/zero/(\d\.\d)", re.I)
_SPDX = re.compile(r"spdx\.org/licenses/([A-Za-z0-9.+-]+?)(?:\.html|\.json)?/?$")


def is_croissant(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is to be read as Croissant (by its suffix: ``.json``/``.jsonld``)."""
    return Path(path).suffix.lower() in SUFFIXES


def load(path: str | os.PathLike[str]) -> Manifest:
    """Read a Croissant file as a manifest; LineageInputError with one clear line if wrong."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise LineageInputError(f"manifest {path} is not a regular file")
    if path.is_file() and path.stat().st_size > MAX_CROISSANT_BYTES:
        raise LineageInputError(f"manifest {path} is larger than {MAX_CROISSANT_BYTES // 2**20} MiB")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LineageInputError(f"manifest {path} does not exist") from None
    except UnicodeDecodeError:
        raise LineageInputError(f"manifest {path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise LineageInputError(f"manifest {path} is not valid JSON (line {exc.lineno})") from None
    except RecursionError:
        raise LineageInputError(f"manifest {path} is nested too deeply") from None
    except OSError as exc:
        raise LineageInputError(f"cannot read manifest {path}: {exc.strerror}") from None
    return from_dict(to_manifest_dict(doc, where=str(path)), where=str(path),
                     base_dir=path.resolve().parent)


def to_manifest_dict(doc: Any, *, where: str = "Croissant file") -> dict[str, Any]:
    """The manifest dict (see :mod:`lineage.manifest`) a Croissant document describes."""
    if not isinstance(doc, dict) or "@context" not in doc:
        raise LineageInputError(f"{where} is JSON but not a Croissant description (no @context)")
    kind = _first(doc.get("@type"))
    conforms = " ".join(str(c) for c in _list(doc.get("conformsTo") or doc.get("dct:conformsTo")))
    if "croissant" not in conforms.lower() and kind not in ("sc:Dataset", "Dataset", "schema:Dataset"):
        raise LineageInputError(f"{where} is JSON-LD but not a Croissant dataset (no conformsTo "
                                "Croissant, no @type sc:Dataset)")
    name = _text(doc.get("name"))
    if not name:
        raise LineageInputError(f"{where}: the Croissant description has no 'name'")
    agents = [a for a in _list(doc.get("publisher")) + _list(doc.get("creator")) if a]
    emails = [a.get("email") for a in agents if isinstance(a, dict) and _text(a.get("email"))]
    owner = _text(emails[0]) if emails else next((_agent(a) for a in agents if _agent(a)), None)
    publisher = next((_agent(a) for a in agents if _agent(a)), None)
    dist = [d for d in _list(doc.get("distribution")) if isinstance(d, dict)]
    uri = (_text(doc.get("url")) or _text(_first(doc.get("sameAs")))
           or next((_text(d.get("contentUrl")) for d in dist if d.get("contentUrl")), None))
    raw: dict[str, Any] = {
        "name": slug(name),
        "description": _text(doc.get("description")),
        "license": licence_id(doc.get("license")),
        "owner": owner,
        "source": {"uri": uri, "publisher": publisher},
    }
    method = _text(doc.get("rai:dataCollection"))
    frame = [_text(x) for x in _list(doc.get("rai:dataCollectionTimeframe")) if _text(x)]
    if method or frame:
        raw["collection"] = {"method": method, "from": frame[0][:10] if frame else None,
                             "to": frame[-1][:10] if len(frame) > 1 else None}
    annotation = [t for t in (_text(x) for x in _list(doc.get("rai:dataAnnotationProtocol"))) if t]
    if annotation:
        raw["annotation"] = " ".join(annotation)
    for key, fields in (("preprocessing", ("rai:dataPreprocessingProtocol",)),
                        ("intended_uses", ("rai:dataUseCases",)),
                        ("limitations", ("rai:dataLimitations", "rai:dataBiases"))):
        texts = [t for f in fields for t in (_text(x) for x in _list(doc.get(f))) if t]
        if texts:
            raw[key] = texts
    extra = doc.get("dataward")
    if extra is not None:
        if not isinstance(extra, dict):
            raise LineageInputError(f"{where}: 'dataward' must be an object of manifest keys")
        raw.update(extra)
    return {k: v for k, v in raw.items() if v is not None}


def slug(name: str) -> str:
    """A Croissant name as a Dataward NAME (lower case; other characters become ``-``)."""
    s = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("-._")
    return s[:128]


def licence_id(value: Any) -> str | None:
    """An SPDX id for a Croissant ``license`` (SPDX or Creative Commons URL, or an id)."""
    items = [_text(v.get("@id") or v.get("url") or v.get("name")) if isinstance(v, dict) else _text(v)
             for v in _list(value)]
    ids = []
    for item in (i for i in items if i):
        m = _SPDX.search(item)
        if m:
            ids.append(m.group(1))
            continue
        m = _CC.search(item)
        if m:
            ids.append(f"CC-{m.group(1).upper()}-{m.group(2)}")
            continue
        m = _CC0.search(item)
        ids.append(f"CC0-{m.group(1)}" if m else item)
    if not ids:
        return None
    return ids[0] if len(ids) == 1 else " AND ".join(f"({i})" if " " in i else i for i in ids)


def _agent(a: Any) -> str | None:
    if isinstance(a, str):
        return a.strip() or None
    return _text(a.get("name")) if isinstance(a, dict) else None


def _list(v: Any) -> list:
    return [] if v is None else list(v) if isinstance(v, list) else [v]


def _first(v: Any) -> Any:
    items = _list(v)
    return items[0] if items else None


def _text(v: Any) -> str | None:
    if isinstance(v, dict):  # {"@value": ..., "@language": ...}
        v = v.get("@value")
    if isinstance(v, list):
        v = v[0] if v else None
    return str(v).strip() or None if v is not None else None
