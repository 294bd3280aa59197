"""Notification tables: liaisons learned from events, and the delivery log."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.messaging import messaging_tables


class Base(DeclarativeBase):
    """Declarative base of the notification service's own tables."""


MESSAGING = messaging_tables(Base.metadata)


class Liaison(Base):
    """A unit's current liaison (联络员), who receives every automated e-mail for the unit."""

    __tablename__ = "liaisons"
    unit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_name: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))


class Delivery(Base):
    """One e-mail to send, at most once per dedupe key; its status is the delivery log."""

    __tablename__ = "deliveries"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    event_type: Mapped[str] = mapped_column(String(128))
    unit_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    recipient: Mapped[str] = mapped_column(String(400))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued, sending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
