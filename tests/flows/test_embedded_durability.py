"""The embedded mode is as durable as the distributed one: an event handed to the in-process bus is marked published
only once its consumers committed, so a process that dies with events in flight delivers them after a restart."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from deploy.embedded import build_platform
from shared.settings import Settings
from tests.flows.steps import admin_token, create_unit
from tests.helpers import wait_until


def _inbox_has(platform, service: str, event_id: str) -> bool:
    ctx = platform.contexts[service]
    inbox = ctx.messaging.inbox
    with ctx.db.session() as uow:
        return uow.execute(select(inbox.c.event_id).where(inbox.c.event_id == event_id)).first() is not None


def _outbox(platform, service: str) -> list:
    ctx = platform.contexts[service]
    outbox = ctx.messaging.outbox
    with ctx.db.session() as uow:
        return list(
            uow.execute(select(outbox.c.event_id, outbox.c.type, outbox.c.published_at).order_by(outbox.c.id))
        )


def test_events_in_flight_when_the_process_dies_are_delivered_after_the_restart(tmp_path):
    settings = Settings(data_dir=tmp_path, bus_retry_delays_ms=(50, 100), outbox_poll_s=0.1)
    dying = build_platform(settings)
    for worker in dying.workers:
        worker.subscribe()
    for worker in dying.workers:  # the relays run; the bus never delivers: every event is in flight in memory
        worker.start()
    client = TestClient(dying.app)  # no lifespan: the platform is driven by hand
    client.headers["Authorization"] = f"Bearer {admin_token(dying.contexts['intake'])}"
    unit = create_unit(client)
    wait_until(
        lambda: dying.bus.health()["queues"]["notification"]["ready"] >= 1,
        what="the relay to hand the event over",
    )
    [(event_id, event_type, published_at)] = [
        row for row in _outbox(dying, "intake") if row[1] == "liaison.designated"
    ]
    assert published_at is None  # handed over, not yet handled: not marked
    for worker in dying.workers:  # the process dies (its threads stop; nothing is flushed, nothing delivered)
        worker.relay._loop.stop()

    restarted = build_platform(settings)
    with TestClient(restarted.app):
        wait_until(
            lambda: _inbox_has(restarted, "notification", event_id), what="notification to consume the event"
        )
        wait_until(
            lambda: all(row[2] is not None for row in _outbox(restarted, "intake")),
            what="every intake event to be marked published once handled",
        )
        for service in (
            "evidence_storage",
            "review",
            "notification",
        ):  # every consumer got every event it subscribes to
            for each_id, each_type, _ in _outbox(restarted, "intake"):
                if each_type in _subscribed(restarted, service):
                    assert _inbox_has(restarted, service, each_id), (service, each_type)
        assert event_type == "liaison.designated" and unit["id"]


def _subscribed(platform, service: str) -> list[str]:
    worker = next(w for w in platform.workers if w.ctx.name == service)
    return worker.consumer.event_types
