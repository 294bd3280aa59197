"""Store-level retention for locked evidence: each newly locked object is put under the store's retention (Object
Lock) where the store supports it, and the outcome recorded on its evidence row."""

from __future__ import annotations

import logging
from datetime import UTC, timedelta

from sqlalchemy import select

from services.evidence_storage.models import Evidence
from shared.blobs.port import BlobNotFound, BlobStoreUnavailable
from shared.runtime import ServiceContext

log = logging.getLogger(__name__)
APPLY_RETENTION = "evidence-retention"  # the worker's job (jobs.py), woken by a commit that locked evidence


def apply_retention(ctx: ServiceContext) -> int:
    """Put newly locked evidence under store retention where the store supports it; returns how many were settled."""
    with ctx.db.session() as uow:
        pending = list(uow.scalars(select(Evidence).where(Evidence.retention == "pending").limit(500)))
    settled = 0
    for evidence in pending:
        locked_at = evidence.locked_at or ctx.clock.now()
        if locked_at.tzinfo is None:
            locked_at = locked_at.replace(tzinfo=UTC)
        until = locked_at + timedelta(days=ctx.settings.evidence_retention_days)
        try:
            applied = ctx.blob_store.retain(
                evidence.object_key, until, mode=ctx.settings.evidence_retention_mode
            )
        except BlobStoreUnavailable as exc:
            log.warning("retention postponed, store unavailable: %s", exc)
            break
        except BlobNotFound:
            log.error("locked evidence %s has no stored object %s", evidence.id, evidence.object_key)
            applied = None
        with ctx.db.transaction() as uow:
            row = uow.get(Evidence, evidence.id)
            if row is not None:
                row.retention = {True: "applied", False: "unsupported", None: "missing"}[applied]
                row.retained_until = until if applied else None
        settled += 1
    return settled
