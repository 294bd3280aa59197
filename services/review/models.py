"""Review tables: the queue and its decisions, projections of other services' facts, the activity
timeline, inspections, supervisions and circulars.

Everything the assessment counts is kept as dated facts (decisions, versions, inspections,
supervision changes, liaison designations), so a score can be recomputed as of any past moment.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import append_only, audit_table
from shared.messaging import messaging_tables


class Base(DeclarativeBase):
    """Declarative base of the review service's own tables."""


MESSAGING = messaging_tables(Base.metadata)
AUDIT = audit_table(Base.metadata)


# --- projections of intake's facts -------------------------------------------------------------


class ReviewCampaign(Base):
    """The latest published version of a campaign, as review needs it (from campaign.published)."""

    __tablename__ = "review_campaigns"
    campaign_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    organiser: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    publicity_start: Mapped[date] = mapped_column(Date)
    publicity_end: Mapped[date] = mapped_column(Date)
    inspection_start: Mapped[date | None] = mapped_column(Date, nullable=True)
    inspection_end: Mapped[date | None] = mapped_column(Date, nullable=True)
    measures: Mapped[list] = mapped_column(JSON, default=list)  # [MeasureInfo as JSON]
    deadlines: Mapped[list] = mapped_column(JSON, default=list)  # [DeadlineInfo as JSON]
    rubric: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # intake's Rubric as JSON
    supervision_rules: Mapped[dict] = mapped_column(JSON, default=dict)  # intake's SupervisionRules as JSON
    circular_rules: Mapped[dict] = mapped_column(JSON, default=dict)  # intake's CircularRules as JSON


class ReviewUnit(Base):
    """A unit as review needs it for sampling and ranking (from unit.registered and liaison.designated)."""

    __tablename__ = "review_units"
    unit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    unit_path: Mapped[str] = mapped_column(String(1000), default="", index=True)
    participates: Mapped[bool] = mapped_column(Boolean, default=True)
    liaison_designated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReviewVersion(Base):
    """Each handed-in version of a submission with its time: the facts behind timeliness."""

    __tablename__ = "review_versions"
    submission_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    campaign_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    measure_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32), default="measure")
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    late: Mapped[bool] = mapped_column(Boolean, default=False)


# --- the queue ---------------------------------------------------------------------------------


class ReviewItem(Base):
    """One submission's current version waiting for, or holding, a reviewer's decision (审核)."""

    __tablename__ = "review_items"
    submission_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_path: Mapped[str] = mapped_column(
        String(1000), default="", index=True
    )  # who may see it (shared.auth.visible)
    campaign_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    measure_code: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="measure")  # measure, summary_report, good_practice
    title: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(
        String(32), index=True
    )  # pending, approved, returned, rejected, withdrawn
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outside_window: Mapped[bool] = mapped_column(
        Boolean, default=False
    )  # held_on outside the publicity window
    assigned_to: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)


class ReviewEvidence(Base):
    """Evidence metadata copied from evidence.stored, with its flags, for the reviewer to see.

    submission_id is the owner: a submission, or an inspection whose photos went through evidence_storage.
    """

    __tablename__ = "review_evidence"
    evidence_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_id: Mapped[str] = mapped_column(String(36), default="", index=True)
    filename: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(16), default="")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    captured_at: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outside_window: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    duplicate_of: Mapped[list] = mapped_column(JSON, default=list)  # evidence ids with the same bytes
    near_duplicate_of: Mapped[list] = mapped_column(
        JSON, default=list
    )  # evidence ids of near-identical photos


class ReviewEvidenceText(Base):
    """The text the evidence worker read in a photo or video poster (evidence.text_read), for the reviewer.

    Its own table, keyed by evidence, so it does not matter whether evidence.stored or this came first.
    """

    __tablename__ = "review_evidence_text"
    evidence_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(16))  # read, failed, unavailable
    finding: Mapped[str] = mapped_column(
        String(20), index=True
    )  # keywords_found, no_campaign_text, none, unread
    text: Mapped[str] = mapped_column(Text, default="")
    matches: Mapped[list] = mapped_column(JSON, default=list)  # [{keyword, found, exact}]
    keywords: Mapped[list] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(300), default="")
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReviewDuplicate(Base):
    """A duplicate link between two evidence files, from the later one's evidence.stored: which repeats which.

    Kept as rows (not only the later file's JSON lists) so the earlier file shows the flag too, whichever of the
    two events arrived first.
    """

    __tablename__ = "review_duplicates"
    __table_args__ = (UniqueConstraint("evidence_id", "other_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evidence_id: Mapped[str] = mapped_column(String(36), index=True)  # the later upload, the copy
    other_id: Mapped[str] = mapped_column(String(36), index=True)  # the earlier one it repeats
    match: Mapped[str] = mapped_column(String(8))  # exact, near


class ReviewDecision(Base):
    """Every decision ever taken, in order: the facts the assessment counts as of a date."""

    __tablename__ = "review_decisions"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    submission_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    campaign_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    measure_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32), default="measure")
    version: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(16))  # approved, returned, rejected
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # 0-100: share of the measure's points
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ReviewComment(Base):
    """One message in a submission's comment thread (reviewers, admins and the unit itself)."""

    __tablename__ = "review_comments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    version: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(100))
    author_role: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# --- the activity timeline (append-only, hash-chained: services/review/timeline/chain.py) -----

TIMELINE = "timeline_records"


class TimelineRecord(Base):
    """One activity on a submission or unit; each record carries the hash of the one before."""

    __tablename__ = TIMELINE
    __table__: ClassVar[Table]  # declarative makes a plain Table here (append_only() below takes one)
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str] = mapped_column(String(32), default="")
    kind: Mapped[str] = mapped_column(String(64), index=True)  # e.g. submission.approved, comment.added
    unit_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    submission_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    subject_type: Mapped[str] = mapped_column(
        String(32)
    )  # submission, inspection, supervision, circular, unit
    subject_id: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


append_only(TimelineRecord.__table__)


class TimelineHead(Base):
    """The chain's last sequence number and hash: one row, locked by every append."""

    __tablename__ = "timeline_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


# --- inspections -------------------------------------------------------------------------------


class SamplingDraw(Base):
    """A reproducible proposal of whom to inspect: the population, the seed and who was drawn."""

    __tablename__ = "sampling_draws"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(36), index=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(Integer)
    level: Mapped[str | None] = mapped_column(String(32), nullable=True)
    population: Mapped[list] = mapped_column(JSON)  # unit ids in the order they were drawn from
    selected: Mapped[list] = mapped_column(JSON)  # unit ids drawn
    drawn_by: Mapped[str] = mapped_column(String(100))
    drawn_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Inspection(Base):
    """A phone or on-site inspection (检查) of a unit, with its checklist and spot checks."""

    __tablename__ = "inspections"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_path: Mapped[str] = mapped_column(String(1000), default="")
    sampling_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    method: Mapped[str] = mapped_column(String(16))  # phone, on_site
    inspected_on: Mapped[date] = mapped_column(Date)
    inspector: Mapped[str] = mapped_column(String(100))
    measures_verified: Mapped[list] = mapped_column(JSON, default=list)  # measure codes found in place
    residents_asked: Mapped[int] = mapped_column(Integer, default=0)
    residents_aware: Mapped[int] = mapped_column(Integer, default=0)
    residents_able: Mapped[int] = mapped_column(Integer, default=0)
    staff_tested: Mapped[int] = mapped_column(Integer, default=0)
    staff_proficient: Mapped[int] = mapped_column(Integer, default=0)
    findings: Mapped[str] = mapped_column(Text, default="")
    problems: Mapped[list] = mapped_column(JSON, default=list)
    criteria: Mapped[dict] = mapped_column(
        JSON, default=dict
    )  # inspector's shares (0..1) for criteria counts can't score
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # inspection points under the rubric
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# --- supervision -------------------------------------------------------------------------------


class Supervision(Base):
    """A formal chase (督办) of a unit: level, method, rectification deadline, response and outcome."""

    __tablename__ = "supervisions"
    __table_args__ = (UniqueConstraint("rule_key", name="uq_supervisions_rule_key"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_path: Mapped[str] = mapped_column(String(1000), default="")
    rule: Mapped[str] = mapped_column(String(32))  # manual, deadline_missed, inspection, returned_stale
    rule_key: Mapped[str | None] = mapped_column(String(200), nullable=True)  # one case per rule and subject
    subject_id: Mapped[str | None] = mapped_column(
        String(100), nullable=True
    )  # deadline code, inspection or submission id
    level: Mapped[str] = mapped_column(String(8))  # blue, yellow, red
    method: Mapped[str] = mapped_column(String(16))  # phone, on_site, interview
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)  # open, responded, closed
    opened_by: Mapped[str] = mapped_column(String(100))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    rectify_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    responded_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SupervisionChange(Base):
    """Each step of a supervision (opened, escalated, responded, closed) with the level and method after it."""

    __tablename__ = "supervision_changes"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    supervision_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(8))
    method: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# --- circulars ---------------------------------------------------------------------------------


class Circular(Base):
    """A circular (通报) for a period, generated from a frozen snapshot whose SHA-256 is kept."""

    __tablename__ = "circulars"
    __table_args__ = (
        UniqueConstraint("campaign_id", "period", "revision", name="uq_circulars_period_revision"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(36), index=True)
    period: Mapped[str] = mapped_column(String(32))  # e.g. 2020-Q1
    revision: Mapped[int] = mapped_column(Integer, default=1)
    title: Mapped[str] = mapped_column(String(300))
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16))  # draft, published
    snapshot_sha256: Mapped[str] = mapped_column(String(64))
    snapshot_key: Mapped[str] = mapped_column(String(500))
    docx_key: Mapped[str] = mapped_column(String(500))
    xlsx_key: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
