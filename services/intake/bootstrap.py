"""The one place that builds the intake service's adapters from settings."""

from __future__ import annotations

from services.intake import identity  # noqa: F401  (declares users, api_keys and audit_log on Base.metadata)
from services.intake.models import MESSAGING
from shared.adapters import make_blob_store
from shared.blobs.port import BlobStore
from shared.clock import Clock, SystemClock
from shared.migrations import open_database
from shared.runtime import ServiceContext
from shared.settings import Settings

SERVICE = "intake"


def bootstrap(
    settings: Settings, *, clock: Clock | None = None, blobs: BlobStore | None = None
) -> ServiceContext:
    """Open the intake database (migrated, or checked to be current) and the blob store for reference materials."""
    db = open_database(settings, SERVICE)
    return ServiceContext(
        name=SERVICE,
        settings=settings,
        db=db,
        clock=clock or SystemClock(),
        messaging=MESSAGING,
        blobs=blobs or make_blob_store(settings),
    )
