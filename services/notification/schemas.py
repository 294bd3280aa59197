"""Notification API models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DeliveryRead(BaseModel):
    """One entry of the delivery log: queued, sending, sent or failed (with the reason), and how many attempts."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    dedupe_key: str
    event_id: str
    event_type: str
    unit_id: str | None
    channel: str = "email"  # email, dingtalk or wecom
    recipient: str  # an address, or the robot's name
    subject: str
    status: str
    attempts: int
    resends: int = 0
    message_id: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


class DeliverySummary(BaseModel):
    """How many deliveries are in each state (for a unit, or for everything)."""

    unit_id: str | None
    queued: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    waiting_for_digest: int = 0


class DigestItemRead(BaseModel):
    """A notice kept for a daily digest; delivery_id is set once its digest was queued."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    audience: str
    unit_id: str | None
    event_id: str
    event_type: str
    subject: str
    created_at: datetime
    delivery_id: str | None


class PreferenceIn(BaseModel):
    """A unit's choice: one daily digest (true) or one e-mail per event (false)."""

    model_config = ConfigDict(extra="forbid")
    digest: bool


class PreferenceRead(BaseModel):
    """A unit's notification preference."""

    model_config = ConfigDict(from_attributes=True)
    unit_id: str
    digest: bool
    updated_at: datetime | None = None


class TemplateIn(BaseModel):
    """The new text of a template part (Jinja2)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=64 * 1024)


class TemplateRead(BaseModel):
    """A template part: the text in force, where it comes from (database, folder, package) and the default."""

    model_config = ConfigDict(from_attributes=True)
    name: str
    source: str
    text: str
    default_text: str


class PreviewRead(BaseModel):
    """A template family rendered with sample data."""

    model_config = ConfigDict(from_attributes=True)
    subject: str
    text: str
    html: str
