"""The bus port: publish confirmed events, consume them with retries and a parking lot."""
from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from shared.events import Envelope

Handler = Callable[[Envelope], None]


class BusError(RuntimeError):
    """The bus could not accept or deliver a message."""


class Unprocessable(Exception):
    """Raised by a handler for an event it can never process (unknown type, malformed payload): park it at once."""


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
