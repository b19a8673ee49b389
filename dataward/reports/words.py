"""The report's words for people: no server paths, remedies as commands, no repeats.

The stages record their reasons for machines and logs (absolute paths, function names);
the report turns them into what a reviewer can read and act on, on any machine: paths
relative to ``DATAWARD_HOME`` or the project, and every remedy a command to copy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: Absolute paths under the usual roots of a server or a laptop, at least two parts deep;
#: a path inside a URL (``https://host/a/b``) is preceded by a word character and is kept.
_ABSOLUTE = re.compile(r"(?<![\w.:/~-])/(?:home|work|tmp|var|opt|srv|usr|mnt|data|root|Users|private|etc|run)"
                       r"(?:/[\w.@+=,-]+)+/?")
#: The missing-suite remedy as ``checks`` words it (no command: it does not know ``dataward``),
#: and as earlier releases recorded it (a Python function).
_SCAFFOLD = re.compile(r"\s*\(scaffold one with scaffold_suite\(\), review it and commit it\)"
                       r"|\. Draft one from the data, review it and commit it")
_CONFIRM = "confirm a reference (dataward reference sample / confirm)"


def relative_paths(text: str, roots: list[tuple[Path, str]]) -> str:
    """``text`` with every absolute path made relative to the first of ``roots``
    (``(folder, shown as)``) that holds it; any other absolute path keeps its last two parts."""
    def sub(m: re.Match) -> str:
        p = m.group(0)
        for root, shown in roots:
            r = str(root).rstrip("/")
            if p == r or p.startswith(r + "/"):
                rest = p[len(r):].lstrip("/")
                return f"{shown}/{rest}" if shown and rest else (rest or shown or ".")
        parts = [x for x in p.split("/") if x]
        return ".../" + "/".join(parts[-2:])

    return _ABSOLUTE.sub(sub, text)


def remedies_as_commands(text: str, *, ref: str, kind: str | None) -> str:
    """Remedies named as Python functions or vague verbs, rewritten as CLI commands."""
    text = _SCAFFOLD.sub(f". Create one with `dataward expectations init {ref} --kind {kind or 'KIND'}`, "
                         "review it and commit it", text)
    return text.replace(_CONFIRM, f"confirm a reference (`dataward reference sample {ref} --per-class 60 "
                                  f"--out sample.json`, then `dataward reference confirm {ref} --sample "
                                  "sample.json --reviewer NAME`)")


def unique_sentences(text: str | None, sep: str = "; ") -> str | None:
    """A ``sep``-joined list of findings with each finding once, in first-seen order."""
    if not text:
        return text
    seen: list[str] = []
    for part in text.split(sep):
        if part.strip() and part.strip() not in seen:
            seen.append(part.strip())
    return sep.join(seen)


def for_people(doc: Any, *, roots: list[tuple[Path, str]], ref: str, kind: str | None) -> Any:
    """Every string of ``doc`` (nested dicts and lists) with relative paths and command remedies."""
    if isinstance(doc, str):
        return remedies_as_commands(relative_paths(doc, roots), ref=ref, kind=kind)
    if isinstance(doc, dict):
        return {k: for_people(v, roots=roots, ref=ref, kind=kind) for k, v in doc.items()}
    if isinstance(doc, list):
        return [for_people(v, roots=roots, ref=ref, kind=kind) for v in doc]
    return doc


def path_roots(settings) -> list[tuple[Path, str]]:
    """How the report names the folders a path may lie in, most specific first."""
    from dataward.config import REPO_ROOT

    roots = [(Path(settings.home).resolve(), "DATAWARD_HOME")]
    exp = Path(settings.expectations_root).resolve()
    try:
        roots.append((exp, str(exp.relative_to(REPO_ROOT.resolve()))))
    except ValueError:
        roots.append((exp, "DATAWARD_EXPECTATIONS"))
    roots.append((REPO_ROOT.resolve(), ""))
    return sorted(roots, key=lambda r: -len(str(r[0])))
