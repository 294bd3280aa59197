"""The Mailer contract: the folder and SMTP adapters must pass the same suite (one message, or a batch in a session)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from shared.mail.folder import FolderMailer
from shared.mail.port import PermanentMailError, ServerUnavailable, TemporaryMailError
from shared.mail.smtp import SmtpMailer
from tests.helpers import mail_parts, read_eml

SUBJECT = "【安全生产宣传月】您提交的活动证据“消防演练照片（第二批）”已审核通过，请于三日内完成后续材料补充"
TEXT = "张三同志：\n\n您提交的宣传月活动证据已审核通过。\n审核意见：照片清晰，内容完整。\n\n宣传月办公室\n"
HTML = "<html><body><p>张三同志：</p><p>您提交的宣传月活动证据已<b>审核通过</b>。</p><p>宣传月办公室</p></body></html>\n"
SENDER = "宣传月办公室 <campaign-office@example.org>"


@dataclass
class MailTarget:
    """A mailer and a way to read back what it delivered."""

    mailer: object
    delivered: Callable[[], list[EmailMessage]]


def smtp_mailer(server, **overrides) -> SmtpMailer:
    """An SmtpMailer talking to the test server, with a short timeout."""
    return SmtpMailer(**{"host": server.host, "port": server.port, "timeout_s": 5.0, **overrides})


@pytest.fixture(params=["folder", "smtp"])
def target(request, tmp_path) -> MailTarget:
    """Each adapter in turn, with its own empty mailbox."""
    if request.param == "folder":
        mailer = FolderMailer(tmp_path / "mail")
        return MailTarget(mailer, lambda: [read_eml(path) for path in mailer.messages()])
    server = request.getfixturevalue("smtp")
    return MailTarget(smtp_mailer(server), lambda: [received.message for received in server.messages])


def chinese_message(
    to: Address | None = Address(display_name="张三（安全科）", addr_spec="zhangsan@example.org"),
) -> EmailMessage:
    """A multipart/alternative notification like the notification service builds."""
    message = EmailMessage()
    message["Subject"] = SUBJECT
    message["From"] = SENDER
    if to is not None:
        message["To"] = to
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content(TEXT)
    message.add_alternative(HTML, subtype="html")
    return message


def test_chinese_multipart_message_round_trips(target):
    target.mailer.send(chinese_message())
    [received] = target.delivered()
    assert received["Subject"] == SUBJECT
    [sender] = received["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("宣传月办公室", "campaign-office@example.org")
    [recipient] = received["To"].addresses
    assert (recipient.display_name, recipient.addr_spec) == ("张三（安全科）", "zhangsan@example.org")
    assert received.get_content_type() == "multipart/alternative"
    # base64-encoded text parts travel in canonical form, CRLF line ends: compare the text, not the line ends
    assert tuple(part.replace("\r\n", "\n") for part in mail_parts(received)) == (TEXT, HTML)


def test_message_without_recipient_is_permanent_failure(target):
    with pytest.raises(PermanentMailError):
        target.mailer.send(chinese_message(to=None))
    assert target.delivered() == []


def test_health_is_ok(target):
    health = target.mailer.health()
    assert health["ok"] is True
    assert health["backend"] in ("folder", "smtp")


def test_a_session_delivers_a_batch_and_a_refused_message_does_not_fail_the_others(target):
    with target.mailer.session() as session:
        session.send(chinese_message(to=Address("张三", addr_spec="zhangsan@example.org")))
        with pytest.raises(PermanentMailError):
            session.send(chinese_message(to=None))
        session.send(chinese_message(to=Address("李四", addr_spec="lisi@example.org")))
    delivered = target.delivered()
    assert sorted(str(message["To"].addresses[0].display_name) for message in delivered) == ["张三", "李四"]
    assert all(message["Subject"] == SUBJECT for message in delivered)


def test_smtp_sends_ascii_only_headers_and_the_right_envelope(smtp):
    smtp_mailer(smtp).send(chinese_message())
    [received] = smtp.wait_for(1)
    assert received.mail_from == "campaign-office@example.org"
    assert received.rcpt_tos == ["zhangsan@example.org"]
    header_block = received.raw.split(b"\r\n\r\n", 1)[0]
    header_block.decode("ascii")  # RFC 2047 encoded words: no SMTPUTF8 needed (the server does not offer it)
    assert b"=?utf-8?" in header_block


def test_smtp_cc_and_bcc_are_envelope_recipients_and_bcc_is_not_shown(smtp):
    message = chinese_message()
    message["Cc"] = "李四 <lisi@example.org>"
    message["Bcc"] = "audit@example.org"
    smtp_mailer(smtp).send(message)
    [received] = smtp.wait_for(1)
    assert sorted(received.rcpt_tos) == ["audit@example.org", "lisi@example.org", "zhangsan@example.org"]
    assert received.message["Bcc"] is None


@pytest.mark.parametrize("address", ["not-an-address", "@example.org", "张三"])
def test_smtp_invalid_recipient_is_permanent_failure(smtp, address):
    with pytest.raises(PermanentMailError):
        smtp_mailer(smtp).send(chinese_message(to=address))
    assert smtp.messages == []


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_smtp_4xx_reply_is_temporary_failure(smtp, stage):
    smtp.fail_next_with(451, "try later", on=stage)
    with pytest.raises(TemporaryMailError, match="451"):
        smtp_mailer(smtp).send(chinese_message())
    assert smtp.messages == []
    smtp_mailer(smtp).send(chinese_message())  # the next attempt goes through
    smtp.wait_for(1)


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_smtp_5xx_reply_is_permanent_failure(smtp, stage):
    smtp.fail_next_with(550, "no such user", on=stage)
    with pytest.raises(PermanentMailError, match="550"):
        smtp_mailer(smtp).send(chinese_message())
    assert smtp.messages == []


def test_smtp_down_is_temporary_failure_and_delivery_resumes_after_restart(smtp):
    mailer = smtp_mailer(smtp)
    smtp.stop()
    started = time.monotonic()
    with pytest.raises(TemporaryMailError):
        mailer.send(chinese_message())
    assert time.monotonic() - started < 2
    health = mailer.health()
    assert health["ok"] is False and health["port"] == smtp.port
    smtp.start()
    mailer.send(chinese_message())
    assert smtp.wait_for(1)[0].message["Subject"] == SUBJECT
    assert mailer.health()["ok"] is True


def test_smtp_server_that_never_greets_times_out_as_temporary_failure():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the backlog, but nobody ever answers
        mailer = SmtpMailer(host="127.0.0.1", port=silent.getsockname()[1], timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(TemporaryMailError):
            mailer.send(chinese_message())
        assert time.monotonic() - started < 3
        assert mailer.health()["ok"] is False


# -- SMTP transport security, login and session trouble -------------------------------------------

SMTP_USER, SMTP_PASSWORD = "campaign-office", "s3cret-口令"  # not ASCII: smtplib alone cannot send it
# aiosmtpd warns for the SMTPS server, whose check does not count implicit TLS as TLS (see tls_smtp).
TLS_WARNING = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@dataclass
class TlsSmtp:
    """An SMTP server with TLS (STARTTLS or implicit) that requires a login, and the CA file that trusts it."""

    host: str
    port: int
    ca_file: str
    messages: list[EmailMessage]


def _self_signed(folder) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, written as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp.crt", folder / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_file), str(key_file)


@pytest.fixture(params=["starttls", "ssl"])
def tls_smtp(request, tmp_path):
    """A login-only SMTP server over STARTTLS, then over implicit TLS (SMTPS)."""
    import email
    import email.policy
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from tests.servers import free_port

    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    messages: list[EmailMessage] = []

    class Recorder:
        async def handle_DATA(self, server, session, envelope):
            messages.append(
                email.message_from_bytes(
                    envelope.original_content or envelope.content, policy=email.policy.default
                )
            )
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 235 or 535 itself

    if request.param == "starttls":
        security = {"tls_context": context, "require_starttls": True}
    else:  # aiosmtpd does not see implicit TLS as TLS when it checks before AUTH; the whole session is TLS anyway
        security = {"ssl_context": context, "auth_require_tls": False}
    port = free_port()
    controller = Controller(
        Recorder(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        **security,
    )
    controller.start()
    try:
        yield request.param, TlsSmtp("127.0.0.1", port, cert_file, messages)
    finally:
        controller.stop()


def tls_mailer(server: TlsSmtp, security: str, **overrides) -> SmtpMailer:
    """An SmtpMailer for the TLS server, trusting its certificate, with the right login."""
    options = {
        "host": server.host,
        "port": server.port,
        "timeout_s": 5.0,
        "ca_file": server.ca_file,
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        security: True,
    }
    return SmtpMailer(**{**options, **overrides})


@TLS_WARNING
def test_smtp_over_tls_with_login_delivers(tls_smtp):
    security, server = tls_smtp
    mailer = tls_mailer(server, security)
    mailer.send(chinese_message())
    [received] = server.messages
    assert received["Subject"] == SUBJECT
    assert tuple(part.replace("\r\n", "\n") for part in mail_parts(received)) == (TEXT, HTML)
    health = mailer.health()
    assert health["ok"] is True and health["security"] == security and health["login"] is True


@TLS_WARNING
def test_smtp_wrong_password_is_server_trouble_not_a_failed_message(tls_smtp):
    security, server = tls_smtp
    with pytest.raises(ServerUnavailable, match="login"):
        tls_mailer(server, security, password="wrong").send(chinese_message())
    assert server.messages == []


@TLS_WARNING
def test_smtp_without_the_required_login_is_server_trouble(tls_smtp):
    security, server = tls_smtp
    with pytest.raises(ServerUnavailable, match="530"):
        tls_mailer(server, security, username=None).send(chinese_message())
    assert server.messages == []


@TLS_WARNING
def test_smtp_untrusted_certificate_is_refused(tls_smtp):
    security, server = tls_smtp
    mailer = tls_mailer(server, security, ca_file=None)  # the system's CAs do not know the test certificate
    with pytest.raises(ServerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        mailer.send(chinese_message())
    assert mailer.health()["ok"] is False and server.messages == []


def test_smtp_starttls_and_ssl_together_are_refused():
    with pytest.raises(ValueError):
        SmtpMailer(host="127.0.0.1", port=25, starttls=True, ssl=True)


def test_smtp_down_and_421_are_server_trouble(smtp):
    mailer = smtp_mailer(smtp)
    smtp.fail_next_with(421, "4.3.2 shutting down", on="DATA")
    with pytest.raises(ServerUnavailable, match="421"):
        mailer.send(chinese_message())
    smtp.stop()
    with pytest.raises(ServerUnavailable):
        mailer.send(chinese_message())
    assert issubclass(ServerUnavailable, TemporaryMailError)


# -- SMTP sessions: one connection per batch, reopened when the server hangs up -------------------


@dataclass
class WatchedSmtp:
    """An SMTP server that notes the connection (client port) of each message and can hang up on MAIL."""

    host: str
    port: int
    received: list[tuple[int, EmailMessage]]
    hang_ups: list[int]  # hang up on the next MAIL command while this holds a positive count

    def connections(self) -> int:
        """How many connections delivered messages."""
        return len({port for port, _ in self.received})

    def subjects(self) -> list[str]:
        """The subjects received, in order."""
        return [str(message["Subject"]) for _, message in self.received]


@pytest.fixture
def watched_smtp():
    """`watched_smtp(**aiosmtpd_options)` starts a WatchedSmtp (e.g. timeout=0.3 for a short idle timeout)."""
    import email
    import email.policy

    from aiosmtpd.controller import Controller

    from tests.servers import free_port

    controllers = []

    def start(**options) -> WatchedSmtp:
        """A WatchedSmtp with these aiosmtpd options, stopped after the test."""
        server = WatchedSmtp("127.0.0.1", free_port(), [], [0])

        class Handler:
            async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
                if server.hang_ups[0] > 0:
                    server.hang_ups[0] -= 1
                    smtp.transport.close()  # the server goes away without a word, as on a restart or a dead link
                envelope.mail_from = address
                return "250 OK"

            async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
                if address.startswith("nobody@"):
                    return "550 5.1.1 no such user"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, smtp, session, envelope):
                raw = envelope.original_content or envelope.content
                server.received.append(
                    (session.peer[1], email.message_from_bytes(raw, policy=email.policy.default))
                )
                return "250 OK"

        controller = Controller(
            Handler(), hostname=server.host, port=server.port, enable_SMTPUTF8=False, **options
        )
        controller.start()
        controllers.append(controller)
        return server

    yield start
    for controller in controllers:
        controller.stop()


def numbered(n: int, to: str = "zhangsan@example.org") -> EmailMessage:
    """A message whose subject ends with its number."""
    message = chinese_message(to=Address("张三", addr_spec=to))
    message.replace_header("Subject", f"{SUBJECT}{n}")
    return message


def test_smtp_session_sends_a_batch_over_one_connection(watched_smtp):
    server = watched_smtp()
    mailer = smtp_mailer(server)
    with mailer.session() as session:
        for n in range(3):
            session.send(numbered(n))
    assert server.subjects() == [f"{SUBJECT}{n}" for n in range(3)] and server.connections() == 1
    mailer.send(numbered(3))  # a single send has a connection of its own
    assert server.connections() == 2


def test_smtp_session_a_refused_recipient_fails_only_its_message_and_keeps_the_connection(watched_smtp):
    server = watched_smtp()
    with smtp_mailer(server).session() as session:
        session.send(numbered(0))
        with pytest.raises(PermanentMailError, match="550"):
            session.send(numbered(1, to="nobody@example.org"))
        session.send(numbered(2))
    assert server.subjects() == [f"{SUBJECT}0", f"{SUBJECT}2"] and server.connections() == 1


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_smtp_session_a_temporary_refusal_fails_only_its_message(smtp, stage):
    smtp.fail_next_with(451, "4.7.1 try later", on=stage)
    with smtp_mailer(smtp).session() as session:
        with pytest.raises(TemporaryMailError, match="451"):
            session.send(numbered(0))
        session.send(numbered(1))
        session.send(numbered(2))
    assert [str(m.message["Subject"]) for m in smtp.wait_for(2)] == [f"{SUBJECT}1", f"{SUBJECT}2"]


def test_smtp_session_reconnects_when_the_server_hangs_up_mid_batch(watched_smtp):
    server = watched_smtp()
    with smtp_mailer(server).session() as session:
        session.send(numbered(0))
        server.hang_ups[0] = 1
        session.send(numbered(1))  # the kept connection is gone: sent again over a new one, no error
        session.send(numbered(2))
    assert server.subjects() == [f"{SUBJECT}{n}" for n in range(3)] and server.connections() == 2


def test_smtp_session_reconnects_after_the_servers_idle_timeout(watched_smtp):
    server = watched_smtp(timeout=0.3)
    with smtp_mailer(server).session() as session:
        session.send(numbered(0))
        time.sleep(0.8)  # the server closes the idle connection meanwhile
        session.send(numbered(1))
    assert server.subjects() == [f"{SUBJECT}0", f"{SUBJECT}1"] and server.connections() == 2


def test_smtp_session_tries_a_new_connection_once_then_reports_the_server(watched_smtp):
    server = watched_smtp()
    with smtp_mailer(server).session() as session:
        session.send(numbered(0))
        server.hang_ups[0] = 2  # the new connection is dropped too: no loop of reconnections
        with pytest.raises(ServerUnavailable):
            session.send(numbered(1))
        session.send(numbered(2))  # the session carries on once the server does
    assert server.subjects() == [f"{SUBJECT}0", f"{SUBJECT}2"]


def test_smtp_session_server_down_mid_batch_is_server_trouble_and_the_session_carries_on(smtp):
    with smtp_mailer(smtp).session() as session:
        session.send(numbered(0))
        smtp.stop()
        with pytest.raises(ServerUnavailable):
            session.send(numbered(1))
        smtp.start()
        session.send(numbered(2))
    assert [str(m.message["Subject"]) for m in smtp.wait_for(2)] == [f"{SUBJECT}0", f"{SUBJECT}2"]


def test_smtp_session_starts_a_new_connection_after_its_message_limit(watched_smtp):
    server = watched_smtp()
    with smtp_mailer(server, max_per_connection=2).session() as session:
        for n in range(5):
            session.send(numbered(n))
    assert len(server.received) == 5 and server.connections() == 3


@TLS_WARNING
def test_smtp_session_over_tls_with_login_sends_a_batch(tls_smtp):
    security, server = tls_smtp
    with tls_mailer(server, security).session() as session:
        for n in range(3):
            session.send(numbered(n))
    assert [str(message["Subject"]) for message in server.messages] == [f"{SUBJECT}{n}" for n in range(3)]
