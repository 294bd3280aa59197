"""The evidence worker's periodic jobs: store-level retention for locked evidence, expiry of upload sessions, the
orphan sweep, web-playable copies of videos, reading the text in photos (OCR)."""

from __future__ import annotations

import logging
from datetime import UTC, timedelta

from sqlalchemy import select

from services.evidence_storage.integrity import run_queued
from services.evidence_storage.models import Evidence
from services.evidence_storage.ocr import read_pending
from services.evidence_storage.renditions import make_renditions
from services.evidence_storage.sweeper import sweep
from services.evidence_storage.uploads import expire_sessions
from shared.blobs.port import BlobNotFound, BlobStoreUnavailable
from shared.runtime import PeriodicJob, ServiceContext

log = logging.getLogger(__name__)


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


def jobs(ctx: ServiceContext) -> list[PeriodicJob]:
    """The jobs a worker of this service runs: retention also right after an approval locked evidence."""
    return [
        PeriodicJob(
            "evidence-retention", 30.0, lambda: apply_retention(ctx), wake_on_events=("submission.approved",)
        ),
        PeriodicJob("evidence-upload-sessions", 300.0, lambda: expire_sessions(ctx), wake_on_events=False),
        # the worker consumes no event for an upload: it looks for videos awaiting a web-playable copy every few seconds
        PeriodicJob(
            "evidence-renditions",
            ctx.settings.evidence_rendition_poll_s,
            lambda: make_renditions(ctx),
            wake_on_events=False,
        ),
        *(
            [
                PeriodicJob(
                    "evidence-orphan-sweep",
                    ctx.settings.evidence_sweep_interval_s,
                    lambda: sweep(ctx),
                    wake_on_events=False,
                )
            ]
            if ctx.settings.evidence_sweep_interval_s > 0
            else []
        ),
        # photos and video posters awaiting OCR (their rows are written with the evidence)
        PeriodicJob("evidence-ocr", ctx.settings.ocr_poll_s, lambda: read_pending(ctx), wake_on_events=False),
        PeriodicJob(
            "evidence-integrity-checks",
            ctx.settings.evidence_integrity_poll_s,
            lambda: run_queued(ctx),
            wake_on_events=False,
        ),
    ]
