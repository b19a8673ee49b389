"""Version diff of recorded versions: reads two versions from lineage and the content
store, and hands them to :func:`checks.diff.diff_tables` (where the definitions of added,
removed, changed rows, label shift and drift live).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dataward.artifacts import flagged_row_ids
from dataward.stage_results import finished, read_table
from lineage.ingest import resolve
from lineage.models import DatasetVersion

APPROVED_STATUSES = ("approved", "trimmed", "published")


def diff_versions(ctx, ref_a: str, ref_b: str, *, flagged_b: list[int] | None = None) -> dict[str, Any]:
    """Diff two recorded versions (``NAME@A``, ``NAME@B``) from their stored data files.

    ``flagged_b`` defaults to B's recorded screen result (None when B was not screened).
    """
    with ctx.session() as s:
        va, vb = resolve(s, ref_a), resolve(s, ref_b)
        info = {k: (v.id, v.ref, v.label_column, v.schema_json, v.content_hash)
                for k, v in (("a", va), ("b", vb))}
    (ida, refa, _, schema_a, hash_a), (idb, refb, label, schema_b, hash_b) = info["a"], info["b"]
    if flagged_b is None:
        _, _, screened = finished(ctx, refb, "screen")
        flagged_b = flagged_row_ids(screened) if screened and screened.get("status") == "done" else None
    a, b = read_table(ctx, ida), read_table(ctx, idb)
    from checks.diff import diff_tables

    out = diff_tables(a, b, label_col=label, schema_a=schema_a, schema_b=schema_b, flagged_b=flagged_b)
    return {"a": refa, "b": refb, "same_content": hash_a == hash_b, **out}


def previous_approved(ctx, ref: str) -> str | None:
    """The newest earlier version of the same dataset that was approved (or trimmed / published)."""
    with ctx.session() as s:
        v = resolve(s, ref)
        prev = s.execute(select(DatasetVersion).where(
            DatasetVersion.dataset_id == v.dataset_id, DatasetVersion.version < v.version,
            DatasetVersion.status.in_(APPROVED_STATUSES)).order_by(DatasetVersion.version.desc()).limit(1)
        ).scalars().first()
        return prev.ref if prev else None


def diff_against_previous_approved(ctx, ref: str, *, flagged_b: list[int] | None = None
                                   ) -> dict[str, Any] | None:
    """:func:`diff_versions` of ``ref`` against the previous approved version, None if there is none."""
    prev = previous_approved(ctx, ref)
    if prev is None:
        return None
    return diff_versions(ctx, prev, ref, flagged_b=flagged_b)
