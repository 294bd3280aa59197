"""Event payload schemas, one module per producing service."""
from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from shared.events import Envelope

PayloadT = TypeVar("PayloadT", bound=BaseModel)


def make_event(payload: BaseModel, *, producer: str, cause: Envelope | None = None) -> Envelope:
    """Wrap a typed payload in an envelope whose type is the payload's EVENT_TYPE."""
    event_type = payload.EVENT_TYPE  # type: ignore[attr-defined]
    data = payload.model_dump(mode="json")
    if cause is not None:
        return cause.caused(event_type, producer, data)
    return Envelope(type=event_type, producer=producer, payload=data)


def read_payload(model: type[PayloadT], event: Envelope) -> PayloadT:
    """Validate an envelope's payload against its schema (unknown fields ignored)."""
    return model.model_validate(event.payload)
