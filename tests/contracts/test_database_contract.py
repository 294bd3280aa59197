"""Database port contract: outbox, relay and inbox behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.bus.memory import InMemoryBus
from shared.bus.port import Unprocessable
from shared.db import Database, after_commit, by_key
from shared.events import Envelope
from shared.messaging import IdempotentConsumer, Inbox, Outbox, OutboxRelay, messaging_tables
from tests.helpers import create_tables, wait_until


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """A fresh database URL of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/contract.db"
    else:
        yield request.getfixturevalue("postgres_url")


def _service_tables():
    metadata = MetaData()
    tables = messaging_tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36)),
    )
    return metadata, tables, effects


@pytest.fixture
def service(database_url):
    """One service's database with outbox, inbox and an effects table."""
    metadata, tables, effects = _service_tables()
    db = Database(database_url, schema="contract_a")
    create_tables(db, metadata)
    yield db, tables, effects
    db.dispose()


@pytest.fixture
def bus():
    """A started in-process bus with a collecting consumer."""
    bus = InMemoryBus(retry_delays_ms=(10,))
    received: list[Envelope] = []
    bus.subscribe("collector", ["#"], received.append)
    bus.start()
    bus.received = received
    yield bus
    bus.stop()


def _event(n: int = 0) -> Envelope:
    return Envelope(type="test.happened", producer="contract", payload={"n": n, "text": "宣传月"})


class _Base(DeclarativeBase):
    pass


class _Note(_Base):
    __tablename__ = "notes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


def test_by_key_finds_what_session_get_finds(database_url):
    db = Database(database_url, schema="contract_key")
    try:
        create_tables(db, _Base.metadata)
        with db.transaction() as uow:
            uow.add(_Note(id="n1", text="宣传月"))
        with db.session() as uow:
            found = by_key(uow, _Note, "n1")
            assert found is not None and found.text == "宣传月"
            assert uow.get(_Note, "n1") is found  # the session's one object for the row
            assert by_key(uow, _Note, "absent") is None
        with db.transaction() as uow:
            locked = by_key(
                uow, _Note, "n1", lock=True
            )  # SELECT … FOR UPDATE (SQLite: the write lock is held)
            assert locked is not None and locked.text == "宣传月"
        with db.transaction() as uow:
            uow.add(_Note(id="n2", text="新"))
            pending = by_key(uow, _Note, "n2")  # flushed first, as Session.get would
            assert pending is not None and pending.text == "新"
            pending.text = "改"
            assert (
                by_key(uow, _Note, "n2") is pending and pending.text == "改"
            )  # loaded rows are not reloaded
    finally:
        db.dispose()


def test_services_own_their_tables(database_url):
    metadata_a, _, effects_a = _service_tables()
    metadata_b, _, effects_b = _service_tables()
    url_b = database_url.replace("contract.db", "contract_b.db")
    a, b = Database(database_url, schema="svc_a"), Database(url_b, schema="svc_b")
    try:
        create_tables(a, metadata_a)
        create_tables(b, metadata_b)
        with a.transaction() as uow:
            uow.execute(insert(effects_a).values(event_id="only-in-a"))
        with b.session() as uow:
            assert uow.scalar(select(func.count()).select_from(effects_b)) == 0
        assert a.health()["ok"] and b.health()["ok"]
    finally:
        a.dispose()
        b.dispose()


def test_outbox_rows_commit_or_roll_back_with_the_transaction(service, bus):
    db, tables, effects = service
    outbox = Outbox(tables.outbox)
    with pytest.raises(RuntimeError), db.transaction() as uow:  # noqa: PT012 - the raise is what is tested
        uow.execute(insert(effects).values(event_id="x"))
        outbox.add(uow, _event(1))
        raise RuntimeError("handler failed")
    with db.session() as uow:
        assert outbox.pending(uow) == 0
        assert uow.scalar(select(func.count()).select_from(effects)) == 0
    with db.transaction() as uow:
        outbox.add(uow, _event(2))
    relay = OutboxRelay(db=db, table=tables.outbox, bus=bus)
    assert relay.relay_once() == 1
    assert relay.relay_once() == 0
    wait_until(lambda: len(bus.received) == 1)
    assert bus.received[0].payload == {"n": 2, "text": "宣传月"}


def test_relay_keeps_order_and_retries_after_publish_failure(service, bus):
    db, tables, _ = service
    outbox = Outbox(tables.outbox)
    events = [_event(n) for n in range(5)]
    with db.transaction() as uow:
        for event in events:
            outbox.add(uow, event)

    class FlakyBus:
        def __init__(self):
            self.calls = 0

        def publish(self, event):
            self.calls += 1
            if self.calls == 3:
                raise ConnectionError("broker went away")
            bus.publish(event)

    relay = OutboxRelay(db=db, table=tables.outbox, bus=FlakyBus())
    assert relay.relay_once() == 2
    with db.session() as uow:
        row = uow.execute(
            select(tables.outbox).where(tables.outbox.c.published_at.is_(None)).order_by(tables.outbox.c.id)
        ).first()
        assert row.event_id == events[2].event_id and "broker went away" in row.last_error
    assert relay.relay_once() == 3
    wait_until(lambda: len(bus.received) == 5)
    assert [e.payload["n"] for e in bus.received] == [0, 1, 2, 3, 4]


def test_two_relays_publish_each_event_once(service, bus):
    db, tables, _ = service
    outbox = Outbox(tables.outbox)
    with db.transaction() as uow:
        for n in range(200):
            outbox.add(uow, _event(n))
    relays = [OutboxRelay(db=db, table=tables.outbox, bus=bus, batch=10) for _ in range(2)]
    threads = [threading.Thread(target=lambda r=r: [r.relay_once() for _ in range(30)]) for r in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until(lambda: len(bus.received) >= 200)
    assert sorted(e.payload["n"] for e in bus.received) == list(range(200))


def test_inbox_makes_a_consumer_idempotent(service):
    db, tables, effects = service
    calls = []

    def record(event, *, uow, ctx):
        calls.append(event.event_id)
        uow.execute(insert(effects).values(event_id=event.event_id))
        if event.payload.get("fail"):
            raise ValueError("boom")

    consumer = IdempotentConsumer(
        name="svc",
        db=db,
        inbox=Inbox(tables.inbox),
        subscriptions={"test.happened": [record]},
        dependencies={"ctx": None},
    )
    event = _event(1)
    consumer(event)
    consumer(event)
    labels = {"consumer": "svc", "type": "other.type"}
    exported_before = REGISTRY.get_sample_value("cep_events_unprocessable_total", labels) or 0.0
    with pytest.raises(Unprocessable):  # not subscribed: parked by the bus, counted, never silently dropped
        consumer(Envelope(type="other.type", producer="x"))
    assert consumer.unprocessable == {"other.type": 1}
    assert REGISTRY.get_sample_value("cep_events_unprocessable_total", labels) == exported_before + 1
    failing = Envelope(type="test.happened", producer="x", payload={"fail": True})
    with pytest.raises(ValueError):
        consumer(failing)
    with db.session() as uow:
        rows = [r.event_id for r in uow.execute(select(effects.c.event_id))]
        inbox_rows = uow.scalar(select(func.count()).select_from(tables.inbox))
    assert rows == [event.event_id]  # the failed handler's effect rolled back with its inbox row
    assert inbox_rows == 1
    assert calls.count(event.event_id) == 1


def test_the_relay_is_woken_only_after_a_commit_that_added_events(service):
    db, tables, effects = service
    wakes: list[list[int]] = []
    outbox = Outbox(
        tables.outbox, on_commit=lambda added: wakes.append([r.event.payload["n"] for r in added])
    )

    def record(event, *, uow, ctx):
        uow.execute(insert(effects).values(event_id=event.event_id))

    def announce(event, *, uow, ctx):
        outbox.add(uow, _event(99))
        if event.payload.get("fail"):
            raise ValueError("rolled back with its event")

    consumer = IdempotentConsumer(
        name="svc",
        db=db,
        inbox=Inbox(tables.inbox),
        subscriptions={"test.happened": [record], "test.announced": [announce]},
        dependencies={"ctx": None},
    )
    consumer(_event(1))  # an effect, but nothing to publish: no relay round trip
    assert wakes == []
    announced = Envelope(type="test.announced", producer="contract")
    consumer(announced)
    assert wakes == [[99]]
    consumer(announced)  # a duplicate adds nothing
    with pytest.raises(ValueError):
        consumer(Envelope(type="test.announced", producer="contract", payload={"fail": True}))
    assert wakes == [[99]]
    with db.session() as uow:
        assert uow.scalar(select(func.count()).select_from(tables.outbox)) == 1
    # A use case's own transaction, outside any consumer: told once, of both events, after the commit.
    with db.transaction() as uow:
        outbox.add(uow, _event(100))
        outbox.add(uow, _event(101))
        assert wakes == [[99]]  # not before the commit
    assert wakes == [[99], [100, 101]]


def test_a_commit_tells_the_rows_it_added_unless_a_savepoint_leaves_it_unsure(service):
    db, tables, _ = service
    told: list[list[tuple[int, str]]] = []
    outbox = Outbox(
        tables.outbox, on_commit=lambda added: told.append([(r.row_id, r.event.event_id) for r in added])
    )
    with db.transaction() as uow:
        outbox.add(uow, _event(1))
        outbox.add(uow, _event(2))
    with db.session() as uow:
        rows = uow.execute(
            select(tables.outbox.c.id, tables.outbox.c.event_id).order_by(tables.outbox.c.id)
        ).all()
    assert told == [[(row.id, row.event_id) for row in rows]]  # the very rows, in order
    kept = _event(4)
    with db.transaction() as uow:
        nested = uow.begin_nested()
        outbox.add(uow, _event(3))
        nested.rollback()  # its event is gone, the transaction goes on
        outbox.add(uow, kept)
    assert told[1] == []  # committed events, but which is not certain: a relay reads the table
    with db.session() as uow:
        assert uow.scalars(select(tables.outbox.c.event_id).order_by(tables.outbox.c.id)).all()[2:] == [
            kept.event_id
        ]


def test_the_in_process_relay_hands_committed_events_over_as_the_commit_returns(service):
    db, tables, _ = service
    # Not started yet: what it was handed waits in the queue, countable.
    bus = InMemoryBus(retry_delays_ms=(10,))
    received: list[Envelope] = []
    bus.subscribe("collector", ["#"], received.append)
    relay = OutboxRelay(db=db, table=tables.outbox, bus=bus, poll_s=60, in_process=True)
    outbox = Outbox(tables.outbox, on_commit=relay.committed)
    with db.transaction() as uow:  # before the start: consumers may not have declared their queues yet
        outbox.add(uow, _event(1))
    assert bus.queue_state("collector")["ready"] == 0
    relay.start()  # its first round reads the table
    try:
        wait_until(
            lambda: bus.queue_state("collector")["ready"] == 1, what="the event committed before the start"
        )
        with db.transaction() as uow:
            outbox.add(uow, _event(2))
            outbox.add(uow, _event(3))
        # Handed over by the committing thread itself, not by the loop (its next poll is a minute away).
        assert bus.queue_state("collector")["ready"] == 3
        bus.start()
        wait_until(lambda: len(received) == 3, what="the events delivered")
    finally:
        bus.stop()
        relay.stop()  # marks what was settled
    assert [e.payload["n"] for e in received] == [1, 2, 3]  # each once, in order
    with db.session() as uow:
        waiting = (
            select(func.count()).select_from(tables.outbox).where(tables.outbox.c.published_at.is_(None))
        )
        assert uow.scalar(waiting) == 0


def test_after_commit_hooks_run_once_after_a_commit_and_never_after_a_rollback(service):
    db, _, effects = service
    ran: list[str] = []

    def hook() -> None:
        ran.append("committed")

    with db.transaction() as uow:
        uow.execute(insert(effects).values(event_id="a"))
        after_commit(uow, hook)
        after_commit(uow, hook)  # registered twice, run once
        assert ran == []  # not before the commit
    assert ran == ["committed"]

    def rolled_back() -> None:
        with db.transaction() as uow:
            after_commit(uow, hook)
            raise ValueError("rolled back")

    with pytest.raises(ValueError):
        rolled_back()
    assert ran == ["committed"]

    def broken() -> None:
        raise RuntimeError("a hook that fails")

    with db.transaction() as uow:  # the commit stands and the caller sees no error
        uow.execute(insert(effects).values(event_id="b"))
        after_commit(uow, broken)
    with db.session() as uow:
        assert sorted(uow.scalars(select(effects.c.event_id))) == ["a", "b"]


def test_concurrent_duplicates_have_one_effect(service):
    db, tables, effects = service
    barrier = threading.Barrier(2)

    def record(event, *, uow, ctx):
        uow.execute(insert(effects).values(event_id=event.event_id))

    consumers = [
        IdempotentConsumer(
            name="svc",
            db=db,
            inbox=Inbox(tables.inbox),
            subscriptions={"test.happened": [record]},
            dependencies={"ctx": None},
        )
        for _ in range(2)
    ]
    events = [_event(n) for n in range(20)]
    errors = []

    def run(consumer):
        barrier.wait()
        for event in events:
            try:
                consumer(event)
            except Exception as exc:  # a failure here would be a retry on a real bus
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in consumers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.session() as uow:
        rows = sorted(r.event_id for r in uow.execute(select(effects.c.event_id)))
    assert rows == sorted(e.event_id for e in events)


def test_an_event_another_replica_is_handling_counts_as_a_duplicate_once_that_one_commits(service):
    db, tables, effects = service
    holding, release = threading.Event(), threading.Event()

    def slow(event, *, uow, ctx):  # the first replica: its inbox row written, not yet committed
        uow.execute(insert(effects).values(event_id=event.event_id))
        holding.set()
        assert release.wait(10)

    def record(event, *, uow, ctx):
        uow.execute(insert(effects).values(event_id=event.event_id))

    def consumer(handler):
        return IdempotentConsumer(
            name="svc",
            db=db,
            inbox=Inbox(tables.inbox),
            subscriptions={"test.happened": [handler]},
            dependencies={"ctx": None},
        )

    event, errors = _event(7), []

    def run(handler):
        try:
            consumer(handler)(event)
        except Exception as exc:  # a failure here would be a retry on a real bus
            errors.append(exc)

    first = threading.Thread(target=run, args=(slow,))
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=run, args=(record,))  # waits on the first one's row (or write lock)
    second.start()
    second.join(0.5)
    release.set()
    first.join(10)
    second.join(10)
    assert errors == []
    with db.session() as uow:
        assert list(uow.scalars(select(effects.c.event_id))) == [event.event_id]
        assert uow.scalar(select(func.count()).select_from(tables.inbox)) == 1


def test_published_outbox_rows_and_old_inbox_records_are_pruned(service):
    from datetime import datetime, timedelta

    from sqlalchemy import update

    from shared.messaging import prune_messaging

    db, tables, _effects = service
    old, recent, unpublished = _event(1), _event(2), _event(3)
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with db.transaction() as uow:
        for event in (old, recent, unpublished):
            Outbox(tables.outbox).add(uow, event)
            Inbox(tables.inbox).first_time(uow, "review", event)
        uow.execute(
            update(tables.outbox)
            .where(tables.outbox.c.event_id.in_([old.event_id, unpublished.event_id]))
            .values(created_at=long_ago)
        )
        uow.execute(
            update(tables.outbox)
            .where(tables.outbox.c.event_id == old.event_id)
            .values(published_at=long_ago)
        )
        uow.execute(
            update(tables.outbox)
            .where(tables.outbox.c.event_id == recent.event_id)
            .values(published_at=datetime.now(UTC))
        )
        uow.execute(
            update(tables.inbox).where(tables.inbox.c.event_id == old.event_id).values(processed_at=long_ago)
        )

    assert prune_messaging(db, tables, older_than=timedelta(days=30)) == 2
    with db.session() as uow:
        assert sorted(uow.scalars(select(tables.outbox.c.event_id))) == sorted(
            [recent.event_id, unpublished.event_id]
        )
        assert sorted(uow.scalars(select(tables.inbox.c.event_id))) == sorted(
            [recent.event_id, unpublished.event_id]
        )
    assert (
        prune_messaging(db, tables, older_than=timedelta(days=30)) == 0
    )  # an unpublished row is never pruned


def test_a_consumer_ignores_only_the_types_it_says_it_ignores_and_parks_malformed_payloads(service):
    db, tables, _ = service
    from pydantic import BaseModel

    class Happened(BaseModel):
        n: int

    def strict(event, *, uow, ctx):
        Happened.model_validate(event.payload)

    consumer = IdempotentConsumer(
        name="svc",
        db=db,
        inbox=Inbox(tables.inbox),
        subscriptions={"test.happened": [strict]},
        dependencies={"ctx": None},
        ignored_types=["test.ignored"],
    )
    consumer(Envelope(type="test.ignored", producer="x"))
    with pytest.raises(Unprocessable):
        consumer(Envelope(type="test.happened", producer="x", payload={"n": "not a number"}))
    consumer(Envelope(type="test.happened", producer="x", payload={"n": 1}))
    assert consumer.unprocessable == {"test.happened": 1}
