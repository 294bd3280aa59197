"""The event envelope every service publishes and consumes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def new_id() -> str:
    """A fresh random identifier as text."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """The current time in UTC, timezone-aware."""
    return datetime.now(UTC)


class Envelope(BaseModel):
    """One event on the bus; routing key = type, bytes never travel here (claim check)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(default_factory=new_id)
    type: str = Field(min_length=1, max_length=128)
    version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str
    correlation_id: str | None = None
    causation_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    trace: dict[str, str] | None = (
        None  # W3C trace context (traceparent) when tracing is on (shared/tracing.py)
    )

    def to_json(self) -> bytes:
        """The wire form of the envelope."""
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_json(cls, body: bytes | str) -> Envelope:
        """Parse the wire form; unknown fields are ignored."""
        return cls.model_validate_json(body)

    def caused(self, type: str, producer: str, payload: dict[str, Any]) -> Envelope:
        """A new event caused by this one, carrying its correlation."""
        return Envelope(
            type=type,
            producer=producer,
            correlation_id=self.correlation_id or self.event_id,
            causation_id=self.event_id,
            payload=payload,
        )
