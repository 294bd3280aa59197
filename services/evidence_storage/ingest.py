"""The one way bytes become evidence, whatever the upload path: receive (stream into the store while
hashing, within the kind's size limit), inspect (read back what the checks need), then accept (move to the
final key, store the preview, write the rows and the event in one transaction) or discard, leaving nothing.

Streamed uploads whose kind the first bytes settle go straight to their final key, so a 2 GB video is written
once; DOCX/XLSX, resumable and presigned uploads pass through a staging key and a server-side move.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date

from services.evidence_storage import refusals
from services.evidence_storage.duplicates import flag_duplicates
from services.evidence_storage.inspection import Findings, check_declared, examine
from services.evidence_storage.models import (
    Evidence,
    EvidenceRendition,
    EvidenceText,
    KnownCampaign,
    KnownSubmission,
)
from services.evidence_storage.refusals import Refusal
from services.evidence_storage.sniff import ALLOWED_TEXT, ALLOWED_TEXT_EN, HEAD_BYTES, MediaKind, sniff
from services.evidence_storage.streams import PrefixedLimitedReader, UploadTooLarge, read_head
from shared.blobs.port import BlobStoreUnavailable, Readable
from shared.contracts import make_event
from shared.contracts.evidence import EvidenceStored
from shared.events import new_id
from shared.metrics import UPLOAD_BYTES, UPLOADS
from shared.runtime import ServiceContext
from shared.settings import Settings

SERVICE = "evidence_storage"
OCR_CATEGORIES = ("photo", "video")  # a video is read in its poster frame
UPLOADABLE_STATES = {"submitted", "returned", "inspection"}  # inspection: an inspection's photos
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """Bytes now in the store, not yet evidence."""

    evidence_id: str
    key: str
    kind: MediaKind
    size: int
    sha256: str
    filename: str
    upload_path: str


def evidence_key(submission: KnownSubmission, evidence_id: str, kind: MediaKind) -> str:
    """Where an accepted file lives; chosen by the server, never from the client's filename."""
    return f"evidence/{submission.unit_id}/{submission.id}/{evidence_id}{kind.extension}"


def preview_key(submission: KnownSubmission, evidence_id: str) -> str:
    """Where a file's thumbnail or poster frame lives."""
    return f"previews/{submission.unit_id}/{submission.id}/{evidence_id}.jpg"


def staging_key(name: str) -> str:
    """A key for bytes still under inspection; anything left here is garbage."""
    return f"staging/{name}"


def limit_for(settings: Settings, category: str) -> int:
    """The size limit of a kind of file (and never above EVIDENCE_MAX_BYTES)."""
    per_kind = {
        "photo": settings.evidence_photo_max_bytes,
        "video": settings.evidence_video_max_bytes,
        "document": settings.evidence_document_max_bytes,
    }[category]
    return min(per_kind, settings.evidence_max_bytes)


def largest_limit(settings: Settings) -> int:
    """The largest file any kind may be."""
    return max(limit_for(settings, category) for category in ("photo", "video", "document"))


def sniff_or_refuse(head: bytes) -> MediaKind:
    """The allowed kind of these first bytes; refuses empty and unknown files."""
    if not head:
        raise refusals.empty_file()
    kind = sniff(head)
    if kind is None:
        raise refusals.unsupported_type(ALLOWED_TEXT, ALLOWED_TEXT_EN)
    return kind


def receive(
    ctx: ServiceContext, submission: KnownSubmission, stream: Readable, filename: str, *, upload_path: str
) -> Received:
    """Sniff the first bytes, then stream the rest into the store while hashing; nothing is left on failure."""
    head = read_head(stream, HEAD_BYTES)
    kind = sniff_or_refuse(head)
    evidence_id = new_id()
    key = evidence_key(submission, evidence_id, kind) if kind.definitive else staging_key(evidence_id)
    limit = limit_for(ctx.settings, kind.category)
    try:
        stored = ctx.blob_store.put(
            key, PrefixedLimitedReader(head, stream, limit), content_type=kind.media_type
        )
    except UploadTooLarge:
        discard(ctx, [key])
        UPLOADS.labels("refused").inc()
        raise refusals.too_large(kind.label, limit) from None
    except BaseException:
        discard(ctx, [key])
        UPLOADS.labels("failed").inc()
        raise
    assert stored.sha256 is not None  # every store hashes what put() streams through it
    return Received(evidence_id, key, kind, stored.size, stored.sha256, filename, upload_path)


def inspect(
    ctx: ServiceContext, received: Received, *, declared_media_type: str | None = None, keep: bool = False
) -> Findings:
    """Deep checks on the stored bytes; on refusal or failure the object is removed (with keep, only on refusal:
    a session's joined upload has no other copy, and its completion is retried)."""
    try:
        findings = examine(ctx.blob_store, received.key, received.kind, received.size, settings=ctx.settings)
        check_declared(findings.kind, declared_media_type)
        return findings
    except BaseException as exc:
        if keep and not isinstance(exc, Refusal):
            raise
        discard(ctx, [received.key])
        UPLOADS.labels("refused").inc()
        UPLOAD_BYTES.labels("refused").inc(received.size)
        raise


def accept(
    ctx: ServiceContext,
    submission_id: str,
    batch: list[tuple[Received, Findings]],
    *,
    actor: str | None,
    keep: bool = False,
) -> list[Evidence]:
    """Make every received file of the batch evidence, or none of them; publishes evidence.stored for each.
    On failure the objects are removed; with keep, only on refusal (a failure leaves them at their received or
    final key, previews removed)."""
    placed: list[str] = []
    previews: list[str] = []
    pending = [received.key for received, _ in batch]
    try:
        with ctx.db.session() as uow:
            submission = uow.get(KnownSubmission, submission_id)
        if submission is None or submission.state not in UPLOADABLE_STATES:
            raise refusals.submission_closed()
        final: list[tuple[Received, Findings, str | None]] = []
        for received, findings in batch:
            target = evidence_key(submission, received.evidence_id, findings.kind)
            if received.key != target:
                ctx.blob_store.move(received.key, target)
            pending.remove(received.key)
            placed.append(target)
            preview = None
            if findings.preview:
                preview = preview_key(submission, received.evidence_id)
                ctx.blob_store.put(preview, io.BytesIO(findings.preview), content_type="image/jpeg")
                placed.append(preview)
                previews.append(preview)
            final.append((replace(received, key=target), findings, preview))
        rows = _record(ctx, submission_id, final, actor=actor)
    except BaseException as exc:
        discard(ctx, previews if keep and not isinstance(exc, Refusal) else pending + placed)
        UPLOADS.labels("failed").inc(len(batch))
        UPLOAD_BYTES.labels("failed").inc(sum(received.size for received, _ in batch))
        raise
    UPLOADS.labels("stored").inc(len(batch))
    UPLOAD_BYTES.labels("stored").inc(sum(received.size for received, _ in batch))
    return rows


def _record(ctx: ServiceContext, submission_id: str, batch, *, actor: str | None) -> list[Evidence]:
    """The rows, the duplicate flags and the events, in one transaction (re-checking the submission is open)."""
    now = ctx.clock.now()
    rows = []
    with ctx.db.transaction() as uow:
        submission = uow.get(KnownSubmission, submission_id, with_for_update=True)
        if submission is None or submission.state not in UPLOADABLE_STATES:
            raise refusals.submission_closed()
        campaign = uow.get(KnownCampaign, submission.campaign_id) if submission.campaign_id else None
        for received, findings, preview in batch:
            evidence = Evidence(
                id=received.evidence_id,
                submission_id=submission.id,
                unit_id=submission.unit_id,
                unit_path=submission.unit_path,
                campaign_id=submission.campaign_id,
                measure_code=submission.measure_code,
                object_key=received.key,
                filename=received.filename,
                media_type=findings.kind.media_type,
                category=findings.kind.category,
                size=received.size,
                sha256=received.sha256,
                width=findings.width,
                height=findings.height,
                duration_s=findings.duration_s,
                captured_at=findings.captured_at,
                captured_on=findings.captured_on,
                gps_lat=findings.gps_lat,
                gps_lon=findings.gps_lon,
                outside_window=outside_window(findings.captured_on, campaign),
                phash=findings.phash,
                thumbnail_key=preview,
                preview_note=findings.preview_note,
                upload_path=received.upload_path,
                uploaded_by=actor,
                locked=False,
                retention="none",
                created_at=now,
                video_codec=findings.video_codec,
                audio_codec=findings.audio_codec,
            )
            uow.add(evidence)
            uow.flush()
            if findings.needs_rendition:  # made by the worker (services/evidence_storage/renditions.py)
                uow.add(EvidenceRendition(evidence_id=evidence.id, state="pending"))
            if evidence.category in OCR_CATEGORIES:  # read by the worker (services/evidence_storage/ocr.py)
                uow.add(EvidenceText(evidence_id=evidence.id, state="pending", queued_at=now))
            flags = flag_duplicates(uow, evidence, near_bits=ctx.settings.evidence_near_duplicate_bits)
            ctx.outbox.add(
                uow,
                make_event(
                    EvidenceStored(
                        evidence_id=evidence.id,
                        submission_id=submission.id,
                        unit_id=submission.unit_id,
                        object_key=evidence.object_key,
                        media_type=evidence.media_type,
                        size=evidence.size,
                        sha256=evidence.sha256,
                        filename=evidence.filename,
                        category=evidence.category,
                        captured_at=evidence.captured_at,
                        outside_window=evidence.outside_window,
                        duplicate_of=[flag.other_id for flag in flags if flag.match == "exact"],
                        near_duplicate_of=[flag.other_id for flag in flags if flag.match == "near"],
                        upload_path=evidence.upload_path,
                    ),
                    producer=SERVICE,
                ),
            )
            rows.append(evidence)
    return rows


def outside_window(captured_on: date | None, campaign: KnownCampaign | None) -> bool | None:
    """Whether a capture date lies outside the campaign's publicity window; None when either is unknown."""
    if captured_on is None or campaign is None:
        return None
    return not (campaign.publicity_start <= captured_on <= campaign.publicity_end)


def discard(ctx: ServiceContext, keys: Iterable[str]) -> None:
    """Remove objects that must not stay; a store outage is logged, not raised (a full integrity check lists leftovers)."""
    for key in keys:
        try:
            ctx.blob_store.delete(key)
        except BlobStoreUnavailable as exc:
            log.warning("could not remove %s while the store is down: %s", key, exc)
        except Exception:
            log.exception("could not remove %s", key)
