"""The one place that builds the notification service's adapters from settings."""

from __future__ import annotations

from services.notification.delivery import deliveries_probe
from services.notification.models import MESSAGING
from shared.adapters import make_channels, make_mailer
from shared.channels.robots import Channels
from shared.clock import Clock, SystemClock
from shared.mail.port import Mailer
from shared.metrics import register_service
from shared.migrations import open_database
from shared.runtime import ServiceContext
from shared.settings import Settings

SERVICE = "notification"


def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    mailer: Mailer | None = None,
    channels: Channels | None = None,
) -> ServiceContext:
    """Open the notification database, mailer and group-robot channels (CHANNEL_ROBOTS) and assemble the context."""
    db = open_database(settings, SERVICE)
    ctx = ServiceContext(
        name=SERVICE,
        settings=settings,
        db=db,
        clock=clock or SystemClock(),
        messaging=MESSAGING,
        mailer=mailer or make_mailer(settings),
        channels=channels or make_channels(settings),
    )
    register_service(ctx, deliveries_probe)  # deliveries by status and the oldest queued, on /metrics
    return ctx
