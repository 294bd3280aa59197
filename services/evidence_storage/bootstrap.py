"""The one place that builds the evidence_storage service's adapters from settings."""

from __future__ import annotations

from services.evidence_storage.models import MESSAGING
from shared.adapters import make_blob_store
from shared.blobs.port import BlobStore
from shared.clock import Clock, SystemClock
from shared.migrations import open_database
from shared.runtime import ServiceContext
from shared.settings import Settings

SERVICE = "evidence_storage"


def bootstrap(
    settings: Settings, *, clock: Clock | None = None, blobs: BlobStore | None = None
) -> ServiceContext:
    """Open the evidence database and blob store and assemble the context."""
    db = open_database(settings, SERVICE)
    return ServiceContext(
        name=SERVICE,
        settings=settings,
        db=db,
        clock=clock or SystemClock(),
        messaging=MESSAGING,
        blobs=blobs or make_blob_store(settings),
    )
