"""The bus port: publish confirmed events, consume them with retries and a parking lot."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.events import Envelope

Handler = Callable[[Envelope], None]


class BusError(RuntimeError):
    """The bus could not accept or deliver a message."""


class Unprocessable(Exception):
    """Raised by a handler for an event it can never process (unknown type, malformed payload): park it at once."""


@dataclass(frozen=True)
class ParkedMessage:
    """A message in a consumer's parking lot, as an operator sees it."""

    message_id: str
    type: str
    attempts: int
    error: str | None
    body: str  # the wire form as text (cut at 64 KiB)


class MessageBus(Protocol):
    """Topic-routed, at-least-once event bus.

    A handler that returns acknowledges the event; one that raises has it redelivered after the
    configured retry delays, then parked, while the consumer's queue keeps flowing. A handler that raises
    Unprocessable has it parked at once; a body that is not an envelope is parked at once too.
    """

    def publish(self, event: Envelope) -> None:
        """Publish durably; return only once the bus has taken responsibility for it."""

    def subscribe(self, consumer: str, event_types: Sequence[str], handler: Handler) -> None:
        """Declare a durable consumer queue bound to event types (topic patterns allowed)."""

    def start(self) -> None:
        """Begin delivering to the subscribed handlers in the background."""

    def stop(self) -> None:
        """Stop delivering, letting an in-flight handler finish."""

    def parked(self, consumer: str) -> list[Envelope]:
        """Events that exhausted their retries for a consumer (peeked, not removed)."""

    def health(self) -> dict[str, Any]:
        """The adapter's state for /healthz."""

    def queue_state(self, consumer: str) -> dict[str, int]:
        """{"ready": waiting messages (consumer lag), "parked": parked messages} of a consumer's queues."""

    def parked_messages(self, consumer: str, limit: int = 100) -> list[ParkedMessage]:
        """The parking lot's messages with their error and attempts, oldest first (peeked, not removed)."""

    def replay_parked(self, consumer: str, message_id: str | None = None) -> int:
        """Move one parked message (or all) back to the consumer's queue with the attempt count reset."""

    def purge_parked(self, consumer: str, message_id: str | None = None) -> list[ParkedMessage]:
        """Remove one parked message (or all) for good; returns what was removed (the caller audits it)."""


class SettlingBus(Protocol):
    """An in-process bus that tells when every consumer has handled (or parked) an event (InMemoryBus)."""

    settles_in_process: bool

    def publish(self, event: Envelope, on_settled: Callable[[bool], None] | None = None) -> None:
        """Route the event; call on_settled(parked) once every bound queue is done with it."""


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: '*' is one word, '#' is zero or more words."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


def parked_message(body: bytes, *, message_id: str | None, attempts: int, error: str | None) -> ParkedMessage:
    """A ParkedMessage from a message's wire form (its type and id read from the envelope when it is one)."""
    try:
        envelope = json.loads(body)
        event_type, event_id = str(envelope.get("type", "?")), envelope.get("event_id")
    except (ValueError, AttributeError):
        event_type, event_id = "unreadable", None
    ident = message_id or event_id or hashlib.sha256(body).hexdigest()[:32]
    return ParkedMessage(
        message_id=str(ident),
        type=event_type,
        attempts=attempts,
        error=error,
        body=body[:65536].decode("utf-8", "replace"),
    )
