"""The mailer port: send e-mails, one or several over one connection, telling temporary from permanent failure."""

from __future__ import annotations

from contextlib import AbstractContextManager
from email.message import Message
from typing import Any, Protocol


class TemporaryMailError(RuntimeError):
    """Worth retrying later (4xx reply, connection refused, timeout)."""


class ServerUnavailable(TemporaryMailError):
    """The mail server itself cannot take mail now (refused, down, 421, TLS or login trouble): stop sending for a while."""


class PermanentMailError(RuntimeError):
    """Retrying will not help (5xx reply, invalid address)."""


class MailSession(Protocol):
    """Several messages in a row over one connection to the transport."""

    def send(self, message: Message) -> None:
        """Deliver one message or raise TemporaryMailError / PermanentMailError; the session stays usable after either."""


class Mailer(Protocol):
    """Hands e-mails to a transport."""

    def send(self, message: Message) -> None:
        """Deliver one message or raise TemporaryMailError / PermanentMailError."""

    def session(self) -> AbstractContextManager[MailSession]:
        """A session for a batch: one connection, reopened if it drops, closed when the block ends."""

    def health(self) -> dict[str, Any]:
        """The adapter's state for /healthz."""
