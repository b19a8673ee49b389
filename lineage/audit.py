"""Append-only audit log in which every entry carries the hash of the one before.

``entry_hash = sha256(canonical JSON of (id, at, actor, action, subject, payload,
prev_hash))``. Changing, deleting or reordering any entry breaks the chain from
that point on, which :func:`verify_chain` reports.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from lineage.models import AuditEntry

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x0DA7A3A0D17


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _digest(entry_id: int, at: str, actor: str, action: str, subject: str,
            payload: dict[str, Any], prev_hash: str) -> str:
    body = canonical([entry_id, at, actor, action, subject, payload, prev_hash])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def append(session: Session, *, actor: str, action: str, subject: str,
           payload: dict[str, Any] | None = None) -> AuditEntry:
    """Add one entry in the caller's transaction (it commits or rolls back with it)."""
    if session.get_bind().dialect.name == "postgresql":
        # Concurrent writers must not both chain onto the same predecessor.
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
    last = session.execute(
        select(AuditEntry.id, AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    entry_id = (last.id + 1) if last else 1
    prev_hash = last.entry_hash if last else GENESIS
    at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    payload = json.loads(canonical(payload or {}))
    entry = AuditEntry(
        id=entry_id, at=at, actor=actor, action=action, subject=subject, payload=payload,
        prev_hash=prev_hash,
        entry_hash=_digest(entry_id, at, actor, action, subject, payload, prev_hash),
    )
    session.add(entry)
    session.flush()
    return entry


def verify_chain(session: Session) -> tuple[int, list[str]]:
    """(entries checked, problems found); an empty problem list means intact."""
    problems: list[str] = []
    prev_hash, expected_id, count = GENESIS, 1, 0
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()
    for e in rows:
        count += 1
        if e.id != expected_id:
            problems.append(f"audit entry {expected_id} is missing (next is {e.id})")
        if e.prev_hash != prev_hash:
            problems.append(f"audit entry {e.id} does not chain onto the entry before it")
        actual = _digest(e.id, e.at, e.actor, e.action, e.subject, e.payload, e.prev_hash)
        if actual != e.entry_hash:
            problems.append(f"audit entry {e.id} ({e.action} {e.subject}) was altered")
        prev_hash, expected_id = e.entry_hash, e.id + 1
    return count, problems
