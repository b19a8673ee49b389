"""The identities OpenLineage events and facets share: the producer URI, a dataset of an
event and the parent run of a run. Both :mod:`lineage.openlineage.emitter` and :mod:`lineage.openlineage.facets`
read them; neither imports the other for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRODUCER = "https://github.com/dataward/dataward"


@dataclass(frozen=True)
class DatasetRef:
    """One dataset of an event: its OpenLineage identity and facets (facet objects)."""

    namespace: str
    name: str
    facets: dict[str, Any] = field(default_factory=dict)
    input_facets: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParentRef:
    """The run a run belongs to (``parent`` run facet), and optionally the tree's root."""

    namespace: str
    name: str
    run_id: str
    root: ParentRef | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"namespace": self.namespace, "name": self.name, "run_id": self.run_id}
        if self.root is not None:
            out["root"] = self.root.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ParentRef | None:
        if not d:
            return None
        return cls(d["namespace"], d["name"], d["run_id"], cls.from_dict(d.get("root")))
