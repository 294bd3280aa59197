"""Intake tables: campaigns and their versions, the unit tree with liaisons, submissions, deadline alerts."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.messaging import messaging_tables

AUTO_ID = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    """Declarative base of the intake service's own tables."""


MESSAGING = messaging_tables(Base.metadata)


class Campaign(Base):
    """A campaign (活动) as currently published; its definitions are kept per version."""

    __tablename__ = "campaigns"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    organiser: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    definition_sha256: Mapped[str] = mapped_column(String(64))
    publicity_start: Mapped[date] = mapped_column(Date)
    publicity_end: Mapped[date] = mapped_column(Date)
    inspection_start: Mapped[date | None] = mapped_column(Date, nullable=True)
    inspection_end: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CampaignVersion(Base):
    """One published version of a campaign definition: the text as loaded and its normalised form."""

    __tablename__ = "campaign_versions"
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    source_format: Mapped[str] = mapped_column(String(8))
    source_text: Mapped[str] = mapped_column(Text)
    definition: Mapped[str] = mapped_column(Text)  # canonical JSON, UTC times
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class CampaignChange(Base):
    """Audit trail of changes to a campaign (versions, reference materials), until shared audit takes over."""

    __tablename__ = "campaign_changes"
    id: Mapped[int] = mapped_column(AUTO_ID, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    summary: Mapped[dict] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReferenceMaterial(Base):
    """A document the office hands to every unit (参考资料); declared in the definition or attached later."""

    __tablename__ = "reference_materials"
    __table_args__ = (UniqueConstraint("campaign_id", "code"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    declared: Mapped[bool] = mapped_column(Boolean, default=False)
    filename: Mapped[str | None] = mapped_column(String(200), nullable=True)
    media_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    object_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    uploaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Unit(Base):
    """A participating organisation (单位) in the unit tree, with its current liaison (联络员).

    unit_path is the materialised path of ids from the root, "/<root id>/.../<own id>/": a subtree is
    every row whose path starts with its root's path.
    """

    __tablename__ = "units"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True, index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"), nullable=True, index=True)
    unit_path: Mapped[str] = mapped_column(String(1000), default="")
    participates: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(
        String(16), default="api"
    )  # "api", or "definition" (retired when dropped from it)
    liaison_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    liaison_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    liaison_phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    liaison_designated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    liaison_late: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# A code is unique within its campaign (units outside any campaign share one namespace).
Index("uq_units_campaign_code", func.coalesce(Unit.campaign_id, ""), Unit.code, unique=True)
Index("ix_units_path", Unit.unit_path, postgresql_ops={"unit_path": "varchar_pattern_ops"})


class LiaisonDesignation(Base):
    """Every liaison a unit has designated, in order (history)."""

    __tablename__ = "liaison_designations"
    id: Mapped[int] = mapped_column(AUTO_ID, primary_key=True, autoincrement=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    designated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16))  # "api" or "definition"
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Submission(Base):
    """A unit's report (报送材料) on one measure, a summary report or a good practice; evidence lives in evidence_storage."""

    __tablename__ = "submissions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id"), nullable=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    unit_path: Mapped[str] = mapped_column(String(1000), default="")
    kind: Mapped[str] = mapped_column(String(32), default="measure")
    measure_code: Mapped[str] = mapped_column(String(64), default="")
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    held_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    place: Mapped[str] = mapped_column(String(200), default="")
    participants: Mapped[int | None] = mapped_column(Integer, nullable=True)
    topics: Mapped[list] = mapped_column(JSON, default=list)
    outside_window: Mapped[bool] = mapped_column(Boolean, default=False)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)
    review_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When review made the newest claim or release intake has heard of (events may arrive out of order)
    claim_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# The coverage matrix groups a campaign's submissions by unit, kind and measure: with the key in this
# order PostgreSQL reads the index alone, already grouped (no hash, no sort).
Index(
    "ix_submissions_coverage",
    Submission.campaign_id,
    Submission.unit_id,
    Submission.kind,
    Submission.measure_code,
    Submission.state,
)
Index(
    "ix_submissions_path",
    Submission.campaign_id,
    Submission.unit_path,
    postgresql_ops={"unit_path": "varchar_pattern_ops"},
)


class SubmissionVersion(Base):
    """What a unit handed in at each version of a submission (a resubmission after return is a new version)."""

    __tablename__ = "submission_versions"
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    held_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    place: Mapped[str] = mapped_column(String(200), default="")
    participants: Mapped[int | None] = mapped_column(Integer, nullable=True)
    topics: Mapped[list] = mapped_column(JSON, default=list)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(
        String(32), nullable=True
    )  # approved, returned, rejected, withdrawn
    review_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SubmissionTopic(Base):
    """A topic a submission covers, one row each, so topic coverage aggregates in SQL from one index.

    campaign_id and unit_id are copied from the submission, and handed_in follows its state (submitted,
    under review or approved), so the coverage query needs no join with submissions.
    """

    __tablename__ = "submission_topics"
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    topic_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    unit_id: Mapped[str] = mapped_column(String(36))
    handed_in: Mapped[bool] = mapped_column(Boolean, default=False)


Index(
    "ix_submission_topics_coverage",
    SubmissionTopic.campaign_id,
    SubmissionTopic.handed_in,
    SubmissionTopic.unit_id,
    SubmissionTopic.topic_code,
)


class CoverageUnit(Base):
    """The coverage projection, one row per unit: its counters and the standing the matrix shows, both kept in the
    same transaction as every submission state change (services/intake/projection.py)."""

    __tablename__ = "coverage_units"
    # declarative makes a plain Table (projection.py writes it with Core statements)
    __table__: ClassVar[Table]
    campaign_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # JSON {"cells": {kind: {measure_code: [approved, pending, returned]}}, "topics": {topic_code: handed_in}}
    counts: Mapped[str] = mapped_column(Text)
    # JSON derived from counts: {"measures": {code: state}, "counts": {code: count}, "summary_report": [state,
    # count], "good_practices": n, "topics": [code, ...]}; what the matrix reads, so it parses no counters
    standing: Mapped[str] = mapped_column(Text)


class SubmissionEvidence(Base):
    """Evidence stored for a submission, as evidence.stored told us (the bytes stay in evidence_storage)."""

    __tablename__ = "submission_evidence"
    evidence_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    media_type: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeadlineAlert(Base):
    """A deadline alert that fired; the key makes each (unit, deadline, due time, lead) fire exactly once."""

    __tablename__ = "deadline_alerts"
    campaign_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deadline_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_at: Mapped[str] = mapped_column(
        String(32), primary_key=True
    )  # ISO UTC: a moved deadline is a new one
    unit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    lead: Mapped[str] = mapped_column(String(32), primary_key=True)  # ISO duration, or "missed"
    event_id: Mapped[str] = mapped_column(String(36))
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
