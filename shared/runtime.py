"""What one service needs at run time, and the worker loop that drives its consumers and relay."""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from shared.blobs.port import BlobStore
from shared.bus.port import MessageBus
from shared.clock import Clock
from shared.db import Database
from shared.mail.port import Mailer
from shared.messaging import EventHandler, IdempotentConsumer, Inbox, MessagingTables, Outbox, OutboxRelay
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    """A service's adapters, built once by its bootstrap and handed to handlers and the API."""

    name: str
    settings: Settings
    db: Database
    clock: Clock
    messaging: MessagingTables
    blobs: BlobStore | None = None
    mailer: Mailer | None = None
    outbox_wakers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def outbox(self) -> Outbox:
        """The service's outbox, to add events inside a transaction."""
        return Outbox(self.messaging.outbox)

    def outbox_written(self) -> None:
        """Tell in-process relays that committed events are waiting (no-op when none listen)."""
        for wake in self.outbox_wakers:
            wake()


@dataclass(frozen=True)
class PeriodicJob:
    """A function a worker calls every interval seconds (and when woken)."""

    name: str
    interval_s: float
    run: Callable[[], object]


class ServiceWorker:
    """Runs one service's outbox relay, idempotent consumer and periodic jobs on a bus."""

    def __init__(
        self,
        ctx: ServiceContext,
        bus: MessageBus,
        subscriptions: Mapping[str, Sequence[EventHandler]],
        jobs: Sequence[PeriodicJob] = (),
    ) -> None:
        self.ctx, self.bus = ctx, bus
        self.relay = OutboxRelay(db=ctx.db, table=ctx.messaging.outbox, bus=bus, poll_s=ctx.settings.outbox_poll_s)
        self._jobs = [_JobThread(job) for job in jobs]
        ctx.outbox_wakers.append(self.relay.wake)
        self.consumer = IdempotentConsumer(
            name=ctx.name,
            db=ctx.db,
            inbox=Inbox(ctx.messaging.inbox),
            subscriptions=subscriptions,
            dependencies={"ctx": ctx},
            after_commit=[ctx.outbox_written, *(job.wake for job in self._jobs)],
        )

    def start(self) -> None:
        """Declare the service's queue, start the relay and the jobs (the bus is started by the caller)."""
        if self.consumer.event_types:
            self.bus.subscribe(self.ctx.name, self.consumer.event_types, self.consumer)
        self.relay.start()
        for job in self._jobs:
            job.start()

    def stop(self) -> None:
        """Stop the jobs and the relay."""
        for job in self._jobs:
            job.stop()
        self.relay.stop()


class _JobThread:
    def __init__(self, job: PeriodicJob) -> None:
        self.job = job
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"job-{self.job.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.job.run()
            except Exception:
                log.exception("periodic job %s failed", self.job.name)
            self._wake.wait(self.job.interval_s)
            self._wake.clear()


def run_until_signalled(start: Callable[[], None], stop: Callable[[], None]) -> None:
    """Start, block until SIGTERM or SIGINT, then stop: the body of every worker process."""
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    start()
    log.info("worker started")
    done.wait()
    log.info("worker stopping")
    stop()


def configure_logging() -> None:
    """Plain timestamped logs on stderr for every process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
