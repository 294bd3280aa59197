"""Notification API models."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class DeliveryRead(BaseModel):
    """One entry of the delivery log."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    dedupe_key: str
    event_id: str
    event_type: str
    unit_id: str | None
    recipient: str
    subject: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
