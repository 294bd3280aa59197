"""The mailer port: send one e-mail, telling temporary from permanent failure."""
from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class TemporaryMailError(RuntimeError):
    """Worth retrying later (4xx reply, connection refused, timeout)."""


class ServerUnavailable(TemporaryMailError):
    """The mail server itself cannot take mail now (refused, down, 421, TLS or login trouble): stop sending for a while."""


class PermanentMailError(RuntimeError):
    """Retrying will not help (5xx reply, invalid address)."""


class Mailer(Protocol):
    """Hands e-mails to a transport."""

    def send(self, message: EmailMessage) -> None:
        """Deliver one message or raise TemporaryMailError / PermanentMailError."""

    def health(self) -> dict:
        """The adapter's state for /healthz."""
