"""Event payload schemas, one module per producing service."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from shared.events import Envelope
from shared.logs import current_correlation
from shared.tracing import current_trace

PayloadT = TypeVar("PayloadT", bound=BaseModel)


def make_event(payload: BaseModel, *, producer: str, cause: Envelope | None = None) -> Envelope:
    """Wrap a typed payload in an envelope whose type is the payload's EVENT_TYPE.

    Without an explicit cause the event is caused by what is being handled now (shared/logs.py): the event a
    handler consumes, or the HTTP request whose id becomes the correlation id.
    """
    event_type = payload.EVENT_TYPE  # type: ignore[attr-defined]
    data = payload.model_dump(mode="json")
    if cause is not None:
        event = cause.caused(event_type, producer, data)
    else:
        correlation_id, causation_id = current_correlation()
        event = Envelope(
            type=event_type,
            producer=producer,
            payload=data,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
    trace = current_trace()
    return event.model_copy(update={"trace": trace}) if trace else event


def read_payload(model: type[PayloadT], event: Envelope) -> PayloadT:
    """Validate an envelope's payload against its schema (unknown fields ignored)."""
    return model.model_validate(event.payload)
