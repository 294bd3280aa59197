"""A notification service of its own per test: SQLite under tmp_path, the in-process bus, a real SMTP server.

Producers of most events do not exist yet: tests publish the events on the bus themselves, built from
the contracts in shared/contracts (the contract is the interface).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import select

from services.notification.api import create_app
from services.notification.bootstrap import bootstrap
from services.notification.delivery import DeliveryLoop
from services.notification.models import Delivery, DigestItem, KnownUnit
from services.notification.subscriptions import SUBSCRIPTIONS, jobs
from shared.auth import ADMIN, TokenIssuer, issuer_from_settings
from shared.bus.memory import InMemoryBus
from shared.clock import Clock, FixedClock
from shared.contracts import make_event
from shared.contracts.intake import LiaisonDesignated, UnitRegistered
from shared.events import Envelope
from shared.runtime import ServiceContext, ServiceWorker
from shared.settings import Settings
from tests.helpers import wait_until

PUBLIC = "https://campaign.example.org"


@dataclass
class World:
    """One running notification service and what a test needs to drive and observe it."""

    ctx: ServiceContext
    bus: InMemoryBus
    worker: ServiceWorker
    client: TestClient
    observed: list[Envelope] = field(default_factory=list)

    def publish(self, payload: BaseModel | Envelope, *, producer: str = "test") -> Envelope:
        """Publish a contract payload (or a ready envelope) on the bus, as its producer would."""
        event = payload if isinstance(payload, Envelope) else make_event(payload, producer=producer)
        self.bus.publish(event)
        return event

    def consumed(self, event: Envelope) -> bool:
        """Whether the notification consumer has processed the event."""
        inbox = self.ctx.messaging.inbox
        with self.ctx.db.session() as uow:
            return (
                uow.execute(select(inbox.c.event_id).where(inbox.c.event_id == event.event_id)).first()
                is not None
            )

    def publish_and_wait(self, payload: BaseModel | Envelope) -> Envelope:
        """Publish and wait until the consumer committed its effects."""
        event = self.publish(payload)
        wait_until(lambda: self.consumed(event), timeout=30, what=f"{event.type} to be consumed")
        return event

    def deliveries(self, **where) -> list[Delivery]:
        """Delivery rows matching column=value filters, oldest first."""
        query = select(Delivery).order_by(Delivery.created_at, Delivery.id)
        for name, value in where.items():
            query = query.where(getattr(Delivery, name) == value)
        with self.ctx.db.session() as uow:
            return list(uow.scalars(query))

    def digest_items(self, **where) -> list[DigestItem]:
        """Digest items matching column=value filters, oldest first."""
        query = select(DigestItem).order_by(DigestItem.created_at, DigestItem.id)
        for name, value in where.items():
            query = query.where(getattr(DigestItem, name) == value)
        with self.ctx.db.session() as uow:
            return list(uow.scalars(query))

    def add_unit(
        self,
        name: str = "相山区信访局",
        *,
        liaison: str | None = "李明",
        email: str | None = None,
        parent_path: str = "/",
    ) -> str:
        """Register a unit (and designate its liaison unless liaison=None); returns its id once consumed."""
        unit_id = str(uuid.uuid4())
        code, path = f"U{unit_id[:8]}", f"{parent_path}{unit_id}/"
        self.publish_and_wait(
            UnitRegistered(unit_id=unit_id, code=code, name=name, level="county", unit_path=path)
        )
        if liaison is not None:
            self.publish_and_wait(
                LiaisonDesignated(
                    unit_id=unit_id,
                    unit_code=code,
                    unit_name=name,
                    liaison_name=liaison,
                    liaison_email=email or f"liaison-{code.lower()}@example.org",
                    unit_path=path,
                )
            )
        return unit_id

    def as_caller(self, role: str, unit_id: str | None = None) -> dict[str, str]:
        """Headers for a caller of that role; a unit caller is the unit's own liaison (its path as registered)."""
        path = None
        if unit_id:
            with self.ctx.db.session() as uow:
                path = uow.get(KnownUnit, unit_id).unit_path
        return bearer(issuer_from_settings(self.ctx.settings), role, unit_id=unit_id, unit_path=path)


@pytest.fixture
def make_world(tmp_path, smtp):
    """Build a notification world: `make_world(clock=..., run_jobs=..., **settings)`; all are stopped afterwards."""
    built: list[World] = []

    def make(*, clock: Clock | None = None, run_jobs: bool = True, **overrides) -> World:
        """A started world with these settings on top of the test defaults."""
        settings = Settings(
            **{
                "data_dir": tmp_path / f"world{len(built)}",
                "mail_backend": "smtp",
                "smtp_host": smtp.host,
                "smtp_port": smtp.port,
                "smtp_timeout_s": 5.0,
                "bus_retry_delays_ms": (50, 100),
                "outbox_poll_s": 0.1,
                "notify_poll_s": 0.05,
                "notify_backoff_base_s": 0.05,
                "notify_backoff_max_s": 0.3,
                "public_base_url": PUBLIC,
                **overrides,
            }
        )
        ctx = bootstrap(settings, clock=clock)
        bus = InMemoryBus(retry_delays_ms=settings.bus_retry_delays_ms)
        worker = ServiceWorker(ctx, bus, SUBSCRIPTIONS, jobs(ctx) if run_jobs else ())
        client = TestClient(create_app(ctx), headers=bearer(issuer_from_settings(settings), ADMIN))
        world = World(ctx=ctx, bus=bus, worker=worker, client=client)
        bus.subscribe("observer", ["notification.*"], world.observed.append)
        worker.start()
        bus.start()
        built.append(world)
        return world

    yield make
    for world in built:
        world.bus.stop()
        world.worker.stop()
        world.client.close()
        world.ctx.db.dispose()


@pytest.fixture
def world(make_world) -> World:
    """A notification world on the real clock with its delivery loop running."""
    return make_world()


@pytest.fixture
def clock() -> FixedClock:
    """A clock that moves only when the test says so: 2020-03-12 08:00 Beijing time."""
    return FixedClock(datetime(2020, 3, 12, 0, 0, tzinfo=UTC))


def bearer(
    issuer: TokenIssuer, role: str, *, unit_id: str | None = None, unit_path: str | None = None
) -> dict[str, str]:
    """An Authorization header for an invented caller with that role (a unit token names its unit and path)."""
    token = issuer.issue(
        subject=f"{role}-{unit_id or 'staff'}",
        name="王芳",
        role=role,
        ttl_s=600,
        unit_id=unit_id,
        unit_path=unit_path,
    )
    return {"Authorization": f"Bearer {token}"}


def run_loop(world: World) -> int:
    """One round of the delivery loop, driven by the test (for worlds made with run_jobs=False)."""
    return DeliveryLoop.from_settings(world.ctx).run()
