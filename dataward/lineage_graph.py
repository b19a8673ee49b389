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


def read_events(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip()]


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
