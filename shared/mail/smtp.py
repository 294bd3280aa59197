"""Mailer over SMTP: one connection per batch of messages, replies sorted into temporary and permanent failures."""

from __future__ import annotations

import base64
import logging
import smtplib
import ssl as ssl_module
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from shared.mail.port import PermanentMailError, ServerUnavailable, TemporaryMailError

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 2.0  # the health probe's own budget, shorter than a send's


def _recipients(message: Message) -> list[str]:
    """The envelope recipients, as smtplib will take them; refuses a message with none or a malformed one."""
    if not message.get_all("To"):
        raise PermanentMailError("message has no recipient")
    headers = [str(value) for name in ("To", "Cc", "Bcc") for value in message.get_all(name, [])]
    addresses = [address for _, address in getaddresses(headers)]
    for address in addresses:
        local, at, domain = address.rpartition("@")
        if not (local and at and domain) or any(char.isspace() for char in address):
            raise PermanentMailError(f"invalid recipient address: {address!r}")
    return addresses


def _text(reply: bytes | str) -> str:
    """A server reply as text."""
    return reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else str(reply)


# Replies about the session rather than the message: closing (421), TLS or login unavailable (454),
# login or STARTTLS required (530). Failing the message for them would lose mail to a configuration slip.
_SESSION_REPLIES = {421, 454, 530}


def _reply_error(code: int, detail: str) -> Exception:
    """Session trouble is ServerUnavailable; another 5xx reply is permanent; anything else is worth another try."""
    if code in _SESSION_REPLIES:
        return ServerUnavailable(detail)
    if 500 <= code <= 599:
        return PermanentMailError(detail)
    return TemporaryMailError(detail)


def _failure(exc: smtplib.SMTPException | OSError, where: str) -> Exception:
    """The port's error for what smtplib raised while sending one message."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = {rcpt: (code, _text(reply)) for rcpt, (code, reply) in exc.recipients.items()}
        detail = f"{where} refused every recipient: {replies}"
        if replies and all(400 <= code <= 499 for code, _ in replies.values()):
            return TemporaryMailError(detail)
        return PermanentMailError(detail)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return ServerUnavailable(f"{where} refused the login: {exc.smtp_code} {_text(exc.smtp_error)}")
    if isinstance(exc, (smtplib.SMTPConnectError, smtplib.SMTPHeloError)):
        return ServerUnavailable(f"{where} refused the session: {exc.smtp_code} {_text(exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply_error(exc.smtp_code, f"{where} replied {exc.smtp_code} {_text(exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ServerUnavailable(f"{where} lacks a needed extension: {exc}")
    # refused, reset, timed out, disconnected, TLS failure
    return ServerUnavailable(f"{where} unreachable: {type(exc).__name__}: {exc}")


def _dropped(exc: BaseException) -> bool:
    """Whether the server closed the connection (idle timeout, a per-connection limit, a restart) rather than refused the message."""
    if isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError)):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(code == 421 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == 421


class SmtpMailer:
    """Sends messages over SMTP (plain, STARTTLS or implicit TLS), with an optional login: one connection per session.

    Trouble with the server as a whole (down, refusing connections, TLS, login, a missing extension) is
    ServerUnavailable: it says nothing about the message, so the caller keeps the message and waits.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl: bool = False,
        timeout_s: float = 10.0,
        ca_file: Path | str | None = None,
        max_per_connection: int = 100,
    ) -> None:
        if starttls and ssl:
            raise ValueError("choose either starttls or ssl (implicit TLS), not both")
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._ssl = ssl
        self._timeout_s = timeout_s
        self._ca_file = str(ca_file) if ca_file else None
        # Many relays close a connection after some number of messages; a session starts a new one before that.
        self.max_per_connection = max_per_connection

    @property
    def server(self) -> str:
        """host:port of the server, e.g. to key a rate limit."""
        return f"{self._host}:{self._port}"

    def send(self, message: Message) -> None:
        """Deliver one message over a connection of its own, or raise TemporaryMailError (ServerUnavailable) / PermanentMailError."""
        with self.session() as session:
            session.send(message)

    @contextmanager
    def session(self) -> Iterator[SmtpSession]:
        """One connection for a batch (opened at its first message, reopened if the server drops it), closed at the end."""
        session = SmtpSession(self)
        try:
            yield session
        finally:
            session.close()

    def health(self) -> dict[str, Any]:
        """Whether the server greets, accepts the login if any, and answers NOOP; never raises."""
        state = {
            "backend": "smtp",
            "host": self._host,
            "port": self._port,
            "security": "ssl" if self._ssl else "starttls" if self._starttls else "none",
            "login": bool(self._username),
        }
        try:
            smtp = self._connect(timeout_s=min(self._timeout_s, PROBE_TIMEOUT_S))
            try:
                code, _ = smtp.noop()
            finally:
                self._quit(smtp)
        except Exception as exc:
            return {**state, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        return {**state, "ok": code == 250}

    def _tls_context(self) -> ssl_module.SSLContext:
        """Verify the server's certificate against the system's CAs, or the configured CA file."""
        return ssl_module.create_default_context(cafile=self._ca_file)

    def _connect(self, timeout_s: float | None = None) -> smtplib.SMTP:
        """Open a connection (each network wait bounded by the timeout), upgrade it to TLS if configured and log in."""
        timeout_s = timeout_s or self._timeout_s
        if self._ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self._host, self._port, timeout=timeout_s, context=self._tls_context()
            )
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=timeout_s)
        try:
            if self._starttls:
                smtp.starttls(context=self._tls_context())
            if self._username:
                self._login(smtp)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        """Log in; smtplib only sends ASCII credentials, so others go as AUTH PLAIN in UTF-8 (RFC 4616)."""
        username, password = self._username or "", self._password or ""
        if username.isascii() and password.isascii():
            smtp.login(username, password)
            return
        smtp.ehlo_or_helo_if_needed()
        token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
        code, reply = smtp.docmd("AUTH", f"PLAIN {token}")
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, reply)

    @staticmethod
    def _quit(smtp: smtplib.SMTP) -> None:
        """Say goodbye; a failing QUIT after delivery must not turn into a retry (and a duplicate)."""
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


class SmtpSession:
    """One SMTP connection reused for several messages: opened at the first, reopened when the server drops it."""

    def __init__(self, mailer: SmtpMailer) -> None:
        self._mailer = mailer
        self._smtp: smtplib.SMTP | None = None
        self._count = 0

    def send(self, message: Message) -> None:
        """Deliver one message or raise TemporaryMailError (ServerUnavailable) / PermanentMailError; the session carries on."""
        _recipients(message)
        where = f"SMTP {self._mailer.server}"
        try:
            refused = self._transmit(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise _failure(exc, where) from exc
        if refused:
            # Accepted for some recipients: retrying would duplicate it for them, so only report the rest.
            log.warning("%s accepted the message but refused some recipients: %s", where, refused)

    def close(self) -> None:
        """Say goodbye on the open connection, if any."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            self._mailer._quit(smtp)

    def _transmit(self, message: Message) -> dict[str, tuple[int, bytes]]:
        if self._smtp is not None and self._count >= self._mailer.max_per_connection:
            self.close()
        reused = self._smtp is not None
        try:
            return self._attempt(message)
        except (smtplib.SMTPException, OSError) as exc:
            if not (reused and _dropped(exc)):
                raise
            # A kept connection went away. The server may, at worst, have taken the message just before
            # (as with any connection lost mid-send); sending it once more now is what a later retry would do.
            log.info(
                "SMTP %s closed a reused connection (%s); sending over a new one", self._mailer.server, exc
            )
            return self._attempt(message)

    def _attempt(self, message: Message) -> dict[str, tuple[int, bytes]]:
        if self._smtp is None:
            self._smtp, self._count = self._mailer._connect(), 0
        smtp = self._smtp
        try:
            refused = smtp.send_message(message)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError):
            # smtplib reset the transaction (RSET): the connection serves the next message, unless it is closed.
            if smtp.sock is None:
                self._discard()
            raise
        except BaseException:
            self._discard()  # stopped mid-conversation: its state is unknown, never reuse it
            raise
        self._count += 1
        return refused

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()
