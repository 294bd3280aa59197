"""The deadline watcher on real RabbitMQ and PostgreSQL: two concurrent worker replicas, then restarts.

Each replica is a full intake worker (ServiceWorker with its own database engine and its own
RabbitMQBus connections) running the real deadline job. A probe queue bound to `deadline.*` on the
run's exchange collects what reaches the broker; once the outbox has nothing left to publish (every
row confirmed by the broker), draining the probe gives the exact count, with no timing involved.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pika
import pytest
from sqlalchemy import func, select

from services.intake import campaigns, deadlines
from services.intake.bootstrap import bootstrap
from services.intake.models import DeadlineAlert
from services.intake.subscriptions import SUBSCRIPTIONS, jobs
from shared.adapters import make_bus
from shared.bus.rabbitmq import queue_names
from shared.clock import FixedClock
from shared.events import Envelope
from shared.messaging import Outbox
from shared.runtime import PeriodicJob, ServiceWorker
from shared.settings import Settings
from tests.helpers import wait_until
from tests.intake.support import as_yaml, small_definition
from tests.services import delete_rabbitmq_objects

UNITS = 120
RETRY_DELAYS = (200,)
# 10 March 2020, 12:00 in Beijing: 2.5 days before the liaison deadline (12 March, end of day).
APPROACHING = datetime(2020, 3, 10, 4, tzinfo=UTC)
MISSED = datetime(2020, 3, 13, 4, tzinfo=UTC)


def many_units_definition() -> str:
    """A city and UNITS districts, none of which has named a liaison yet."""
    data = small_definition(code="watch-2020")
    data["units"] = [{"code": "C", "name": "示例市信访局", "level": "city", "participates": False}] + [
        {"code": f"D{n:03d}", "name": f"第{n}区信访局", "level": "county", "parent": "C"}
        for n in range(UNITS)
    ]
    return as_yaml(data)


class Probe:
    """A test queue bound to deadline.* on the run's exchange; drained with basic_get."""

    def __init__(self, url: str, exchange: str, queue: str) -> None:
        self.url, self.exchange, self.queue = url, exchange, queue
        with self._channel() as channel:
            channel.exchange_declare(exchange, exchange_type="topic", durable=True)
            channel.queue_declare(queue, durable=True)
            channel.queue_bind(queue, exchange, routing_key="deadline.*")

    def drain(self) -> list[Envelope]:
        """Every message waiting in the queue, removed."""
        events = []
        with self._channel() as channel:
            while True:
                method, _properties, body = channel.basic_get(self.queue, auto_ack=True)
                if method is None:
                    return events
                events.append(Envelope.from_json(body))

    @contextmanager
    def _channel(self) -> Iterator:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            yield connection.channel()
        finally:
            connection.close()


class Replica:
    """One intake worker process's worth of parts: context, bus, worker with the real deadline job."""

    def __init__(self, settings: Settings, clock: FixedClock) -> None:
        self.ctx = bootstrap(settings, clock=clock)
        self.bus = make_bus(settings)
        self.runs = 0
        [job] = jobs(self.ctx)
        self.worker = ServiceWorker(
            self.ctx, self.bus, SUBSCRIPTIONS, [PeriodicJob(job.name, job.interval_s, self._counted(job.run))]
        )

    def _counted(self, run):
        def wrapped():
            run()
            self.runs += 1

        return wrapped

    def start(self) -> None:
        self.worker.start()
        self.bus.start()

    def stop(self) -> None:
        self.bus.stop()
        self.worker.stop()
        self.ctx.db.dispose()


@pytest.fixture
def world(tmp_path, postgres_url, rabbitmq_url, run_name):
    """Settings for replicas on a fresh database and a unique exchange, the probe, and cleanup."""
    exchange = f"{run_name}.events"
    settings = Settings(
        data_dir=tmp_path,
        database_url=postgres_url,
        bus_backend="rabbitmq",
        rabbitmq_url=rabbitmq_url,
        bus_exchange=exchange,
        bus_queue_prefix=f"{run_name}.",
        bus_retry_delays_ms=RETRY_DELAYS,
        outbox_poll_s=0.05,
        deadline_watch_interval_s=3600,
    )
    probe = Probe(rabbitmq_url, exchange, f"{run_name}.probe")
    try:
        yield settings, probe
    finally:
        queue = f"{run_name}.intake"
        delete_rabbitmq_objects(
            rabbitmq_url,
            queues=[probe.queue, *queue_names(queue, RETRY_DELAYS)],
            exchanges=[exchange],
        )


def run_replicas(settings: Settings, clock: FixedClock, count: int = 2) -> None:
    """Start `count` replicas at the same moment, wait until each ran the job once and the outbox is empty, stop them."""
    replicas = [Replica(settings, clock) for _ in range(count)]
    barrier = threading.Barrier(count)

    def start(replica: Replica) -> None:
        barrier.wait()
        replica.start()

    threads = [threading.Thread(target=start, args=(r,)) for r in replicas]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        wait_until(
            lambda: all(r.runs >= 1 for r in replicas), timeout=60, what="every replica's deadline job to run"
        )
        wait_until(lambda: pending(replicas[0].ctx) == 0, timeout=60, what="the outbox to be published")
    finally:
        for replica in replicas:
            replica.stop()


def pending(ctx) -> int:
    with ctx.db.session() as uow:
        return Outbox(ctx.messaging.outbox).pending(uow)


def fired_rows(settings: Settings) -> Counter:
    ctx = bootstrap(settings)
    try:
        with ctx.db.session() as uow:
            return Counter(
                dict(uow.execute(select(DeadlineAlert.lead, func.count()).group_by(DeadlineAlert.lead)).all())
            )
    finally:
        ctx.db.dispose()


def test_two_workers_emit_each_alert_exactly_once_and_a_restart_emits_nothing_again(world):
    settings, probe = world
    clock = FixedClock(APPROACHING)
    loader = bootstrap(settings, clock=clock)
    try:
        assert campaigns.load_definition(many_units_definition(), ctx=loader).units_created == UNITS + 1
    finally:
        loader.db.dispose()

    run_replicas(settings, clock)
    received = probe.drain()
    keys = Counter(
        (e.type, e.payload["unit_id"], e.payload["deadline_code"], e.payload["lead"]) for e in received
    )
    assert len(received) == UNITS and set(keys.values()) == {1}
    assert {(t, d, lead) for t, _, d, lead in keys} == {("deadline.approaching", "liaison", "P3D")}
    assert fired_rows(settings) == Counter({"P3D": UNITS})

    run_replicas(settings, clock)  # a restart at the same moment: nothing new
    assert probe.drain() == []

    clock.advance(MISSED - APPROACHING)
    run_replicas(settings, clock)  # restarted after the deadline passed
    missed = probe.drain()
    assert Counter(e.type for e in missed) == Counter({"deadline.missed": UNITS})
    assert len({e.payload["unit_id"] for e in missed}) == UNITS
    assert all(e.payload["missing"] == ["联络员"] for e in missed)

    run_replicas(settings, clock)
    assert probe.drain() == []
    assert fired_rows(settings) == Counter({"P3D": UNITS, "missed": UNITS})


def test_racing_watchers_on_postgres_insert_each_alert_once(tmp_path, postgres_url):
    settings = Settings(data_dir=tmp_path, database_url=postgres_url)
    clock = FixedClock(APPROACHING)
    contexts = [bootstrap(settings, clock=clock) for _ in range(4)]
    try:
        campaigns.load_definition(many_units_definition(), ctx=contexts[0])
        barrier = threading.Barrier(len(contexts))
        results: list[int] = []

        def race(ctx) -> None:
            barrier.wait()
            results.append(deadlines.watch_deadlines(ctx=ctx))

        threads = [threading.Thread(target=race, args=(c,)) for c in contexts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(results) == len(contexts) and sum(results) == UNITS
        with contexts[0].db.session() as uow:
            table = contexts[0].messaging.outbox
            types = Counter(uow.execute(select(table.c.type)).scalars())
        assert types["deadline.approaching"] == UNITS
    finally:
        for ctx in contexts:
            ctx.db.dispose()
