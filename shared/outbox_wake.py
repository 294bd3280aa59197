"""Waking another process's outbox relay over PostgreSQL: NOTIFY after an API commits events, LISTEN in the worker.

In the distributed platform an API process runs no relay: the events its requests commit were published only
at the worker relay's next poll (OUTBOX_POLL_S, half a second by default, once per hop of a submission's way).
Now the transaction that adds an API's events also NOTIFYs its service's channel, which PostgreSQL sends as it
commits (and never after a rollback), and the worker's listener wakes the relay at once. The poll stays the
safety net: a notification lost to a listener's dropped connection only means the event waits for the poll,
as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from shared.db import Database, after_commit
from shared.metrics import OUTBOX_WAKES

if TYPE_CHECKING:
    from shared.runtime import ServiceContext

log = logging.getLogger(__name__)
_STOP_CHECK_S = 0.25  # how long stop() may wait for the listening thread to notice


def channel_name(schema: str) -> str:
    """The NOTIFY channel of one service's outbox (one per service schema; NOTIFY is per database)."""
    return f"cep_outbox_{schema}"


def wake_relays_on_commit(ctx: ServiceContext) -> bool:
    """In an API process on PostgreSQL (OUTBOX_NOTIFY on), NOTIFY the workers' relays with each commit of events."""
    if ctx.db.is_sqlite or not ctx.settings.outbox_notify:
        return False
    ctx.outbox_announcers.append(OutboxNotifier(ctx.db, ctx.name))
    return True


def listen_for_commits(ctx: ServiceContext, wake: Callable[[], None]) -> OutboxListener | None:
    """In a worker on PostgreSQL (OUTBOX_NOTIFY on), the listener that wakes its relay (not yet started)."""
    if ctx.db.is_sqlite or not ctx.settings.outbox_notify:
        return None
    return OutboxListener(ctx.db.url, ctx.db.schema, wake, service=ctx.name)


class OutboxNotifier:
    """Queues the NOTIFY inside the transaction that adds events; PostgreSQL sends it when that one commits."""

    def __init__(self, db: Database, service: str) -> None:
        self._service = service
        self._channel = channel_name(db.schema)
        self._notify = text("SELECT pg_notify(:channel, '')")

    def __call__(self, uow: Session) -> None:
        """Tell every listening relay of this service, once uow commits, that committed events wait."""
        # In the transaction rather than after it: one statement instead of a checkout, BEGIN, NOTIFY and
        # COMMIT of its own (four round trips per API write); a rollback sends nothing. It cannot fail on its
        # own: an error here is the connection's, which fails the transaction anyway.
        uow.execute(self._notify, {"channel": self._channel})
        after_commit(uow, self._count)

    def _count(self) -> None:
        OUTBOX_WAKES.labels(self._service, "notified").inc()


class OutboxListener:
    """LISTENs on a service's channel on a thread of its own and wakes the relay on each notification."""

    def __init__(
        self,
        database_url: URL,
        schema: str,
        wake: Callable[[], None],
        *,
        service: str,
        retry_s: float = 5.0,
        timeout_s: float = 10.0,
    ) -> None:
        self._conninfo = database_url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._channel = channel_name(schema)
        self._wake, self._service = wake, service
        self._retry_s, self._timeout_s = retry_s, timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()

    def start(self) -> None:
        """Listen on a daemon thread until stop()."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"outbox-listen-{self._service}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (within a quarter of a second)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg
        from psycopg import sql

        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=int(self._timeout_s)
                ) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self.listening.set()
                    log.info("%s: outbox relay woken by NOTIFY on %s", self._service, self._channel)
                    self._wake()  # whatever was committed while nobody listened
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=_STOP_CHECK_S):
                            OUTBOX_WAKES.labels(self._service, "woken").inc()
                            self._wake()
            except Exception as exc:
                self.listening.clear()
                if self._stop.is_set():  # the process stops (and tests drop their database): not a fault
                    break
                OUTBOX_WAKES.labels(self._service, "listen_failed").inc()
                log.warning(
                    "%s: outbox listener lost PostgreSQL (%s: %s); the relay polls every OUTBOX_POLL_S meanwhile; "
                    "listening again in %.0fs",
                    self._service,
                    type(exc).__name__,
                    str(exc)[:200],
                    self._retry_s,
                    extra={"event": "outbox.listen_failed"},
                )
                self._stop.wait(self._retry_s)
        self.listening.clear()
