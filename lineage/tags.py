"""Column tags: what a scan found in a version's columns (personal data, for now).

One row per (version, column, tag), e.g. ``email`` or ``free_text:payment_card`` from
:mod:`checks.pii`. Examples are stored masked; the data never leaves the content store.
A scan that could not run is recorded as column ``*`` with tag ``scan_failed``, so the
decision policy can tell "nothing found" from "not looked".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from lineage.models import Base, utcnow

SCAN_FAILED = "scan_failed"
NONE_FOUND = "none_found"


class ColumnTagRecord(Base):
    __tablename__ = "column_tags"
    __table_args__ = (UniqueConstraint("version_id", "column_name", "tag", name="uq_column_tag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    # "column" is reserved in SQL: stored as column_name
    column: Mapped[str] = mapped_column("column_name", String(300))
    tag: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32), default="pii-scan")
    fraction: Mapped[float | None] = mapped_column(Float)
    matches: Mapped[int | None] = mapped_column(Integer)
    sampled: Mapped[int | None] = mapped_column(Integer)
    examples: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def has_scan(session: Session, version_id: int, *, source: str = "pii-scan") -> bool:
    """True when a scan of ``source`` has been recorded for the version (even one that found nothing)."""
    return session.execute(select(ColumnTagRecord.id).where(
        ColumnTagRecord.version_id == version_id, ColumnTagRecord.source == source).limit(1)).first() is not None


def record_column_tags(session: Session, version_id: int, tags: list[dict[str, Any]], *,
                       source: str = "pii-scan", failed: str | None = None) -> None:
    """Replace the version's tags from ``source`` with ``tags`` (dicts with column, tag, fraction,
    matches, sampled, examples). An empty list records a ``none_found`` marker; ``failed``
    records a ``scan_failed`` marker whose example is the reason."""
    session.execute(delete(ColumnTagRecord).where(ColumnTagRecord.version_id == version_id,
                                                  ColumnTagRecord.source == source))
    if failed is not None:
        session.add(ColumnTagRecord(version_id=version_id, column="*", tag=SCAN_FAILED, source=source,
                                    examples=[failed[:500]]))
        return
    if not tags:
        session.add(ColumnTagRecord(version_id=version_id, column="*", tag=NONE_FOUND, source=source,
                                    examples=[]))
        return
    for t in tags:
        session.add(ColumnTagRecord(version_id=version_id, column=t["column"], tag=t["tag"], source=source,
                                    fraction=t.get("fraction"), matches=t.get("matches"),
                                    sampled=t.get("sampled"), examples=list(t.get("examples") or [])))


def column_tags(session: Session, version_id: int, *, source: str | None = None,
                include_markers: bool = False) -> list[dict[str, Any]]:
    """The version's column tags as dicts, ordered by column then tag."""
    q = select(ColumnTagRecord).where(ColumnTagRecord.version_id == version_id)
    if source:
        q = q.where(ColumnTagRecord.source == source)
    rows = session.execute(q.order_by(ColumnTagRecord.column, ColumnTagRecord.tag)).scalars()
    return [{"column": r.column, "tag": r.tag, "category": r.tag.split(":")[-1], "source": r.source,
             "fraction": r.fraction, "matches": r.matches, "sampled": r.sampled, "examples": r.examples}
            for r in rows if include_markers or r.column != "*"]


def scan_status(session: Session, version_id: int, *, source: str = "pii-scan") -> dict[str, Any]:
    """``{"scanned": bool, "failed": reason | None}`` for the version."""
    rows = session.execute(select(ColumnTagRecord).where(
        ColumnTagRecord.version_id == version_id, ColumnTagRecord.source == source)).scalars().all()
    failed = next((r.examples[0] if r.examples else "unknown" for r in rows if r.tag == SCAN_FAILED), None)
    return {"scanned": bool(rows), "failed": failed}
