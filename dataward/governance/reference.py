"""Which trusted reference set a version's screens use: the trust chain and its order of precedence.

The screens are calibrated, and can see backdoors, only against trusted rows. A version
gets them, in this order of precedence:

1. **confirmed**: rows of the version itself that a reviewer looked at and confirmed
   (labels corrected where the reviewer corrected them): ``dataward reference sample``
   then ``dataward reference confirm`` (:mod:`dataward.governance.reference_review`). Stored as the
   content-addressed version ``NAME.reference@N`` (parent: the version, relation
   ``confirmed-reference``), with the reviewer as its provenance and a
   ``reference-confirm`` audit entry.
2. **manifest**: the reference file the version brought (``reference:`` in its manifest).
3. **trust_chain** (policy ``screening.trust_chain``, default on): a class-stratified,
   seeded sample of the dataset's last approved snapshot (``NAME.approved@N``, published by
   the policy or signed off by a reviewer), at most ``screening.trust_chain_rows_per_class``
   rows per class, from which every row the new version also holds (exact match of the
   row's content, label included) is left out first: a row must never be its own reference.
4. none: the screens fall back to the reference-free verdict.

:func:`reference_for_screen` returns the table and a JSON-able description (``kind``,
``label`` for the report and the CLI, ``source_ref`` the lineage version it came from,
and the figures that make it reproducible); the screen stage records the description in
its output and check result, and its OpenLineage run reads ``source_ref`` as an input.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from dataward.context import Context
from dataward.stage_results import finished, read_table
from lineage.models import DatasetVersion, Decision, Snapshot, VersionParent

CONFIRMED_RELATION = "confirmed-reference"
CONFIRMED_STATUS = "confirmed"
# the trust chain's sample is seeded, so the same snapshot and version give the same rows
TRUST_CHAIN_SEED = 0


def min_reference_rows() -> int:
    """The fewest rows the largest class of a reference may have: one per fold of the probe
    (the engine spreads each class's reference rows over its folds and cannot score an
    empty fold)."""
    from screening import ScreenConfig

    return int(ScreenConfig().n_folds)


def reference_dataset(name: str) -> str:
    """The dataset holding ``name``'s reviewer-confirmed reference sets."""
    return f"{name}.reference"


# ---------------------------------------------------------------------------- row identity

def _canon(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"sha256": hashlib.sha256(bytes(value)).hexdigest()}
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    return value


def row_digests(table) -> list[str]:
    """One digest per row of ``table`` over every column's value, in column order (two
    rows match when all their values are equal; bytes, such as an image, by their hash)."""
    out: list[str] = []
    for batch in table.to_batches(max_chunksize=8192):
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for values in zip(*columns):
            text = json.dumps([_canon(v) for v in values], default=str, sort_keys=True)
            out.append(hashlib.sha256(text.encode()).hexdigest()[:32])
    return out


def _digest_of(digests: list[str]) -> str:
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def jsonable(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


# ------------------------------------------------------------------- choosing a reference

def reference_for_screen(ctx: Context, version_id: int, data, label_col: str, policy
                         ) -> tuple[Any, dict[str, Any]]:
    """(reference table or None, its description) for screening version ``version_id``.

    ``data``: the version's rows (an Arrow table, or a
    :class:`dataward.stage_results.StoredRows` for a version too large to hold: the
    trust chain then streams it); ``policy``: the decision policy in force.
    """
    confirmed = latest_confirmed(ctx, version_id)
    if confirmed is not None:
        table = read_table(ctx, confirmed["version_id"])
        return _cast_like(table, data), {k: v for k, v in confirmed.items() if k != "version_id"}
    own = read_table(ctx, version_id, role="reference")
    if own is not None:
        with ctx.session(read_only=True) as s:
            from lineage.models import DatasetVersion

            v = s.get(DatasetVersion, version_id)
            files = [f.relpath for f in v.files if f.role == "reference"]
        return own, {"kind": "manifest", "files": files, "rows": own.num_rows,
                     "label": f"the version's own reference set ({', '.join(files)}), {own.num_rows} rows"}
    chain = policy.trust_chain
    if not chain.enabled:
        return None, {"kind": "none", "label": "none (the policy turns the trust chain off: "
                                              "screening.trust_chain: false)"}
    return trust_chain_reference(ctx, version_id, data, label_col, rows_per_class=chain.rows_per_class)


def _cast_like(table, data):
    cols = [c for c in data.column_names if c in table.column_names]
    table = table.select(cols)
    try:
        import pyarrow as pa

        return table.cast(pa.schema([data.schema.field(c) for c in cols]))
    except Exception:
        return table


def previous_approval(ctx: Context, version_id: int) -> dict[str, Any] | None:
    """The dataset's last approved, published version before ``version_id``: its snapshot
    and who approved it (a reviewer's sign-off, else the policy), or None."""
    with ctx.session(read_only=True) as s:
        v = s.get(DatasetVersion, version_id)
        row = s.execute(select(Snapshot, DatasetVersion)
                        .join(DatasetVersion, Snapshot.source_version_id == DatasetVersion.id)
                        .where(DatasetVersion.dataset_id == v.dataset_id,
                               DatasetVersion.version < v.version)
                        .order_by(DatasetVersion.version.desc()).limit(1)).first()
        if row is None:
            return None
        snap, source = row
        snap_version = s.get(DatasetVersion, snap.version_id)
        signed = s.execute(select(Decision).where(Decision.version_id == source.id,
                                                  Decision.decided_by != "policy",
                                                  Decision.outcome == "approve")
                           .order_by(Decision.id.desc()).limit(1)).scalars().first()
        out = {"snapshot_ref": snap_version.ref, "snapshot_version_id": snap_version.id,
               "source_ref": source.ref, "rows": snap.row_count,
               "published_on": snap.created_at.date().isoformat() if snap.created_at else None,
               "relabelled_rows": _relabelled_positions(snap)}
        if signed is not None:
            at = (signed.rationale or {}).get("at") or (signed.created_at.isoformat() if signed.created_at else "")
            out.update(approval="signed", approved_by=signed.decided_by, approved_on=str(at)[:10])
            return out
    decision = finished(ctx, out["source_ref"], "decide")[2] or {}
    out.update(approval="policy", approved_by=f"policy {decision.get('policy_version') or '?'}",
               approved_on=out["published_on"])
    return out


def _relabelled_positions(snap) -> list[int]:
    """The rows of a snapshot (positions in its file) that the policy relabelled: their
    labels are cleanlab's suggestions, not labels anyone checked, so they are never drawn
    into a trusted reference. A snapshot row's position is its source row id minus the
    source rows left out before it."""
    moved = [int(r) for r, _, _ in snap.relabels or []]
    if not moved:
        return []
    dropped = np.sort(np.asarray(snap.excluded_row_ids or [], dtype=np.int64))
    ids = np.asarray(moved, dtype=np.int64)
    return (ids - np.searchsorted(dropped, ids)).tolist()


def _version_hashes_and_labels(data, label_col: str) -> tuple[np.ndarray, set]:
    """(the sorted row hashes of the version's rows, its label values). ``data``: an Arrow
    table, or a :class:`dataward.stage_results.StoredRows` read batch by batch (memory: 8
    bytes a row and one batch)."""
    from checks.leakage import row_hashes

    if isinstance(data, pa.Table):
        return np.sort(row_hashes(data)), set(pc.unique(data.column(label_col)).to_pylist())
    parts: list[np.ndarray] = []
    present: set = set()
    for batch in data.batches():
        table = pa.Table.from_batches([batch])
        parts.append(row_hashes(table, data.column_names))
        present.update(pc.unique(table.column(label_col)).to_pylist())
    return (np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)), present


def _held(sorted_hashes: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Which of ``hashes`` occur in ``sorted_hashes``."""
    if not len(sorted_hashes):
        return np.zeros(len(hashes), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_hashes, hashes), len(sorted_hashes) - 1)
    return sorted_hashes[pos] == hashes


class _SnapshotRows:
    """The trust chain's pass over an approved snapshot, batch by batch: per label value,
    the positions of the rows the new version does not hold and the policy did not
    relabel (memory: 8 bytes per such row and one batch, never the snapshot)."""

    def __init__(self, ctx: Context, snapshot_version_id: int, data, label_col: str):
        self.ctx, self.vid, self.label_col = ctx, snapshot_version_id, label_col
        self.columns, self.schema = list(data.column_names), data.schema
        self.rows = self.shared = self.relabelled = 0
        self.candidates: dict[Any, list[np.ndarray]] = {}
        self.labels: set = set()  # every label value seen, with candidates or not

    def batches(self):
        """(first position, the batch as a table in the version's columns and types)."""
        from dataward.stage_results import iter_batches

        at = 0
        for batch in iter_batches(self.ctx, self.vid, columns=self.columns):
            yield at, pa.Table.from_batches([batch]).cast(self.schema)
            at += batch.num_rows

    def scan(self, version_hashes: np.ndarray, relabelled: np.ndarray) -> None:
        from checks.leakage import row_hashes

        for at, table in self.batches():
            n = table.num_rows
            if not n:
                continue
            shared = _held(version_hashes, row_hashes(table, self.columns))
            moved = np.zeros(n, dtype=bool)
            moved[relabelled[(relabelled >= at) & (relabelled < at + n)] - at] = True
            codes = pc.dictionary_encode(table.column(self.label_col)).combine_chunks()
            idx = codes.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            keep = ~shared & ~moved & (idx >= 0)
            pos, which = at + np.flatnonzero(keep), idx[keep]
            order = np.argsort(which, kind="stable")
            values = codes.dictionary.to_pylist()
            self.labels.update(v for v in values if v is not None)
            for j, rows in zip(np.unique(which[order]).tolist(), np.split(pos[order], np.flatnonzero(
                    np.diff(which[order])) + 1)):
                self.candidates.setdefault(values[j], []).append(rows)
            self.rows += n
            self.shared += int(shared.sum())
            self.relabelled += int((moved & ~shared).sum())

    def take(self, positions: list[int]) -> pa.Table:
        """The rows at ``positions`` (ascending), in that order: a second pass."""
        want = np.asarray(positions, dtype=np.int64)
        parts = []
        for at, table in self.batches():
            mine = want[(want >= at) & (want < at + table.num_rows)] - at
            if len(mine):
                parts.append(table.take(pa.array(mine, type=pa.int64())))
        return pa.concat_tables(parts) if parts else self.schema.empty_table()


def trust_chain_reference(ctx: Context, version_id: int, data, label_col: str, *,
                          rows_per_class: int | None) -> tuple[Any, dict[str, Any]]:
    """The trust chain's reference for ``version_id`` (see the module docstring), or
    (None, why not).

    The snapshot is streamed, never held: one pass keeps, per class, the positions of the
    rows the version does not hold (their content hashes against the version's, 8 bytes a
    row) and the policy did not relabel; the seeded draw picks among them; a second pass
    takes the drawn rows. ``data``: an Arrow table or a
    :class:`dataward.stage_results.StoredRows`."""
    from dataward.stage_results import version_schema

    prev = previous_approval(ctx, version_id)
    if prev is None:
        return None, {"kind": "none", "label": "none (no approved earlier version of this dataset, "
                                              "and the version brings no reference set)"}
    base = {"kind": "trust_chain", "source_ref": prev["snapshot_ref"], "approved_version": prev["source_ref"],
            "approval": prev["approval"], "approved_by": prev["approved_by"],
            "approved_on": prev["approved_on"]}
    snap_schema = version_schema(ctx, prev["snapshot_version_id"])
    have = set(snap_schema.names) if snap_schema is not None else set()
    missing = [c for c in data.column_names if c not in have]
    if missing:
        return None, {**base, "kind": "none", "label": f"none ({prev['snapshot_ref']} lacks column(s) "
                      f"{', '.join(missing[:5])} of this version: no trust chain across a schema change)"}
    hashes, present = _version_hashes_and_labels(data, label_col)
    snap = _SnapshotRows(ctx, prev["snapshot_version_id"], data, label_col)
    try:
        snap.scan(hashes, np.asarray(sorted(prev.get("relabelled_rows") or []), dtype=np.int64))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as exc:
        return None, {**base, "kind": "none", "label": f"none ({prev['snapshot_ref']}'s columns do not cast "
                      f"to this version's types: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"}
    del hashes
    rng = np.random.default_rng(TRUST_CHAIN_SEED)
    chosen: list[int] = []
    per_class: dict[str, int] = {}
    classes = sorted((lab for lab in snap.labels if lab in present), key=lambda x: (str(type(x)), str(x)))
    for c in classes:
        candidates = np.concatenate(snap.candidates.get(c) or [np.zeros(0, dtype=np.int64)])
        k = len(candidates) if rows_per_class is None else min(len(candidates), rows_per_class)
        per_class[str(c)] = int(k)
        if k:
            chosen += sorted(int(i) for i in rng.choice(candidates, size=k, replace=False))
    info = {**base, "rows": len(chosen), "rows_per_class": per_class, "rows_per_class_setting": rows_per_class,
            "excluded_shared_rows": snap.shared, "excluded_relabelled_rows": snap.relabelled,
            "snapshot_rows": snap.rows, "seed": TRUST_CHAIN_SEED}
    if max(per_class.values(), default=0) < min_reference_rows():
        info.update(kind="none", label=f"none ({prev['snapshot_ref']} holds only {len(chosen)} row(s) this "
                    f"version does not also hold, too few: a reference needs {min_reference_rows()} rows "
                    f"of one class; {snap.shared} shared rows excluded)")
        return None, info
    chosen.sort()
    info["snapshot_row_ids"] = chosen
    reference = snap.take(chosen)
    info["sha256"] = _digest_of(row_digests(reference))  # which rows, content and order
    info["label"] = trust_chain_label(info)
    return reference, info


def trust_chain_label(info: dict[str, Any]) -> str:
    """``NAME.approved@N, k rows per class, signed by R on D`` (or ``published by policy P on D``)."""
    counts = sorted(set(info["rows_per_class"].values()))
    k = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    who = (f"signed by {info['approved_by']} on {info['approved_on']}" if info["approval"] == "signed"
           else f"published by {info['approved_by']} on {info['approved_on']}")
    shared = info.get("excluded_shared_rows") or 0
    return (f"{info['source_ref']}, {k} rows per class, {who}"
            + (f"; {shared} rows this version shares with it excluded" if shared else ""))


def latest_confirmed(ctx: Context, version_id: int) -> dict[str, Any] | None:
    """The reviewer-confirmed reference the next screen of ``version_id`` uses, or None."""
    with ctx.session(read_only=True) as s:
        edge = s.execute(select(VersionParent).where(VersionParent.parent_id == version_id,
                                                     VersionParent.relation == CONFIRMED_RELATION)
                         .order_by(VersionParent.id.desc()).limit(1)).scalars().first()
        if edge is None:
            return None
        refv = s.get(DatasetVersion, edge.child_id)
        m = dict(refv.manifest or {})
        info = {"kind": "confirmed", "version_id": refv.id, "source_ref": refv.ref, "rows": refv.row_count,
                "rows_per_class": m.get("rows_per_class") or {}, "confirmed_by": m.get("confirmed_by"),
                "confirmed_at": m.get("confirmed_at"), "corrected_rows": m.get("corrected_rows") or [],
                "version_row_ids": m.get("version_row_ids") or [], "sha256": refv.content_hash}
    counts = sorted(set(info["rows_per_class"].values())) or [0]
    k = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    n_corr = len(info["corrected_rows"])
    info["label"] = (f"{info['source_ref']}, {k} rows per class, confirmed by {info['confirmed_by']} on "
                     f"{str(info['confirmed_at'])[:10]}" + (f", {n_corr} label(s) corrected" if n_corr else ""))
    return info
