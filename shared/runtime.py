"""What one service needs at run time, and the worker loop that drives its consumers and relay."""

from __future__ import annotations

import functools
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from shared.background import BackgroundLoop
from shared.blobs.port import BlobStore
from shared.bus.port import MessageBus
from shared.channels.robots import Channels
from shared.clock import Clock
from shared.db import Database, after_commit
from shared.events import Envelope
from shared.logs import log_context
from shared.mail.port import Mailer
from shared.messaging import (
    EventHandler,
    IdempotentConsumer,
    Inbox,
    MessagingTables,
    Outbox,
    OutboxRelay,
    OutboxRow,
    prune_messaging,
)
from shared.metrics import JOB_DURATION, JOB_RUNS, job_succeeded
from shared.outbox_wake import listen_for_commits
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
    channels: Channels | None = None  # group robots (DingTalk, WeCom) of the notification service
    # Told after each commit that added events, with those rows: the process's relays.
    outbox_wakers: list[Callable[[Sequence[OutboxRow]], None]] = field(default_factory=list)
    # Run inside each transaction at its first event, before it commits: an API's NOTIFY on PostgreSQL.
    outbox_announcers: list[Callable[[Session], None]] = field(default_factory=list)
    job_wakers: dict[str, Callable[[], None]] = field(
        default_factory=dict
    )  # a worker's job loops, by job name
    bus: MessageBus | None = None  # the process's bus, once a worker or the embedded platform runs one

    @property
    def blob_store(self) -> BlobStore:
        """The blob store of a service built with one; a wiring error (not a user's) when it is missing."""
        if self.blobs is None:
            raise RuntimeError(f"service {self.name} was built without a blob store")
        return self.blobs

    @functools.cached_property
    def outbox(self) -> Outbox:
        """The service's outbox, to add events inside a transaction (one per context: it builds its insert once)."""
        return Outbox(
            self.messaging.outbox, on_commit=self.outbox_written, in_transaction=self.outbox_announce
        )

    def wake_job_after_commit(self, uow: Session, job: str) -> None:
        """Run this process's periodic job of that name as soon as uow's transaction commits (no-op without one)."""
        wake = self.job_wakers.get(job)
        if wake is not None:
            after_commit(uow, wake)

    def outbox_written(self, added: Sequence[OutboxRow]) -> None:
        """Tell this process's relays that committed events wait; `outbox` calls it after every commit that
        added events, with their rows."""
        for wake in self.outbox_wakers:
            wake(added)

    def outbox_announce(self, uow: Session) -> None:
        """Tell other processes, inside uow's transaction, that it adds events (from an API on PostgreSQL: the
        workers' relays, by a NOTIFY sent at commit); `outbox` calls it at each transaction's first event."""
        for announce in self.outbox_announcers:
            announce(uow)


@dataclass(frozen=True)
class PeriodicJob:
    """A function a worker calls every interval seconds, and after consumed events: every event (True), none
    (False), or only events of the listed types (a tuple), so an event the job does not care about costs nothing."""

    name: str
    interval_s: float
    run: Callable[[], object]
    wake_on_events: bool | tuple[str, ...] = True

    def wakes_on(self, event_type: str) -> bool:
        """Whether a consumed event of this type should run the job now."""
        if isinstance(self.wake_on_events, bool):
            return self.wake_on_events
        return event_type in self.wake_on_events


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
        ctx.bus = bus
        self.relay = OutboxRelay(
            db=ctx.db,
            table=ctx.messaging.outbox,
            bus=bus,
            poll_s=ctx.settings.outbox_poll_s,
            in_process=True,
            service=ctx.name,
        )
        retention = timedelta(days=ctx.settings.retention_days)
        prune = PeriodicJob(
            "prune",
            ctx.settings.prune_interval_s,
            lambda: prune_messaging(ctx.db, ctx.messaging, older_than=retention),
            wake_on_events=False,
        )
        self._jobs = [
            (job, BackgroundLoop(f"job-{job.name}", job.interval_s, observed(ctx.name, job)))
            for job in (*jobs, prune)
        ]
        ctx.job_wakers.update({job.name: loop.wake for job, loop in self._jobs})
        ctx.outbox_wakers.append(self.relay.committed)
        self.listener = listen_for_commits(ctx, self.relay.wake)  # events the APIs commit (PostgreSQL)
        self._subscribed = False
        wanted = wanted_subscriptions(subscriptions, ctx.settings)
        self.consumer = IdempotentConsumer(
            name=ctx.name,
            db=ctx.db,
            inbox=Inbox(ctx.messaging.inbox),
            subscriptions=wanted,
            dependencies={"ctx": ctx},
            # Not wanted with these settings, but bound by an earlier run's queue: acknowledged, not parked.
            ignored_types=set(subscriptions) - set(wanted),
        )

    def consume(self, event: Envelope) -> None:
        """Handle one event through the idempotent consumer, then wake the jobs that care about its type."""
        self.consumer(event)
        for job, loop in self._jobs:
            if job.wakes_on(event.type):
                loop.wake()

    def subscribe(self) -> None:
        """Declare the service's queue (once), so events published from now on are kept for it."""
        if self.consumer.event_types and not self._subscribed:
            self.bus.subscribe(self.ctx.name, self.consumer.event_types, self.consume)
            self._subscribed = True

    def start(self) -> None:
        """Declare the service's queue, start the relay and the jobs (the bus is started by the caller)."""
        self.subscribe()
        self.relay.start()
        if self.listener is not None:
            self.listener.start()
        for _job, loop in self._jobs:
            loop.start()

    def liveness(self) -> dict[str, Any]:
        """Whether the relay and every job loop run and none is stuck in one step (HEALTH_STALL_S)."""
        stall_s = self.ctx.settings.health_stall_s
        loops = {
            "outbox-relay": self.relay.loop_state(stall_s),
            **{f"job-{job.name}": loop.state(stall_s) for job, loop in self._jobs},
        }
        return {"ok": all(state["ok"] for state in loops.values()), "loops": loops}

    def stop(self) -> None:
        """Stop the jobs and the relay."""
        for _job, loop in self._jobs:
            loop.stop()
        if self.listener is not None:
            self.listener.stop()
        self.relay.stop()


def wanted_subscriptions(
    subscriptions: Mapping[str, Sequence[EventHandler]], settings: Settings
) -> dict[str, list[EventHandler]]:
    """The subscriptions without handlers that say (by a `wanted(settings)` attribute) they have nothing to do with
    these settings, so the service does not even bind those events: no delivery, no inbox row, no transaction."""
    kept = {
        event_type: [h for h in handlers if getattr(h, "wanted", lambda _settings: True)(settings)]
        for event_type, handlers in subscriptions.items()
    }
    skipped = sorted(event_type for event_type, handlers in kept.items() if not handlers)
    if skipped:
        log.info("not consuming %s: no handler has work for them with these settings", ", ".join(skipped))
    return {event_type: handlers for event_type, handlers in kept.items() if handlers}


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


def observed(service: str, job: PeriodicJob) -> Callable[[], object]:
    """A job's step that logs in the service's context and counts runs, failures and the last success."""

    def step() -> object:
        started = time.perf_counter()
        with log_context(service=service, job=job.name):
            try:
                result = job.run()
            except Exception:
                JOB_RUNS.labels(service, job.name, "failed").inc()
                raise
            JOB_RUNS.labels(service, job.name, "ok").inc()
            JOB_DURATION.labels(service, job.name).observe(time.perf_counter() - started)
            job_succeeded(service, job.name)
            return result

    return step


def configure_logging(
    settings: Settings | None = None, *, service: str = "platform", role: str = "embedded"
) -> None:
    """Structured logs on stderr for every process (shared/logs.py; LOG_FORMAT, LOG_LEVEL), and tracing if configured."""
    from shared.logs import configure_logging as configure
    from shared.tracing import setup_tracing

    settings = settings or Settings()
    configure(service=service, role=role, fmt=settings.log_format, level=settings.log_level)
    setup_tracing(service, endpoint=settings.otel_exporter_otlp_endpoint)


def freeze_startup_objects() -> None:
    """Keep what a process built at start (modules, app, adapters) out of the garbage collector's full passes.

    Called once by each composition root just before it serves. Those objects live as long as the process; left
    in the collector's oldest generation, every full pass walks all of them again, and a request that builds
    tens of thousands of objects (the whole campaign's coverage matrix) triggers several such passes: half of
    its time at 5,000 units (bench/coverage.py)."""
    gc.collect()
    gc.freeze()


_pause_lock = threading.Lock()
_pause = {"holders": 0, "was_enabled": False}


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the garbage collector off while a request builds a large answer of plain, acyclic containers.

    The whole campaign's coverage matrix is about 100,000 dicts, lists and tuples that all survive until the answer
    is sent; each time enough of them survive the collector walks them all again (a third of the use case's time at
    5,000 units, bench/coverage.py), and none of them can form a cycle for it to find. The collector is process-wide,
    so overlapping holders share one pause and the last to leave turns it back on (only if it was on before)."""
    with _pause_lock:
        if _pause["holders"] == 0:
            _pause["was_enabled"] = gc.isenabled()
            gc.disable()
        _pause["holders"] += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pause["holders"] -= 1
            if _pause["holders"] == 0 and _pause["was_enabled"]:
                gc.enable()
