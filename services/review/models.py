"""Review tables: the review queue built from events, and the evidence attached to each item."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.messaging import messaging_tables


class Base(DeclarativeBase):
    """Declarative base of the review service's own tables."""


MESSAGING = messaging_tables(Base.metadata)
AUDIT = audit_table(Base.metadata)


class ReviewItem(Base):
    """One submission version waiting for, or holding, a reviewer's decision (审核)."""

    __tablename__ = "review_items"
    submission_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_path: Mapped[str] = mapped_column(String(1000), default="", index=True)  # who may see it (shared.auth.visible)
    measure_code: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32), index=True)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)


class ReviewEvidence(Base):
    """Evidence metadata copied from evidence.stored, for the reviewer to see."""

    __tablename__ = "review_evidence"
    evidence_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
