"""ORM models of the lineage database: the system of record.

One ``Dataset`` has many ``DatasetVersion`` rows; a version owns its files, its
provenance, its licence verdict, its check results, stage results and decisions.
``AuditEntry`` is append-only and hash-chained (see :mod:`lineage.audit`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# Version statuses. A version moves ingested -> validated -> screened -> decided
# states; quarantined/rejected are terminal until a reviewer acts.
STATUS_INGESTED = "ingested"
STATUS_VALIDATED = "validated"
STATUS_SCREENED = "screened"
STATUS_QUARANTINED = "quarantined"
STATUS_REJECTED = "rejected"
STATUS_APPROVED = "approved"
STATUS_TRIMMED = "trimmed"
STATUS_PUBLISHED = "published"


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str | None] = mapped_column(String(100))
    label_column: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset", order_by="DatasetVersion.version"
    )


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version", name="uq_version_number"),
        UniqueConstraint("dataset_id", "content_hash", name="uq_version_content"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(BigInteger)
    schema_fingerprint: Mapped[str] = mapped_column(String(64))
    schema_json: Mapped[list[Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), default=STATUS_INGESTED)
    status_reason: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(100))
    label_column: Mapped[str | None] = mapped_column(String(200))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="versions")
    files: Mapped[list[DataFile]] = relationship(
        back_populates="version", order_by="DataFile.relpath", cascade="all, delete-orphan"
    )

    @property
    def data_files(self) -> list[DataFile]:
        return [f for f in self.files if f.role == "data"]
    provenance: Mapped[Provenance | None] = relationship(
        back_populates="version", cascade="all, delete-orphan"
    )
    licence: Mapped[LicenceRecord | None] = relationship(
        back_populates="version", cascade="all, delete-orphan"
    )

    @property
    def ref(self) -> str:
        return f"{self.dataset.name}@{self.version}"


class DataFile(Base):
    __tablename__ = "data_files"
    __table_args__ = (UniqueConstraint("version_id", "relpath", name="uq_file_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    relpath: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16))
    row_count: Mapped[int] = mapped_column(BigInteger)
    # "data": part of the dataset; "reference": a trusted reference set for the screens;
    # "evaluation": an evaluation set checked for leakage. Only data files make the content hash.
    role: Mapped[str] = mapped_column(String(16), default="data", server_default="data")

    version: Mapped[DatasetVersion] = relationship(back_populates="files")


class Provenance(Base):
    __tablename__ = "provenance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), unique=True)
    source_uri: Mapped[str] = mapped_column(Text)
    publisher: Mapped[str | None] = mapped_column(String(300))
    collection_method: Mapped[str | None] = mapped_column(Text)
    collected_from: Mapped[str | None] = mapped_column(String(40))
    collected_to: Mapped[str | None] = mapped_column(String(40))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    acquired_by: Mapped[str] = mapped_column(String(200))

    version: Mapped[DatasetVersion] = relationship(back_populates="provenance")


class LicenceRecord(Base):
    __tablename__ = "licences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), unique=True)
    declared: Mapped[str] = mapped_column(Text)
    spdx_expression: Mapped[str] = mapped_column(Text)
    use_class: Mapped[str] = mapped_column(String(32))
    attribution_required: Mapped[bool] = mapped_column(Boolean)
    share_alike: Mapped[bool] = mapped_column(Boolean)
    allowed_for_training: Mapped[bool] = mapped_column(Boolean)
    verdict_reason: Mapped[str] = mapped_column(Text)
    policy_version: Mapped[str] = mapped_column(String(64))

    version: Mapped[DatasetVersion] = relationship(back_populates="licence")


class VersionParent(Base):
    __tablename__ = "version_parents"
    __table_args__ = (UniqueConstraint("child_id", "parent_id", name="uq_parent_edge"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    relation: Mapped[str] = mapped_column(String(32), default="derived")


class PipelineRun(Base):
    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(250))
    code_version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(32), default="running")
    # who triggered the run (an Airflow user, the CLI's acting identity); None: a schedule
    triggered_by: Mapped[str | None] = mapped_column(String(200))
    # where and when the run's process was last seen working on it; pid is None while no
    # process holds the run (between two Airflow tasks, waiting for a reviewer)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class CheckResult(Base):
    __tablename__ = "check_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("pipeline_runs.id"))
    check: Mapped[str] = mapped_column(String(200))
    success: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StageResult(Base):
    """The recorded outcome of one pipeline stage for one version (idempotency key)."""

    __tablename__ = "stage_results"
    __table_args__ = (UniqueConstraint("version_id", "stage", name="uq_stage"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(ForeignKey("pipeline_runs.id"))
    status: Mapped[str] = mapped_column(String(32))
    output: Mapped[dict[str, Any]] = mapped_column(JSON)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SupersededResult(Base):
    """A stage result or decision that a rerun replaced, kept verbatim (history is never
    overwritten): ``kind`` is ``stage`` (a ``stage_results`` row) or ``decision``."""

    __tablename__ = "superseded_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(32))
    original_id: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    output: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    superseded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    superseded_by_run: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))


class Decision(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("pipeline_runs.id"))
    outcome: Mapped[str] = mapped_column(String(32))
    decided_by: Mapped[str] = mapped_column(String(200))
    policy_version: Mapped[str | None] = mapped_column(String(64))
    rationale: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Snapshot(Base):
    """A published, content-addressed Parquet snapshot of an approved version."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), unique=True)
    source_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(BigInteger)
    excluded_row_ids: Mapped[list[Any]] = mapped_column(JSON)
    # [row_id, old label, new label] for rows kept with a corrected label (None: none)
    relabels: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(Base):
    """Append-only, hash-chained audit log entry."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)
