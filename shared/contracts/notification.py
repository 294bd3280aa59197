"""Events published by the notification service."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    delivery_id: str
    dedupe_key: str
    recipient: str
    unit_id: str | None = None
    cause_type: str


class NotificationDelivered(_Payload):
    """An e-mail was accepted by the mail server."""

    EVENT_TYPE: ClassVar[str] = "notification.delivered"


class NotificationFailed(_Payload):
    """An e-mail could not be delivered and will not be retried."""

    EVENT_TYPE: ClassVar[str] = "notification.failed"
    reason: str
