"""Upload sessions: resumable chunked uploads through the API, and presigned POSTs straight to S3.

Chunked: create (declared size) → PUT chunks at the received offset (the first chunk begins one multipart upload in
the store, under the final key when its bytes settle the kind; each chunk is stored as the next part(s) of it, so a
cut connection loses only the chunk in flight, and the upload id and each part's number and ETag are rows, so any
API process can take the next chunk) → GET/HEAD to learn the offset after a cut → complete (the store joins the
parts where they lie, with no copy; the result is inspected and accepted; the SHA-256 is computed while the chunks
arrive, and the joined object is read back to hash it only when another process took some of them). Presigned:
create (declared size and type) → the client POSTs the form to S3 → complete (the object is checked: there, the
declared size, the declared type judged from its bytes, the SHA-256 if declared). A completion holds the session for
EVIDENCE_COMPLETE_LEASE_S; if its process stops, the next complete after that takes it over. Unfinished sessions
expire and their objects and multipart uploads are removed (never while a completion holds them).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, or_, select, update

from services.evidence_storage import ingest, refusals
from services.evidence_storage.handlers import clean_filename, open_submission, refusing, rejected
from services.evidence_storage.models import Evidence, KnownSubmission, UploadChunk, UploadSession
from services.evidence_storage.refusals import Refusal
from services.evidence_storage.sniff import (
    ALLOWED_TEXT,
    ALLOWED_TEXT_EN,
    BY_MEDIA_TYPE,
    HEAD_BYTES,
    MediaKind,
)
from services.evidence_storage.streams import PrefixedLimitedReader, UploadTooLarge, read_head
from shared.blobs.port import (
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
    PresignedPost,
    PresignUnsupported,
    Readable,
    UploadedPart,
    UploadGone,
    UploadPartsChanged,
)
from shared.clock import as_utc
from shared.db import rows_affected
from shared.events import new_id
from shared.http import ApiError, not_found
from shared.metrics import UPLOAD_COMPLETIONS_TAKEN_OVER
from shared.runtime import ServiceContext

OPEN = "open"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
log = logging.getLogger(__name__)


class RunningHashes:
    """The SHA-256 of each chunked session's bytes so far, in the process that received them, so completion need not
    read the joined object back. A session whose chunks came through another process (or before a restart) has no
    entry at the right offset, and completion re-reads it as before. Bounded: the oldest entries are dropped."""

    def __init__(self, limit: int = 256) -> None:
        self._entries: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def at(self, session_id: str, offset: int):
        """A hash to continue with the chunk at offset (a copy: it counts only once the chunk is claimed), or None."""
        if offset == 0:
            return hashlib.sha256()
        with self._lock:
            entry = self._entries.get(session_id)
            return entry[1].copy() if entry and entry[0] == offset else None

    def advance(self, session_id: str, offset: int, digest) -> None:
        """Remember the hash of the session's first offset bytes."""
        with self._lock:
            self._entries[session_id] = (offset, digest)
            self._entries.move_to_end(session_id)
            while len(self._entries) > self._limit:
                self._entries.popitem(last=False)

    def whole(self, session_id: str, size: int) -> str | None:
        """The hex SHA-256 of all size bytes, if this process saw every chunk."""
        with self._lock:
            entry = self._entries.get(session_id)
            return entry[1].hexdigest() if entry and entry[0] == size else None

    def forget(self, session_id: str) -> None:
        """Drop a session's entry."""
        with self._lock:
            self._entries.pop(session_id, None)


RUNNING_HASHES = RunningHashes()


class _Known:
    """A finished digest in the shape of a hash object (what a store reported while joining the chunks)."""

    def __init__(self, hexdigest: str) -> None:
        self._hex = hexdigest

    def hexdigest(self) -> str:
        return self._hex

    def copy(self) -> _Known:
        return self


def create_session(
    submission_id: str,
    *,
    mode: str,
    filename: str | None,
    size: int,
    sha256: str | None,
    content_type: str | None,
    ctx: ServiceContext,
    actor: str | None,
) -> tuple[UploadSession, PresignedPost | None]:
    """Open a chunked or presigned upload session for a submission."""
    submission = open_submission(ctx, submission_id)
    with refusing(ctx, submission, filename):
        display = clean_filename(filename)
        limit = ingest.largest_limit(ctx.settings)
        kind = None
        if mode == "presigned":
            kind = BY_MEDIA_TYPE.get((content_type or "").split(";")[0].strip().lower())
            if kind is None:
                raise refusals.unsupported_type(ALLOWED_TEXT, ALLOWED_TEXT_EN)
            limit = ingest.limit_for(ctx.settings, kind.category)
        if size > limit:
            raise refusals.too_large(kind.label if kind else "", limit)
    session_id = new_id()
    now = ctx.clock.now()
    form = None
    ttl = ctx.settings.evidence_session_ttl_s
    object_key = None
    if mode == "presigned":
        assert kind is not None  # checked above for presigned uploads
        # The store checks the form's expiry when a POST begins, and a large video on a slow line may take
        # longer than that to arrive: its session stays for a chunked session's TTL after the form expires.
        ttl = ctx.settings.evidence_presign_ttl_s + ctx.settings.evidence_session_ttl_s
        object_key = f"incoming/{session_id}/upload"
        try:
            form = ctx.blob_store.presigned_post(
                object_key,
                key_prefix=f"incoming/{session_id}/",
                content_type=kind.media_type,
                size=size,
                expires_s=ctx.settings.evidence_presign_ttl_s,
            )
        except BlobStoreUnavailable as exc:
            raise refusals.store_unavailable() from exc
        except PresignUnsupported:
            raise ApiError(
                501,
                "presign_unsupported",
                "当前存储（本地文件夹）不支持直传对象存储，请改用分片上传会话（mode=chunked）或直接经接口上传",
                "the folder store cannot take direct (presigned) uploads; use a chunked session or upload through the API",
            ) from None
    session = UploadSession(
        id=session_id,
        mode=mode,
        submission_id=submission.id,
        unit_id=submission.unit_id,
        filename=display,
        size=size,
        sha256=sha256,
        media_type=kind.media_type if kind else None,
        received=0,
        object_key=object_key,
        state=OPEN,
        created_by=actor,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    with ctx.db.transaction() as uow:
        uow.add(session)
    return session, form


def get_session(session_id: str, *, ctx: ServiceContext) -> UploadSession:
    """A session by id (404 if unknown)."""
    with ctx.db.session() as uow:
        session = uow.get(UploadSession, session_id)
    if session is None:
        raise not_found("上传会话", "upload session", session_id)
    return session


def put_chunk(
    session_id: str, stream: Readable, *, offset: int | None, content_range: str | None, ctx: ServiceContext
) -> UploadSession:
    """Store one chunk at the session's received offset as the next part(s) of the session's multipart upload;
    only whole chunks count, and a chunk sent again at the same offset replaces the same part numbers."""
    session = _open_session(session_id, ctx, mode="chunked")
    start, expected = _chunk_position(offset, content_range, session)
    if start != session.received:
        raise _offset_error(session)
    remaining = session.size - session.received
    if remaining <= 0:
        raise ApiError(
            409,
            "upload_complete",
            "已收到全部数据，请调用 complete 完成上传",
            "all bytes received; call complete",
        )
    if start > 0 and session.upload_id is None:
        raise _outdated()
    submission = _submission(ctx, session)
    store = ctx.blob_store
    head = b""
    kind = None
    parts: list[UploadedPart] = []
    try:
        with (guard := _refusing_session(ctx, session, submission)):
            if start == 0:
                head = read_head(stream, HEAD_BYTES)
                if not head:  # nothing to judge yet: the session waits for the real first chunk
                    raise _empty_chunk()
                kind = ingest.sniff_or_refuse(head)
                limit = ingest.limit_for(ctx.settings, kind.category)
                if session.size > limit:
                    raise refusals.too_large(kind.label, limit)
            upload_id, key = _upload_for(ctx, session, submission, kind)
            first = _parts_before(ctx, session.id, start) + 1
            running = RUNNING_HASHES.at(session.id, start)
            # one hashing pass: the store feeds the chunk into the session's running hash, if this process has it.
            # A chunk cut short or refused below leaves its parts in the upload, unrecorded: the next try at this
            # offset replaces them under the same numbers, and completion drops every part it is not given.
            pieces = _pieces(PrefixedLimitedReader(head, stream, remaining), store)
            try:
                for number, piece in enumerate(pieces, start=first):
                    parts.append(store.put_part(key, upload_id, number, piece, digest=running))
            except UploadGone:
                log.warning("session %s: the store no longer has multipart upload %s", session.id, upload_id)
                raise refusals.upload_lost() from None
    except UploadTooLarge:
        raise ApiError(
            413, "chunk_past_end", "分片超出了声明的文件大小", "the chunk goes past the declared file size"
        ) from None
    except ApiError as exc:
        if guard.refused:
            _refuse(ctx, session, exc)
        raise
    size = sum(part.size for part in parts)
    problem = _chunk_problem(ctx, session, start, size, expected)
    if problem is not None:
        raise problem
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        claimed = rows_affected(
            uow.execute(
                update(UploadSession)
                .where(
                    UploadSession.id == session.id,
                    UploadSession.received == start,
                    UploadSession.state == OPEN,
                )
                .values(
                    received=start + size,
                    media_type=kind.media_type if kind else session.media_type,
                    expires_at=now + timedelta(seconds=ctx.settings.evidence_session_ttl_s),
                )
            )
        )
        if claimed:
            at = start
            for part in parts:
                uow.add(
                    UploadChunk(
                        session_id=session.id,
                        offset=at,
                        size=part.size,
                        part_number=part.number,
                        etag=part.etag,
                    )
                )
                at += part.size
    if not claimed:  # another request stored this offset first (its parts carry the same numbers)
        raise _offset_error(get_session(session_id, ctx=ctx))
    if running is not None:
        RUNNING_HASHES.advance(session.id, start + size, running)
    return get_session(session_id, ctx=ctx)


def complete(
    session_id: str, *, sha256: str | None, ctx: ServiceContext, actor: str | None
) -> tuple[Evidence, bool]:
    """Turn a finished session into evidence; returns (evidence, created now). Completing twice is harmless, and a
    completion whose process stopped is taken over once its lease ends."""
    session = get_session(session_id, ctx=ctx)
    if session.state == "completed":
        with ctx.db.session() as uow:
            done = uow.get(Evidence, session.evidence_id)
        if done is None:
            raise ApiError(
                410,
                "evidence_deleted",
                "该会话上传的佐证资料已被删除",
                "the evidence of this session was deleted",
            )
        return done, False
    taken_over = session.state == "completing"
    if taken_over:  # 409 while the completing process's lease lasts
        session, done = _take_over(ctx, session)
        if done is not None:
            return done, False
    else:
        session = _open_session(session_id, ctx, mode=None)
        if session.mode == "chunked" and session.received != session.size:
            raise ApiError(
                409,
                "upload_incomplete",
                f"尚未收到全部数据（已收到 {session.received}/{session.size} 字节）",
                f"not all bytes received yet ({session.received} of {session.size})",
            )
        if session.mode == "chunked" and session.upload_id is None and session.object_key is None:
            raise _outdated()
        _set_state(ctx, session.id, OPEN, "completing")
    submission = _submission(ctx, session)
    declared = sha256 or session.sha256
    started = time.monotonic()
    key = None
    try:
        with (guard := _refusing_session(ctx, session, submission)):
            if taken_over and session.mode == "chunked":  # the stopped process may have moved the join
                _keep_joined(ctx, session, submission)
                session = get_session(session.id, ctx=ctx)
            key, received = _assemble(ctx, session, submission)
            if declared and declared.lower() != received.sha256:
                raise refusals.checksum_mismatch()
            chunked = session.mode == "chunked"
            findings = ingest.inspect(
                ctx,
                received,
                declared_media_type=session.media_type if session.mode == "presigned" else None,
                keep=chunked,
            )
            evidence = ingest.accept(
                ctx, session.submission_id, [(received, findings)], actor=actor, keep=chunked
            )[0]
    except BaseException as exc:
        refused = guard.refused and isinstance(exc, ApiError)
        try:
            if refused:  # nothing of a refused upload stays
                _clean(ctx, session, key)
            elif session.mode == "chunked":
                _keep_joined(ctx, session, submission)  # the joined upload stays for a retry
        except Exception as down:  # never in the way of handing the session back
            log.warning("could not clean up after session %s: %s", session.id, down)
        _set_state(
            ctx,
            session.id,
            "completing",
            "refused" if refused else OPEN,
            error=exc.info if refused and isinstance(exc, ApiError) else None,
        )
        raise
    _set_state(ctx, session.id, "completing", "completed", evidence_id=evidence.id)
    RUNNING_HASHES.forget(session.id)
    log.info(
        "session %s completed as evidence %s: %d bytes in %.2f s",
        session.id,
        evidence.id,
        session.size,
        time.monotonic() - started,
    )
    return evidence, True


def abort(session_id: str, *, ctx: ServiceContext) -> None:
    """Give up a session and remove what it stored (its multipart upload is aborted)."""
    session = get_session(session_id, ctx=ctx)
    if session.state in ("completing", "completed"):
        raise ApiError(
            409,
            "session_closed",
            "该上传会话已完成或正在完成，不能取消",
            "the session is completed or completing",
        )
    try:
        _clean(ctx, session)
    except BlobStoreUnavailable as exc:
        raise refusals.store_unavailable() from exc
    with ctx.db.transaction() as uow:
        uow.execute(
            update(UploadSession)
            .where(UploadSession.id == session.id, UploadSession.state == session.state)
            .values(state="aborted")
        )


def expire_sessions(ctx: ServiceContext) -> int:
    """Remove the objects and multipart uploads of sessions past their expiry and mark them expired; returns how
    many. A session whose evidence was recorded by a completion that died before marking it is marked completed."""
    now = ctx.clock.now()
    with ctx.db.session() as uow:
        stale = list(
            uow.scalars(
                select(UploadSession).where(
                    UploadSession.state.in_((OPEN, "completing")),
                    UploadSession.expires_at < now,
                    _no_live_lease(now),  # a completion under way keeps its objects
                )
            )
        )
    for session in stale:
        if _completed_if_recorded(ctx, session, session.state) is not None:
            continue
        try:
            _clean(ctx, session)
        except BlobStoreUnavailable:
            continue  # next round
        with ctx.db.transaction() as uow:
            uow.execute(
                update(UploadSession)
                .where(UploadSession.id == session.id, UploadSession.state == session.state)
                .values(state="expired", completing_until=None)
            )
    if stale:
        log.info("expired %d upload session(s)", len(stale))
    return len(stale)


# --- helpers ------------------------------------------------------------------------------------------------


def _open_session(session_id: str, ctx: ServiceContext, *, mode: str | None) -> UploadSession:
    session = get_session(session_id, ctx=ctx)
    if mode and session.mode != mode:
        raise ApiError(
            409,
            "wrong_mode",
            "该上传会话不接受分片（直传会话请直接 POST 到对象存储）",
            "this session takes no chunks (a presigned session is POSTed straight to the store)",
        )
    if session.state == "completing":  # only complete() takes a stopped completion over: the bytes are in
        raise _busy()
    if session.state != OPEN:
        raise ApiError(
            410,
            f"session_{session.state}",
            f"该上传会话已结束（{session.state}）",
            f"the upload session is {session.state}",
        )
    if ctx.clock.now() > as_utc(session.expires_at):
        raise ApiError(
            410,
            "session_expired",
            "该上传会话已过期，请重新创建",
            "the upload session has expired; create a new one",
        )
    return session


def _no_live_lease(now: datetime) -> ColumnElement[bool]:
    """Sessions no process is completing now: not completing, or completing by a process whose lease ended
    (NULL: left completing by a release without leases)."""
    return or_(
        UploadSession.state != "completing",
        UploadSession.completing_until.is_(None),
        UploadSession.completing_until < now,
    )


def _take_over(ctx: ServiceContext, session: UploadSession) -> tuple[UploadSession, Evidence | None]:
    """Take over the completion of a session whose completing process stopped (its lease ended): one conditional
    UPDATE renews the lease, so only one caller wins. Returns the session, and the evidence if the stopped
    process had recorded it already (the session is then marked completed)."""
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        taken = rows_affected(
            uow.execute(
                update(UploadSession)
                .where(
                    UploadSession.id == session.id,
                    UploadSession.state == "completing",
                    UploadSession.completing_until < now,
                    UploadSession.expires_at >= now,  # else expire_sessions may be removing its objects
                )
                .values(**_completion_lease(ctx))
            )
        )
    if not taken:
        raise _busy()
    log.warning("session %s: completion by a process that stopped taken over", session.id)
    UPLOAD_COMPLETIONS_TAKEN_OVER.inc()
    done = _completed_if_recorded(ctx, session, "completing")
    return get_session(session.id, ctx=ctx), done


def _completed_if_recorded(ctx: ServiceContext, session: UploadSession, state: str) -> Evidence | None:
    """The evidence a completion that died before marking its session had recorded (a chunked session's evidence
    takes its id), with the session marked completed; None if there is none."""
    with ctx.db.session() as uow:
        done = uow.get(Evidence, session.id) if session.mode == "chunked" else None
    if done is not None:
        _set_state(ctx, session.id, state, "completed", evidence_id=done.id)
        RUNNING_HASHES.forget(session.id)
    return done


def _completion_lease(ctx: ServiceContext) -> dict[str, datetime]:
    """A completion's lease from now; the session outlives it by a session's TTL, for a retry to take over."""
    until = ctx.clock.now() + timedelta(seconds=ctx.settings.evidence_complete_lease_s)
    return {
        "completing_until": until,
        "expires_at": until + timedelta(seconds=ctx.settings.evidence_session_ttl_s),
    }


def _busy() -> ApiError:
    return ApiError(409, "session_busy", "该上传会话正在完成中", "the session is being completed")


def _submission(ctx: ServiceContext, session: UploadSession) -> KnownSubmission:
    with ctx.db.session() as uow:
        submission = uow.get(KnownSubmission, session.submission_id)
    if submission is None:
        raise not_found("报送材料", "submission", session.submission_id)
    return submission


def _chunk_position(
    offset: int | None, content_range: str | None, session: UploadSession
) -> tuple[int, int | None]:
    """Where the chunk starts and, with Content-Range, how long it says it is."""
    if content_range:
        match = _CONTENT_RANGE.match(content_range.strip())
        if not match:
            raise ApiError(
                400,
                "bad_content_range",
                "Content-Range 格式应为 bytes 起-止/总长",
                "Content-Range must look like: bytes start-end/total",
            )
        first, last, total = int(match.group(1)), int(match.group(2)), match.group(3)
        if last < first or (total != "*" and int(total) != session.size):
            raise ApiError(
                400,
                "bad_content_range",
                "Content-Range 与会话声明的大小不符",
                "Content-Range does not fit the declared size",
            )
        if offset is not None and offset != first:
            raise ApiError(
                400,
                "bad_content_range",
                "offset 与 Content-Range 不一致",
                "offset and Content-Range disagree",
            )
        return first, last - first + 1
    if offset is None:
        raise ApiError(
            400,
            "offset_required",
            "请给出分片起始位置（?offset= 或 Content-Range）",
            "give the chunk's start (?offset= or Content-Range)",
        )
    return offset, None


def _chunk_problem(
    ctx: ServiceContext, session: UploadSession, start: int, size: int, expected: int | None
) -> ApiError | None:
    """Why a stored chunk cannot count, if it cannot."""
    if expected is not None and size != expected:
        return ApiError(
            400,
            "chunk_incomplete",
            f"分片不完整（收到 {size} 字节，应为 {expected} 字节），请从已接收位置续传",
            f"incomplete chunk ({size} of {expected} bytes); resume from the received offset",
        )
    if size == 0:
        return _empty_chunk()
    minimum = ctx.blob_store.min_compose_part
    if start + size < session.size and size < minimum:
        return ApiError(
            400,
            "chunk_too_small",
            f"除最后一个分片外，每个分片至少 {minimum} 字节",
            f"every chunk but the last must be at least {minimum} bytes",
        )
    return None


def _offset_error(session: UploadSession) -> ApiError:
    error = ApiError(
        409,
        "offset_mismatch",
        f"分片起始位置不符：服务器已接收 {session.received} 字节，请从该位置续传",
        f"chunk offset mismatch: the server has {session.received} bytes; resume from there",
    )
    error.headers = {"Upload-Offset": str(session.received)}
    return error


def _empty_chunk() -> ApiError:
    return ApiError(400, "empty_chunk", "分片为空", "the chunk is empty")


def _outdated() -> ApiError:
    return ApiError(
        410,
        "session_outdated",
        "该上传会话创建于系统升级之前，无法继续，请重新创建上传会话",
        "this upload session was begun before an upgrade and cannot be continued; create a new one",
    )


def _assembled_key(session_id: str) -> str:
    """Where a session's upload is joined when its first bytes do not settle the kind (DOCX/XLSX)."""
    return ingest.staging_key(f"sessions/{session_id}/assembled")


def _upload_for(
    ctx: ServiceContext, session: UploadSession, submission: KnownSubmission, kind: MediaKind | None
) -> tuple[str, str]:
    """The session's multipart upload (id, key): the one begun already, or, for a first chunk, one begun now under
    the key its bytes settle (the final key when they settle the kind, so completion needs no copy)."""
    if kind is None:  # a later chunk: the first one began the upload
        assert session.upload_id is not None and session.upload_key is not None
        return session.upload_id, session.upload_key
    key = ingest.evidence_key(submission, session.id, kind) if kind.definitive else _assembled_key(session.id)
    if session.upload_id is not None and session.upload_key == key:
        return session.upload_id, key  # the first chunk again, after a cut
    upload_id = ctx.blob_store.start_upload(key, content_type=kind.media_type)
    with ctx.db.transaction() as uow:
        same = (
            UploadSession.upload_id.is_(None)
            if session.upload_id is None
            else UploadSession.upload_id == session.upload_id
        )
        taken = rows_affected(
            uow.execute(
                update(UploadSession)
                .where(
                    UploadSession.id == session.id,
                    UploadSession.received == 0,
                    UploadSession.state == OPEN,
                    same,
                )
                .values(upload_id=upload_id, upload_key=key)
            )
        )
    if taken:
        log.info("session %s: multipart upload %s to %s begun", session.id, upload_id, key)
        if session.upload_id is not None and session.upload_key is not None:
            # a first chunk that began an upload under another kind's key was cut, and other bytes came instead
            _abort_quietly(ctx, session.upload_key, session.upload_id)
        return upload_id, key
    _abort_quietly(ctx, key, upload_id)  # another first chunk began the session's upload meanwhile
    current = get_session(session.id, ctx=ctx)
    if current.received == 0 and current.upload_id is not None and current.upload_key == key:
        return current.upload_id, key
    raise _offset_error(current)


def _abort_quietly(ctx: ServiceContext, key: str, upload_id: str) -> None:
    """Abort an upload nothing will use; if the store is down, the sweeper aborts it after the grace period."""
    try:
        ctx.blob_store.abort_upload(key, upload_id)
    except BlobStoreUnavailable as exc:
        log.warning("could not abort upload %s of %s (the sweeper will): %s", upload_id, key, exc)


def _pieces(stream: Readable, store: BlobStore) -> Iterator[Readable]:
    """A chunk's bytes cut into parts of the store's part size, the last one absorbing a tail shorter than the
    store's smallest part (so every part but the session's last is large enough); one streamed part when the
    store takes parts of any size. Memory: at most part size + smallest part, the bytes S3 sends from memory."""
    size = store.upload_part_size
    if size is None:
        yield stream
        return
    ahead = size + store.min_compose_part
    buffer = bytearray()
    while data := stream.read(ahead - len(buffer)):
        buffer += data
        if len(buffer) >= ahead:
            yield io.BytesIO(bytes(buffer[:size]))
            del buffer[:size]
    if buffer:
        yield io.BytesIO(bytes(buffer))


def _parts_before(ctx: ServiceContext, session_id: str, offset: int) -> int:
    """How many parts the session holds before offset: a chunk at offset takes the next numbers, whoever sends it."""
    with ctx.db.session() as uow:
        count = uow.scalar(
            select(func.count())
            .select_from(UploadChunk)
            .where(UploadChunk.session_id == session_id, UploadChunk.offset < offset)
        )
    return count or 0


def _parts(ctx: ServiceContext, session_id: str) -> list[UploadedPart]:
    """The session's recorded parts, in order."""
    with ctx.db.session() as uow:
        rows = uow.execute(
            select(UploadChunk.part_number, UploadChunk.etag, UploadChunk.size)
            .where(UploadChunk.session_id == session_id, UploadChunk.part_number.is_not(None))
            .order_by(UploadChunk.offset)
        ).all()
    return [UploadedPart(number=number, etag=etag, size=size) for number, etag, size in rows]


def _assemble(
    ctx: ServiceContext, session: UploadSession, submission: KnownSubmission
) -> tuple[str, ingest.Received]:
    """The whole upload in one object, sniffed and re-hashed: the presigned object (stray extra keys removed),
    or the session's multipart upload completed in the store (no byte copied), under the key its first chunk
    chose; an earlier completion that failed afterwards left it joined already."""
    if session.mode == "presigned":
        assert session.object_key is not None  # a presigned session is created with its object's key
        try:
            stored = ctx.blob_store.stat(session.object_key)
        except BlobNotFound:
            raise ApiError(
                409,
                "not_uploaded",
                "对象存储中尚未找到上传的文件，请先按表单 POST 上传后再完成",
                "the file is not in the store yet; POST the form first, then complete",
            ) from None
        ingest.discard(
            ctx, [k for k in ctx.blob_store.list_keys(f"incoming/{session.id}/") if k != session.object_key]
        )
        if stored.size != session.size:
            raise refusals.size_mismatch(session.size, stored.size)
        return session.object_key, _received(ctx, session, session.object_key, new_id())
    key = session.object_key
    if key is None:
        assert session.upload_id is not None and session.upload_key is not None
        key = session.upload_key
        started = time.monotonic()
        try:
            joined = ctx.blob_store.complete_upload(key, session.upload_id, _parts(ctx, session.id))
        except UploadPartsChanged as exc:
            log.warning("session %s: %s", session.id, exc)
            raise refusals.parts_changed() from None
        except UploadGone:
            joined = None  # completed by an attempt that died before recording it, or aborted
            if not _joined_already(ctx, key, session.size):
                log.warning("session %s: the store no longer has upload %s", session.id, session.upload_id)
                raise refusals.upload_lost() from None
        with ctx.db.transaction() as uow:
            uow.execute(update(UploadSession).where(UploadSession.id == session.id).values(object_key=key))
        log.info("session %s: upload joined under %s in %.2f s", session.id, key, time.monotonic() - started)
        if joined is not None and joined.sha256:  # a store that hashed while joining (the folder store)
            RUNNING_HASHES.advance(session.id, joined.size, _Known(joined.sha256))
    # the evidence takes the session's id: its final key is the one the upload went to
    return key, _received(ctx, session, key, session.id)


def _joined_already(ctx: ServiceContext, key: str, size: int) -> bool:
    try:
        return ctx.blob_store.stat(key).size == size
    except BlobNotFound:
        return False


def _received(ctx: ServiceContext, session: UploadSession, key: str, evidence_id: str) -> ingest.Received:
    """Sniff and re-hash the whole stored upload (streamed; memory stays flat)."""
    kind = ingest.sniff_or_refuse(ctx.blob_store.read_range(key, 0, HEAD_BYTES))
    limit = ingest.limit_for(ctx.settings, kind.category)
    if session.size > limit:
        raise refusals.too_large(kind.label, limit)
    known = RUNNING_HASHES.whole(session.id, session.size) if session.mode == "chunked" else None
    if known is not None:  # hashed while the chunks came in; the store joined exactly those chunks in order
        size = ctx.blob_store.stat(key).size
        if size != session.size:
            raise refusals.size_mismatch(session.size, size)
        return ingest.Received(evidence_id, key, kind, size, known, session.filename, session.mode)
    digest, size = hashlib.sha256(), 0
    for chunk in ctx.blob_store.read(key):
        digest.update(chunk)
        size += len(chunk)
    if size != session.size:
        raise refusals.size_mismatch(session.size, size)
    return ingest.Received(evidence_id, key, kind, size, digest.hexdigest(), session.filename, session.mode)


def _clean(ctx: ServiceContext, session: UploadSession, key: str | None = None) -> None:
    """Remove what a session stored: its multipart upload, the joined object, the chunk objects of a session begun
    before multipart uploads, a presigned upload; never an object evidence refers to."""
    with ctx.db.session() as uow:
        current = uow.get(UploadSession, session.id) or session
        keys = {
            k
            for k in uow.scalars(select(UploadChunk.object_key).where(UploadChunk.session_id == session.id))
            if k
        }
    keys |= {k for k in (key, session.object_key, current.object_key) if k}
    if session.mode == "chunked":
        keys.add(_assembled_key(session.id))
        if current.upload_key:
            keys.add(current.upload_key)
            if current.upload_id:
                ctx.blob_store.abort_upload(current.upload_key, current.upload_id)
    else:
        keys |= set(ctx.blob_store.list_keys(f"incoming/{session.id}/"))
    with ctx.db.session() as uow:
        kept = set(uow.scalars(select(Evidence.object_key).where(Evidence.object_key.in_(keys))))
    for each in sorted(keys - kept):
        ctx.blob_store.delete(each)


def _refuse(ctx: ServiceContext, session: UploadSession, error: ApiError) -> None:
    """Close a refused session for good and remove what it stored (a store outage leaves it to the sweeper)."""
    _set_state(ctx, session.id, OPEN, "refused", error=error.info)
    try:
        _clean(ctx, session)
    except BlobStoreUnavailable as exc:
        log.warning("could not clean up after refused session %s: %s", session.id, exc)


def _keep_joined(ctx: ServiceContext, session: UploadSession, submission: KnownSubmission) -> None:
    """After a failed completion: where the joined upload lies now (accept() may have moved it to the final key
    before failing), so the retry starts from it."""
    current = get_session(session.id, ctx=ctx)
    if current.object_key is None or ctx.blob_store.exists(current.object_key):
        return
    moved = next(
        iter(ctx.blob_store.list_keys(f"evidence/{submission.unit_id}/{submission.id}/{session.id}.")), None
    )
    with ctx.db.transaction() as uow:
        uow.execute(update(UploadSession).where(UploadSession.id == session.id).values(object_key=moved))


def _set_state(
    ctx: ServiceContext,
    session_id: str,
    old: str,
    new: str,
    *,
    evidence_id: str | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {"state": new}
    if new == "completing":
        values.update(_completion_lease(ctx))
    elif old == "completing":
        values["completing_until"] = None
    if evidence_id:
        values["evidence_id"] = evidence_id
    if error is not None:
        values["error"] = error
    with ctx.db.transaction() as uow:
        changed = rows_affected(
            uow.execute(
                update(UploadSession)
                .where(UploadSession.id == session_id, UploadSession.state == old)
                .values(**values)
            )
        )
    if not changed and old == OPEN:
        raise _busy()


class _refusing_session:
    """Like handlers.refusing; `refused` tells afterwards that the error was a refusal, so the session closes for good."""

    def __init__(self, ctx: ServiceContext, session: UploadSession, submission: KnownSubmission) -> None:
        self._ctx, self._session, self._submission = ctx, session, submission
        self.refused = False

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if isinstance(exc, Refusal):
            self.refused = True
            raise rejected(self._ctx, self._submission, self._session.filename, exc) from None
        if isinstance(exc, BlobStoreUnavailable):
            log.warning("blob store unavailable during upload session %s: %s", self._session.id, exc)
            raise refusals.store_unavailable() from exc
        return False
