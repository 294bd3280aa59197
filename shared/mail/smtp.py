"""Mailer over SMTP: one connection per message, replies sorted into temporary and permanent failures."""
from __future__ import annotations

import base64
import logging
import smtplib
import ssl as ssl_module
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

from shared.mail.port import PermanentMailError, ServerUnavailable, TemporaryMailError

log = logging.getLogger(__name__)


def _recipients(message: EmailMessage) -> list[str]:
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


class SmtpMailer:
    """Sends each message over a fresh SMTP connection (plain, STARTTLS or implicit TLS), with an optional login.

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

    @property
    def server(self) -> str:
        """host:port of the server, e.g. to key a rate limit."""
        return f"{self._host}:{self._port}"

    def send(self, message: EmailMessage) -> None:
        """Deliver one message or raise TemporaryMailError (ServerUnavailable) / PermanentMailError."""
        _recipients(message)
        where = f"SMTP {self.server}"
        try:
            smtp = self._connect()
            try:
                refused = smtp.send_message(message)
            finally:
                self._quit(smtp)
        except smtplib.SMTPRecipientsRefused as exc:
            replies = {rcpt: (code, _text(reply)) for rcpt, (code, reply) in exc.recipients.items()}
            detail = f"{where} refused every recipient: {replies}"
            if replies and all(400 <= code <= 499 for code, _ in replies.values()):
                raise TemporaryMailError(detail) from exc
            raise PermanentMailError(detail) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise ServerUnavailable(f"{where} refused the login: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError) as exc:
            raise ServerUnavailable(f"{where} refused the session: {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except smtplib.SMTPResponseException as exc:
            raise _reply_error(exc.smtp_code, f"{where} replied {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise ServerUnavailable(f"{where} lacks a needed extension: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, disconnected, TLS failure
            raise ServerUnavailable(f"{where} unreachable: {type(exc).__name__}: {exc}") from exc
        if refused:
            # Accepted for some recipients: retrying would duplicate it for them, so only report the rest.
            log.warning("%s accepted the message but refused some recipients: %s", where, refused)

    def health(self) -> dict:
        """Whether the server greets, accepts the login if any, and answers NOOP; never raises."""
        state = {"backend": "smtp", "host": self._host, "port": self._port,
                 "security": "ssl" if self._ssl else "starttls" if self._starttls else "none",
                 "login": bool(self._username)}
        try:
            smtp = self._connect()
            try:
                code, _ = smtp.noop()
            finally:
                self._quit(smtp)
        except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
            return {**state, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        return {**state, "ok": code == 250}

    def _tls_context(self) -> ssl_module.SSLContext:
        """Verify the server's certificate against the system's CAs, or the configured CA file."""
        return ssl_module.create_default_context(cafile=self._ca_file)

    def _connect(self) -> smtplib.SMTP:
        """Open a connection, upgrade it to TLS if configured and log in."""
        if self._ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout_s, context=self._tls_context()
            )
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
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
        token = base64.b64encode(f"\0{username}\0{password}".encode("utf-8")).decode("ascii")
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
