"""An API's committed events wake the worker's relay over PostgreSQL NOTIFY instead of waiting for its poll."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from services.intake.bootstrap import bootstrap
from shared.bus.memory import InMemoryBus
from shared.contracts import make_event
from shared.contracts.intake import UnitRegistered
from shared.outbox_wake import OutboxListener, wake_relays_on_commit
from shared.runtime import ServiceWorker
from shared.settings import Settings
from tests.helpers import wait_until

POLL_S = 120.0  # far longer than any wait below: only a NOTIFY can publish in time


def _settings(tmp_path, postgres_url, **overrides) -> Settings:
    return Settings(data_dir=tmp_path, database_url=postgres_url, outbox_poll_s=POLL_S, **overrides)


def _unit_registered():
    code = uuid.uuid4().hex[:6]
    return make_event(
        UnitRegistered(unit_id=str(uuid.uuid4()), code=code, name="相山区信访局", level="county"),
        producer="intake",
    )


@pytest.fixture
def api_and_worker(tmp_path, postgres_url):
    """Intake's API context and its worker (relay polling every two minutes) on one PostgreSQL database."""
    api = bootstrap(_settings(tmp_path / "api", postgres_url))
    worker_ctx = bootstrap(_settings(tmp_path / "worker", postgres_url))
    bus = InMemoryBus(retry_delays_ms=(50,))
    published: list[str] = []
    bus.subscribe("probe", ["unit.registered"], lambda event: published.append(event.event_id))
    worker = ServiceWorker(worker_ctx, bus, {})
    wakes, started, ended = _watch_the_relay(worker)
    worker.start()
    bus.start()
    try:
        assert worker.listener is not None
        wait_until(worker.listener.listening.is_set, timeout=15, what="the relay's listener to LISTEN")
        # Once listening, the listener wakes the relay for what was committed while nobody listened. Only after
        # a step that began after that wake has ended is the relay idle until its two-minute poll or a NOTIFY.
        wait_until(
            lambda: bool(wakes) and any(begun > wakes[-1] for begun in started[: len(ended)]),
            timeout=15,
            what="the relay to finish the step the listener woke it for",
        )
        yield api, published
    finally:
        bus.stop()
        worker.stop()
        api.db.dispose()
        worker_ctx.db.dispose()


def _watch_the_relay(worker: ServiceWorker) -> tuple[list[float], list[float], list[float]]:
    """Record when the listener wakes the worker's relay and when each relay step begins and ends."""
    wakes: list[float] = []
    started: list[float] = []  # one thread runs the steps, so the n-th end belongs to the n-th start
    ended: list[float] = []
    relay, listener = worker.relay, worker.listener
    assert listener is not None
    relay_once = relay.relay_once

    def wake() -> None:
        wakes.append(time.monotonic())
        relay.wake()

    def step() -> int:
        started.append(time.monotonic())
        try:
            return relay_once()
        finally:
            ended.append(time.monotonic())

    relay.relay_once = step  # type: ignore[method-assign]  # the relay's loop looks it up on every step
    worker.listener = OutboxListener(worker.ctx.db.url, worker.ctx.db.schema, wake, service=worker.ctx.name)
    return wakes, started, ended


def _commit(ctx, event) -> None:
    with ctx.db.transaction() as uow:  # the outbox wakes the relays (here: NOTIFY) once this commits
        ctx.outbox.add(uow, event)


def test_an_event_the_api_commits_is_published_at_once_not_at_the_next_poll(api_and_worker):
    api, published = api_and_worker
    assert wake_relays_on_commit(api)
    events = [_unit_registered() for _ in range(3)]
    for event in events:
        _commit(api, event)
    wait_until(lambda: len(published) == 3, timeout=15, what="the relay to publish on NOTIFY")
    assert published == [e.event_id for e in events]


def test_without_notify_the_event_waits_for_the_poll(api_and_worker):
    api, published = api_and_worker  # no wake_relays_on_commit: what OUTBOX_NOTIFY=false gives
    _commit(api, _unit_registered())
    time.sleep(2.0)
    assert published == []  # the control: the test above is not passing on the poll


class _Listening:
    """A LISTEN on intake's channel of the test's database, to count the notifications PostgreSQL sends."""

    def __init__(self, postgres_url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(postgres_url).set(drivername="postgresql")
        self._conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        self._conn.execute("LISTEN cep_outbox_intake")

    def received(self, wait_s: float) -> int:
        """How many notifications arrive within wait_s seconds."""
        return sum(1 for _ in self._conn.notifies(timeout=wait_s))

    def close(self) -> None:
        """Stop listening."""
        self._conn.close()


@pytest.fixture
def intake_api(tmp_path, postgres_url):
    """Intake's API context with its NOTIFY on, and a LISTEN on its channel."""
    api = bootstrap(_settings(tmp_path / "api", postgres_url))
    assert wake_relays_on_commit(api)
    listening = _Listening(postgres_url)
    try:
        yield api, listening
    finally:
        listening.close()
        api.db.dispose()


def _add_then_fail(ctx) -> None:
    with ctx.db.transaction() as uow:
        ctx.outbox.add(uow, _unit_registered())
        raise RuntimeError("the use case fails after adding its event")


def test_a_transaction_of_several_events_notifies_once_and_only_when_it_commits(intake_api):
    api, listening = intake_api
    with pytest.raises(RuntimeError, match="fails after adding"):
        _add_then_fail(api)
    assert listening.received(wait_s=1.0) == 0
    with api.db.transaction() as uow:
        for _ in range(3):
            api.outbox.add(uow, _unit_registered())
    assert listening.received(wait_s=1.0) == 1


def test_an_event_added_after_a_rolled_back_savepoint_still_notifies(intake_api):
    api, listening = intake_api
    with api.db.transaction() as uow:
        savepoint = uow.begin_nested()
        api.outbox.add(uow, _unit_registered())
        savepoint.rollback()  # takes the NOTIFY queued inside it along
        api.outbox.add(uow, _unit_registered())
    assert listening.received(wait_s=1.0) == 1


def test_the_listener_listens_again_after_losing_its_connection(postgres_url):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    woken = threading.Event()
    listener = OutboxListener(make_url(postgres_url), "intake", woken.set, service="intake", retry_s=0.2)
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    listener.start()
    try:
        wait_until(listener.listening.is_set, timeout=15, what="the listener to LISTEN")
        woken.clear()
        with engine.connect() as conn:  # what an operator's restart of PostgreSQL does to the session
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
                )
            )
        wait_until(lambda: woken.is_set() and listener.listening.is_set(), timeout=15, what="listening again")
        woken.clear()
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_notify('cep_outbox_intake', '')"))
        assert woken.wait(10), "a NOTIFY after the reconnect woke nothing"
    finally:
        listener.stop()
        engine.dispose()
