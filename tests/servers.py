"""Real servers run inside the test process: S3 (moto) and SMTP (aiosmtpd), on free local ports."""

from __future__ import annotations

import email
import email.policy
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Literal

from deploy.processes import free_port  # re-exported: the tests' in-process servers take their ports from it
from tests.services import unique

LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class MotoS3:
    """Where the moto S3 server listens, the credentials to use and a bucket name of one's own."""

    endpoint: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"
    bucket: str = ""

    def fresh(self) -> MotoS3:
        """The same server with a new, unused bucket name."""
        return replace(self, bucket=unique("test-"))

    def client(self):
        """A plain minio client for checking what the server holds (no AWS settings read from the machine)."""
        from minio import Minio

        return Minio(
            endpoint=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=self.region,
        )

    def pending_uploads(self) -> list[str]:
        """Keys of multipart uploads in the bucket neither completed nor aborted."""
        # minio has no public call for this; the private one is held steady by the minio pin in pyproject
        # (<8, and not 7.2.19, which changed the API).
        result = self.client()._list_multipart_uploads(bucket_name=self.bucket)
        return [upload.object_name for upload in result.uploads]

    def remove_bucket(self) -> None:
        """Delete the bucket and everything in it, if it was created."""
        client = self.client()
        if not client.bucket_exists(bucket_name=self.bucket):
            return
        for item in client.list_objects(bucket_name=self.bucket, recursive=True):
            client.remove_object(bucket_name=self.bucket, object_name=item.object_name)
        client.remove_bucket(bucket_name=self.bucket)


@contextmanager
def moto_s3_server() -> Iterator[MotoS3]:
    """A moto S3 server on a free port; credentials are passed explicitly, never read from the machine."""
    from moto.server import ThreadedMotoServer

    access_log = logging.getLogger("werkzeug")  # one line per request otherwise floods failure reports
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=LOCALHOST, port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield MotoS3(endpoint=f"{host}:{port}").fresh()
    finally:
        server.stop()
        access_log.setLevel(level)


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the SMTP server got it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


class _Handler:
    """aiosmtpd hooks: refuse when a failure is queued, otherwise record the message."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        """Accept the recipient unless a refusal is queued."""
        failure = self._server._take_failure("RCPT")
        if failure:
            return failure
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        """Keep the message unless a refusal is queued."""
        failure = self._server._take_failure("DATA")
        if failure:
            return failure
        self._server._record(envelope)
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server that keeps what it receives and can be told to refuse or go down for a while."""

    def __init__(self, host: str = LOCALHOST, port: int = 0) -> None:
        self.host = host
        self.port = port or free_port()
        self.messages: list[ReceivedMail] = []
        self._changed = threading.Condition()
        self._failures: deque[tuple[str, str]] = deque()
        self._controller = None

    def start(self) -> None:
        """Listen on the host and port (again, after stop())."""
        from aiosmtpd.controller import Controller

        if self._controller is not None:
            return
        # SMTPUTF8 off, like many real relays: headers must arrive RFC 2047-encoded.
        controller = Controller(_Handler(self), hostname=self.host, port=self.port, enable_SMTPUTF8=False)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening; connections are then refused until start()."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def fail_next_with(
        self, code: int, text: str, *, times: int = 1, on: Literal["RCPT", "DATA"] = "RCPT"
    ) -> None:
        """Make the next `times` replies to RCPT (or DATA) be `code text`, e.g. 451 try later, 550 no such user."""
        with self._changed:
            self._failures.extend([(on, f"{code} {text}")] * times)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Wait until at least count messages have arrived; returns them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} messages within {timeout}s, got {len(self.messages)}"
                    )
                self._changed.wait(left)
            return list(self.messages)

    def _take_failure(self, stage: str) -> str | None:
        """The queued refusal for this stage, if it is next in line."""
        with self._changed:
            if self._failures and self._failures[0][0] == stage:
                return self._failures.popleft()[1]
        return None

    def _record(self, envelope) -> None:
        """Keep an accepted message and wake anyone waiting for it."""
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        with self._changed:
            self.messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), raw, parsed))
            self._changed.notify_all()


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """A recording SMTP server on 127.0.0.1 and a free port, stopped afterwards."""
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
