"""Notification tables: what it learned from events, preferences, template overrides and the delivery log."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.messaging import messaging_tables


class Base(DeclarativeBase):
    """Declarative base of the notification service's own tables."""


MESSAGING = messaging_tables(Base.metadata)
AUDIT = audit_table(Base.metadata)


class Liaison(Base):
    """A unit's current liaison (联络员), who receives every automated e-mail for the unit."""

    __tablename__ = "liaisons"
    unit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_name: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))


class KnownUnit(Base):
    """A unit of the unit tree, from unit.registered (its name is needed even before it has a liaison)."""

    __tablename__ = "units"
    unit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    unit_path: Mapped[str] = mapped_column(Text, default="")
    campaign_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class KnownCampaign(Base):
    """The latest published version of a campaign, kept to tell liaisons designated after publication."""

    __tablename__ = "campaigns"
    campaign_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    publicity_end: Mapped[date] = mapped_column(Date)
    payload: Mapped[dict] = mapped_column(JSON)


class Preference(Base):
    """A unit's choice: one mail per event, or one daily digest."""

    __tablename__ = "preferences"
    unit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TemplateOverride(Base):
    """An admin's replacement for one packaged template part, e.g. `decision.subject`."""

    __tablename__ = "template_overrides"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DigestItem(Base):
    """One notice waiting for its audience's daily digest (a unit on digest, or a reviewer)."""

    __tablename__ = "digest_items"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(400), unique=True)
    audience: Mapped[str] = mapped_column(String(300), index=True)  # unit:<unit id> or reviewer:<address>
    unit_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    event_type: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    delivery_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)


class Delivery(Base):
    """One e-mail (or group-robot post, `channel`) to send per dedupe key; its status is the delivery log.

    A worker sending it holds a lease (`lease_owner` until `lease_expires_at`); an expired lease puts the row
    back in the queue and counts a resend. Its Message-ID is fixed when the row is made, so every resend carries it.
    """

    __tablename__ = "deliveries"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    event_type: Mapped[str] = mapped_column(String(128))
    unit_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    channel: Mapped[str] = mapped_column(
        String(16), default="email", server_default="email", index=True
    )  # email, dingtalk or wecom
    recipient: Mapped[str] = mapped_column(String(400))  # a mail address, or the robot's name
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)  # for a robot: the markdown posted
    body_html: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued, sending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    resends: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )  # claims taken back from a worker whose lease expired
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # when the retry window (NOTIFY_RETRY_FOR_S) began, if not at created_at: an operator's requeue starts a new one
    retry_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class HeldNotice(Base):
    """An event for a unit that has no liaison yet, kept until one is named and then told (not parked)."""

    __tablename__ = "held_notices"
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    handler: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    envelope: Mapped[dict] = mapped_column(JSON)
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
