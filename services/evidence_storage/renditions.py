"""Web-playable copies of videos browsers cannot play (HEVC, MOV, MPEG-4 part 2), made by the evidence worker.

Upload inspection marks such a video `pending`; the worker claims one (compare-and-set to `rendering`, so two
workers never make the same one), re-encodes it as H.264/AAC MP4 with ffmpeg, stores it under renditions/ with
its own SHA-256, and marks it `ready`. The original is never touched: it stays the proof, with its own hash.
A claim older than the render timeout (a worker died) is taken over.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta
from pathlib import Path

from sqlalchemy import and_, or_, select, update

from services.evidence_storage import video
from services.evidence_storage.inspection import ffmpeg_source
from services.evidence_storage.models import Evidence, EvidenceRendition
from shared.blobs.port import BlobNotFound, BlobStoreUnavailable
from shared.db import rows_affected
from shared.runtime import ServiceContext

MAX_ATTEMPTS = 3
log = logging.getLogger(__name__)


def rendition_key(evidence: Evidence) -> str:
    """Where the web-playable copy of a video lives."""
    return f"renditions/{evidence.unit_id}/{evidence.submission_id}/{evidence.id}.mp4"


def make_renditions(ctx: ServiceContext, *, limit: int = 4) -> int:
    """Render pending videos, one at a time, up to limit; returns how many were finished (ready or failed)."""
    ffmpeg = video.ffmpeg_exe()
    if ffmpeg is None:
        return 0
    done = 0
    for _ in range(limit):
        evidence = _claim(ctx)
        if evidence is None:
            break
        if not _render(ctx, ffmpeg, evidence):
            break  # the store is down: try again on the next round
        done += 1
    return done


def _claim(ctx: ServiceContext) -> Evidence | None:
    """Take the oldest pending (or abandoned) rendition; None when there is none."""
    now = ctx.clock.now()
    abandoned = now - timedelta(seconds=ctx.settings.evidence_rendition_timeout_s * 2)
    claimable = or_(
        EvidenceRendition.state == "pending",
        and_(EvidenceRendition.state == "rendering", EvidenceRendition.started_at < abandoned),
    )
    with ctx.db.session() as uow:
        candidates = list(uow.scalars(select(EvidenceRendition.evidence_id).where(claimable).limit(5)))
    for evidence_id in candidates:
        with ctx.db.transaction() as uow:
            taken = uow.execute(
                update(EvidenceRendition)
                .where(EvidenceRendition.evidence_id == evidence_id, claimable)
                .values(state="rendering", started_at=now, attempts=EvidenceRendition.attempts + 1)
            )
            if rows_affected(taken) != 1:
                continue  # another worker was faster
            evidence = uow.get(Evidence, evidence_id)
            if evidence is not None:
                uow.expunge(evidence)
                return evidence
    return None


def _render(ctx: ServiceContext, ffmpeg: str, evidence: Evidence) -> bool:
    """Make, store and record one rendition; False if the store was unavailable (the claim is given back)."""
    key = rendition_key(evidence)
    with tempfile.TemporaryDirectory(prefix="rendition-") as work:
        target = Path(work) / "web.mp4"
        try:
            source = ffmpeg_source(
                ctx.blob_store, evidence.object_key, Path(work), ctx.settings.evidence_rendition_timeout_s
            )
            video.render_web(ffmpeg, source, target, timeout_s=ctx.settings.evidence_rendition_timeout_s)
            with target.open("rb") as handle:
                stored = ctx.blob_store.put(key, handle, content_type="video/mp4")
        except BlobStoreUnavailable as exc:
            log.warning("rendition of %s postponed, store unavailable: %s", evidence.id, exc)
            _finish(ctx, evidence.id, state="pending")
            return False
        except (video.VideoUndecodable, BlobNotFound, OSError, TimeoutError) as exc:
            return _failed(ctx, evidence, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            return _failed(ctx, evidence, f"{type(exc).__name__}: {exc}")
    if not _finish(
        ctx, evidence.id, state="ready", object_key=key, size=stored.size, sha256=stored.sha256, note=None
    ):
        ctx.blob_store.delete(key)  # the evidence was deleted while its copy was being made
        return True
    log.info(
        "rendition of video %s (%s) ready: %s, %d bytes, sha256 %s",
        evidence.id,
        evidence.video_codec,
        key,
        stored.size,
        stored.sha256,
    )
    return True


def _failed(ctx: ServiceContext, evidence: Evidence, reason: str) -> bool:
    with ctx.db.session() as uow:
        row = uow.get(EvidenceRendition, evidence.id)
        attempts = row.attempts if row is not None else MAX_ATTEMPTS
    final = attempts >= MAX_ATTEMPTS
    log.error(
        "rendition of video %s failed (attempt %d of %d): %s", evidence.id, attempts, MAX_ATTEMPTS, reason
    )
    _finish(ctx, evidence.id, state="failed" if final else "pending", note=reason[:300])
    return True


def _finish(ctx: ServiceContext, evidence_id: str, *, state: str, **values) -> bool:
    """Record the outcome; False when the evidence (and so its rendition row) was deleted meanwhile."""
    with ctx.db.transaction() as uow:
        row = uow.get(EvidenceRendition, evidence_id)
        if row is None:
            return False
        row.state = state
        for name, value in values.items():
            setattr(row, name, value)
        if state in ("ready", "failed"):
            row.finished_at = ctx.clock.now()
    return True
