"""The one place that builds the intake service's adapters from settings."""
from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from services.intake import identity  # noqa: F401  (declares users, api_keys and audit_log on Base.metadata)
from services.intake import projection
from services.intake.models import MESSAGING, Base
from shared.adapters import make_blob_store
from shared.blobs.port import BlobStore
from shared.clock import Clock, SystemClock
from shared.db import Database
from shared.runtime import ServiceContext
from shared.settings import Settings

SERVICE = "intake"
log = logging.getLogger(__name__)


def bootstrap(settings: Settings, *, clock: Clock | None = None, blobs: BlobStore | None = None) -> ServiceContext:
    """Open the intake database (creating its tables) and the blob store for reference materials."""
    db = Database(settings.database_url_for(SERVICE), schema=SERVICE)
    db.create_all(Base.metadata)
    _fill_projection(db)
    return ServiceContext(name=SERVICE, settings=settings, db=db, clock=clock or SystemClock(), messaging=MESSAGING,
                          blobs=blobs or make_blob_store(settings))


def _fill_projection(db: Database) -> None:
    # Tables from before the coverage projection existed: build it once from the submissions.
    try:
        with db.transaction() as uow:
            projection.rebuild_if_missing(uow)
    except IntegrityError:  # the API and the worker started together and the other one filled it
        log.info("coverage projection was filled by another process")
