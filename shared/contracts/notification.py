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
    channel: str = (
        "email"  # email, or the group-robot platform (dingtalk, wecom); recipient is then the robot
    )


class NotificationDelivered(_Payload):
    """An e-mail was accepted by the mail server (or a post by the robot platform)."""

    EVENT_TYPE: ClassVar[str] = "notification.delivered"


class NotificationFailed(_Payload):
    """An e-mail (or a group-robot post) could not be delivered and will not be retried."""

    EVENT_TYPE: ClassVar[str] = "notification.failed"
    reason: str
