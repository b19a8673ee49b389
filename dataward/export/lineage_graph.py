"""Draw the lineage graph that OpenLineage events describe, as a Mermaid flowchart.

Reads the run events (the JSON lines Dataward's file transport writes, or any
OpenLineage producer's), keeps the COMPLETE ones and draws dataset -> job -> dataset.
Datasets are labelled by their logical name (the ``symlinks`` facet: ``NAME@V``) where
they have one, else by file name; jobs by name. Only what the events say is drawn, so
the picture is also a check that a consumer can draw it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class NotAnEvent(ValueError):
    """A line of an events file that is not an OpenLineage run event this module can draw."""


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The run events of a JSON-lines file, each checked for the keys and types the graph
    reads (:func:`check_event`). Static dataset and job events (no ``run``) are skipped:
    they describe no run to draw. NotAnEvent names the first line that is neither;
    UnicodeDecodeError if the file is not text."""
    events = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:  # JSONDecodeError, and int() of a huge number literal
            raise NotAnEvent(f"line {number} is not JSON: {exc}") from None
        if isinstance(event, dict) and "run" not in event and ("dataset" in event or "job" in event):
            continue
        try:
            check_event(event)
        except NotAnEvent as exc:
            raise NotAnEvent(f"line {number} is not an OpenLineage run event: {exc}") from None
        events.append(event)
    return events


def _need(value: Any, kind: type | tuple[type, ...], where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        names = {dict: "an object", list: "a list", str: "a string"}
        want = names.get(kind, "an object") if isinstance(kind, type) else "an object"
        raise NotAnEvent(f"{where} must be {want}" + (" or absent" if optional else ""))
    return value


def check_event(event: Any) -> None:
    """NotAnEvent unless ``event`` has what :func:`mermaid` and :func:`in_run` read: ``run``
    with a string ``runId`` (and a ``parent`` facet with ``run.runId`` and ``job.name``),
    ``job`` with string ``namespace`` and ``name``, and ``inputs``/``outputs`` lists of
    datasets with string ``namespace`` and ``name`` (``symlinks`` identifiers with names)."""
    _need(event, dict, "the line")
    run = _need(event.get("run"), dict, "run")
    _need(run.get("runId"), str, "run.runId")
    facets = _need(run.get("facets"), dict, "run.facets", optional=True) or {}
    parent = _need(facets.get("parent"), dict, "run.facets.parent", optional=True)
    if parent:
        _need(_need(parent.get("run"), dict, "run.facets.parent.run").get("runId"), str,
              "run.facets.parent.run.runId")
        _need(_need(parent.get("job"), dict, "run.facets.parent.job").get("name"), str,
              "run.facets.parent.job.name")
    job = _need(event.get("job"), dict, "job")
    for key in ("namespace", "name"):
        _need(job.get(key), str, f"job.{key}")
    for side in ("inputs", "outputs"):
        for i, ds in enumerate(_need(event.get(side), list, side, optional=True) or []):
            where = f"{side}[{i}]"
            _need(ds, dict, where)
            for key in ("namespace", "name"):
                _need(ds.get(key), str, f"{where}.{key}")
            ds_facets = _need(ds.get("facets"), dict, f"{where}.facets", optional=True) or {}
            symlinks = _need(ds_facets.get("symlinks"), dict, f"{where}.facets.symlinks", optional=True) or {}
            ids = _need(symlinks.get("identifiers"), list, f"{where}.facets.symlinks.identifiers",
                        optional=True) or []
            for j, ident in enumerate(ids):
                _need(_need(ident, dict, f"{where}.facets.symlinks.identifiers[{j}]").get("name"), str,
                      f"{where}.facets.symlinks.identifiers[{j}].name")


def _label(ds: dict[str, Any], names: dict[tuple[str, str], str]) -> str:
    key = (ds["namespace"], ds["name"])
    ids = ((ds.get("facets") or {}).get("symlinks") or {}).get("identifiers") or []
    if ids:
        names[key] = ids[0]["name"].rsplit("#", 1)[-1].rsplit(".dataward.", 1)[-1]
    if key in names:
        return names[key]
    if ds["namespace"].startswith("file://"):
        return ds["name"].rsplit("/", 1)[-1]
    return f"{ds['namespace']}{ds['name'] if ds['name'].startswith('/') else '/' + ds['name']}"


def in_run(events: Iterable[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """The events of pipeline run ``run_id`` and of the runs below it."""
    def parent(e):
        return (((e["run"].get("facets") or {}).get("parent") or {}).get("run") or {}).get("runId")
    return [e for e in events if e["run"]["runId"] == run_id or parent(e) == run_id]


def mermaid(events: Iterable[dict[str, Any]]) -> str:
    """A Mermaid ``flowchart LR`` of the COMPLETE events' inputs, jobs and outputs."""
    done = [e for e in events if e.get("eventType") == "COMPLETE" and (e.get("inputs") or e.get("outputs"))]
    names: dict[tuple[str, str], str] = {}
    for e in done:  # logical names first, so every mention of a dataset gets the same label
        for ds in (e.get("inputs") or []) + (e.get("outputs") or []):
            _label(ds, names)
    ids: dict[Any, str] = {}

    def node(key) -> str:
        if key not in ids:
            ids[key] = f"n{len(ids)}"
        return ids[key]

    lines = ["flowchart LR"]
    declared: set[str] = set()
    edges: list[str] = []
    groups: dict[str, list[str]] = {}
    for e in done:
        job = ("job", e["job"]["namespace"], e["job"]["name"], e["run"]["runId"])
        j = node(job)
        if j not in declared:
            lines.append(f'  {j}[["{e["job"]["name"].removeprefix("dataward.")}"]]')
            declared.add(j)
            parent = ((e["run"].get("facets") or {}).get("parent") or {})
            if parent:
                label = f'{parent["job"]["name"]} run {parent["run"]["runId"][:8]}'
                groups.setdefault(label, []).append(j)
        for side in ("inputs", "outputs"):
            for ds in e.get(side) or []:
                d = node(("ds", ds["namespace"], ds["name"]))
                if d not in declared:
                    lines.append(f'  {d}[("{_label(ds, names)}")]')
                    declared.add(d)
                edge = f"  {d} --> {j}" if side == "inputs" else f"  {j} --> {d}"
                if edge not in edges:
                    edges.append(edge)
    for i, (label, members) in enumerate(groups.items()):
        lines += [f'  subgraph g{i}["{label}"]', *(f"    {m}" for m in members), "  end"]
    return "\n".join(lines + edges) + "\n"
