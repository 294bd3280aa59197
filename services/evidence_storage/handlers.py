"""Evidence use cases: store an upload, track submissions, lock approved proof."""
from __future__ import annotations

import logging
import re
import unicodedata
from typing import BinaryIO, NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.evidence_storage.models import Evidence, KnownSubmission
from services.evidence_storage.sniff import HEAD_BYTES, sniff
from services.evidence_storage.streams import PrefixedLimitedReader, UploadTooLarge, read_head
from shared.blobs.port import BlobStoreUnavailable
from shared.contracts import make_event, read_payload
from shared.contracts.evidence import EvidenceLocked, EvidenceRejected, EvidenceStored
from shared.contracts.intake import SubmissionSubmitted, SubmissionWithdrawn
from shared.contracts.review import DECISIONS
from shared.events import Envelope, new_id
from shared.http import ApiError, not_found
from shared.runtime import ServiceContext

SERVICE = "evidence_storage"
UPLOADABLE_STATES = {"submitted", "returned"}
MAX_FILENAME = 200
log = logging.getLogger(__name__)


def store_evidence(submission_id: str, filename: str | None, stream: BinaryIO, *, ctx: ServiceContext) -> Evidence:
    """Sniff, stream into the blob store with a SHA-256, record it; publishes evidence.stored or evidence.rejected."""
    display_name = clean_filename(filename)
    with ctx.db.session() as uow:
        submission = uow.get(KnownSubmission, submission_id)
    if submission is None:
        raise not_found("报送材料", "submission", submission_id)
    if submission.state not in UPLOADABLE_STATES:
        raise ApiError(409, "submission_closed", "该报送材料已审核完毕，不能再上传佐证资料", "submission is already decided; no more uploads")

    head = read_head(stream, HEAD_BYTES)
    if not head:
        _reject(ctx, submission, display_name, 400, "empty_file", "文件为空", "the file is empty")
    kind = sniff(head)
    if kind is None:
        _reject(
            ctx, submission, display_name, 415, "unsupported_media_type",
            "不支持的文件类型：仅接受 JPEG、PNG、WebP、HEIC 照片，MP4、MOV 视频和 PDF 文件（按文件内容识别，与文件名无关）",
            "unsupported file type: only JPEG, PNG, WebP, HEIC photos, MP4/MOV videos and PDF documents are accepted (judged by content, not name)",
        )

    evidence_id = new_id()
    key = f"evidence/{submission.unit_id}/{submission.id}/{evidence_id}{kind.extension}"
    limit = ctx.settings.evidence_max_bytes
    try:
        stored = ctx.blobs.put(key, PrefixedLimitedReader(head, stream, limit), content_type=kind.media_type)
    except UploadTooLarge:
        ctx.blobs.delete(key)
        _reject(ctx, submission, display_name, 413, "too_large",
                f"文件超过大小上限（{limit} 字节）", f"file exceeds the size limit ({limit} bytes)")
    except BlobStoreUnavailable as exc:
        log.warning("blob store unavailable during upload: %s", exc)
        raise ApiError(503, "store_unavailable", "存储服务暂时不可用，请稍后重试", "evidence store unavailable, retry later") from exc

    try:
        with ctx.db.transaction() as uow:
            evidence = Evidence(
                id=evidence_id, submission_id=submission.id, unit_id=submission.unit_id, object_key=key,
                filename=display_name, media_type=kind.media_type, category=kind.category,
                size=stored.size, sha256=stored.sha256, locked=False, created_at=ctx.clock.now(),
            )
            uow.add(evidence)
            ctx.outbox.add(uow, make_event(EvidenceStored(
                evidence_id=evidence.id, submission_id=submission.id, unit_id=submission.unit_id, object_key=key,
                media_type=kind.media_type, size=stored.size, sha256=stored.sha256, filename=display_name,
            ), producer=SERVICE))
    except Exception:
        ctx.blobs.delete(key)  # no object without its row
        raise
    ctx.outbox_written()
    return evidence


def delete_evidence(evidence_id: str, *, ctx: ServiceContext) -> None:
    """Remove unlocked evidence; locked assessment proof is refused."""
    with ctx.db.transaction() as uow:
        evidence = uow.get(Evidence, evidence_id)
        if evidence is None:
            raise not_found("佐证资料", "evidence", evidence_id)
        if evidence.locked:
            raise ApiError(409, "evidence_locked", "该佐证资料已作为考核凭证锁定，不能删除", "evidence is locked as assessment proof")
        key = evidence.object_key
        uow.delete(evidence)
    ctx.blobs.delete(key)


def clean_filename(filename: str | None) -> str:
    """A display-only filename: no path, no control characters, length-capped."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"\s+", " ", name).strip().lstrip(".")
    return (name or "unnamed")[:MAX_FILENAME]


def _reject(ctx: ServiceContext, submission: KnownSubmission, filename: str, status: int, code: str, message: str, message_en: str) -> NoReturn:
    with ctx.db.transaction() as uow:
        ctx.outbox.add(uow, make_event(EvidenceRejected(
            submission_id=submission.id, unit_id=submission.unit_id, filename=filename, reason_code=code, reason=message,
        ), producer=SERVICE))
    ctx.outbox_written()
    raise ApiError(status, code, message, message_en)


def track_submission(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Learn of a (re)submitted submission so units can upload evidence to it."""
    data = read_payload(SubmissionSubmitted, event)
    known = uow.get(KnownSubmission, data.submission_id)
    if known is None:
        uow.add(KnownSubmission(id=data.submission_id, unit_id=data.unit_id, measure_code=data.measure_code, version=data.version, state="submitted"))
    elif data.version >= known.version:
        known.version, known.state = data.version, "submitted"


def track_withdrawal(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """A withdrawn submission takes no more uploads."""
    data = read_payload(SubmissionWithdrawn, event)
    known = uow.get(KnownSubmission, data.submission_id)
    if known is not None and known.version == data.version:
        known.state = "withdrawn"


def track_decision(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Follow review decisions; approval locks the submission's evidence as assessment proof."""
    decision = read_payload(DECISIONS[event.type], event)
    known = uow.get(KnownSubmission, decision.submission_id)
    if known is None or known.version != decision.version:
        return
    known.state = event.type.split(".", 1)[1]
    if event.type != "submission.approved":
        return
    for evidence in uow.scalars(select(Evidence).where(Evidence.submission_id == known.id, Evidence.locked.is_(False))):
        evidence.locked = True
        ctx.outbox.add(uow, make_event(
            EvidenceLocked(evidence_id=evidence.id, submission_id=known.id, object_key=evidence.object_key),
            producer=SERVICE, cause=event,
        ))
