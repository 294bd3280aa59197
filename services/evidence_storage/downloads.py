"""Reading evidence out: listings, streamed downloads, presigned URLs and thumbnails. Each goes through
access.check_access with the caller (a foreign unit gets the same 404 as a missing id, before anything is read
or signed), and each download is written to the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from services.evidence_storage import audit
from services.evidence_storage.access import Caller, check_access
from services.evidence_storage.models import Evidence, EvidenceRendition, KnownSubmission
from shared.auth import visible
from shared.blobs.port import BlobNotFound, BlobStoreUnavailable, PresignUnsupported
from shared.http import ApiError, not_found
from shared.runtime import ServiceContext


def evidence_for(evidence_id: str, caller: Caller, *, ctx: ServiceContext) -> Evidence:
    """One evidence row the caller may see (404 otherwise)."""
    with ctx.db.session() as uow:
        evidence = uow.get(Evidence, evidence_id)
    missing = not_found("佐证资料", "evidence", evidence_id)
    if evidence is None:
        raise missing
    check_access(caller, missing, unit_path=evidence.unit_path, unit_id=evidence.unit_id)
    return evidence


def list_for_submission(submission_id: str, caller: Caller, *, ctx: ServiceContext) -> list[Evidence]:
    """The evidence files of one submission (404 until this service has heard of the submission)."""
    with ctx.db.session() as uow:
        submission = uow.get(KnownSubmission, submission_id)
        missing = not_found("报送材料", "submission", submission_id)
        if submission is None:
            raise missing
        check_access(caller, missing, unit_path=submission.unit_path, unit_id=submission.unit_id)
        query = select(Evidence).where(
            Evidence.submission_id == submission_id,
            visible(caller.principal, Evidence.unit_path, Evidence.unit_id),
        )
        return list(uow.scalars(query.order_by(Evidence.created_at)))


@dataclass(frozen=True)
class Served:
    """Which stored object answers a download: the original, or a video's web-playable copy."""

    key: str
    media_type: str
    size: int
    sha256: str
    filename: str
    variant: str  # original, web


def served_object(evidence: Evidence, variant: str, *, ctx: ServiceContext) -> Served:
    """variant 'web': the web-playable copy of a video when one is ready, else (and for 'original') the original."""
    if variant == "web":
        with ctx.db.session() as uow:
            copy = uow.get(EvidenceRendition, evidence.id)
        if copy is not None and copy.state == "ready" and copy.object_key:
            stem = evidence.filename.rsplit(".", 1)[0] if "." in evidence.filename else evidence.filename
            return Served(
                copy.object_key, copy.media_type, copy.size or 0, copy.sha256 or "", f"{stem}.web.mp4", "web"
            )
    return Served(
        evidence.object_key,
        evidence.media_type,
        evidence.size,
        evidence.sha256,
        evidence.filename,
        "original",
    )


def open_served(
    evidence_id: str, caller: Caller, variant: str, *, ctx: ServiceContext
) -> tuple[Served, Iterator[bytes]]:
    """The bytes of the original (or its web-playable copy) as chunks, after writing the audit row."""
    evidence = evidence_for(evidence_id, caller, ctx=ctx)
    served = served_object(evidence, variant, ctx=ctx)
    try:
        chunks = ctx.blob_store.read(served.key)
    except BlobNotFound:
        raise _object_missing() from None
    except BlobStoreUnavailable as exc:
        raise _store_down() from exc
    with ctx.db.transaction() as uow:
        audit.record(
            uow,
            ctx,
            caller,
            "download",
            evidence=evidence,
            detail="web-playable copy" if served.variant == "web" else None,
        )
    return served, chunks


def open_content(
    evidence_id: str, caller: Caller, *, ctx: ServiceContext, preview: bool = False
) -> tuple[Evidence, Iterator[bytes]]:
    """The stored bytes (or the preview JPEG) as chunks, after writing the audit row."""
    action = "thumbnail" if preview else "download"
    evidence = evidence_for(evidence_id, caller, ctx=ctx)
    key = evidence.thumbnail_key if preview else evidence.object_key
    if key is None:
        raise ApiError(
            404,
            "no_preview",
            f"该文件没有预览图（{evidence.preview_note or '文档类文件不生成预览'}）",
            f"this file has no preview ({evidence.preview_note or 'documents have none'})",
        )
    try:
        chunks = ctx.blob_store.read(key)
    except BlobNotFound:
        raise _object_missing() from None
    except BlobStoreUnavailable as exc:
        raise _store_down() from exc
    with ctx.db.transaction() as uow:
        audit.record(uow, ctx, caller, action, evidence=evidence)
    return evidence, chunks


def presigned_download(
    evidence_id: str, caller: Caller, *, ctx: ServiceContext, variant: str = "original"
) -> tuple[Evidence, str, datetime]:
    """A short-lived URL straight to the object or its web-playable copy (S3 only), after writing the audit row."""
    evidence = evidence_for(evidence_id, caller, ctx=ctx)
    served = served_object(evidence, variant, ctx=ctx)
    ttl = ctx.settings.evidence_download_ttl_s
    try:
        url = ctx.blob_store.presigned_get_url(served.key, ttl, download_name=served.filename)
    except PresignUnsupported:
        raise ApiError(
            501,
            "presign_unsupported",
            "当前存储（本地文件夹）不支持临时下载链接，请经接口下载 /content",
            "the folder store has no presigned URLs; download through the API (/content)",
        ) from None
    expires_at = ctx.clock.now() + timedelta(seconds=ttl)
    with ctx.db.transaction() as uow:
        audit.record(
            uow, ctx, caller, "download_url", evidence=evidence, detail=f"expires {expires_at.isoformat()}"
        )
    return evidence, url, expires_at


def _object_missing() -> ApiError:
    return ApiError(
        410,
        "object_missing",
        "存储中找不到该文件，请联系管理员运行完整性检查",
        "the stored object is missing; ask an administrator to run the integrity check",
    )


def _store_down() -> ApiError:
    return ApiError(
        503, "store_unavailable", "存储服务暂时不可用，请稍后重试", "evidence store unavailable, retry later"
    )
