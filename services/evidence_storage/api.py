"""Evidence HTTP API: a thin router over the use cases. Request bodies are pulled chunk by chunk from a worker
thread, so uploads of any size stream into the store with flat memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Literal, TypeVar
from urllib.parse import quote

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select
from starlette.requests import ClientDisconnect

from services.evidence_storage import downloads, exports, handlers, ingest, integrity, ocr, refusals, uploads
from services.evidence_storage.access import Caller, caller_of, check_access, check_uploader
from services.evidence_storage.duplicates import duplicate_views
from services.evidence_storage.formdata import MAX_FILES, MultipartFiles
from services.evidence_storage.models import (
    AUDIT,
    Evidence,
    EvidenceRendition,
    IntegrityCheck,
    KnownSubmission,
    UploadSession,
)
from services.evidence_storage.schemas import (
    CompleteRequest,
    DownloadUrl,
    DuplicateRead,
    EvidenceRead,
    IntegrityRead,
    IntegrityRequest,
    PresignedForm,
    RenditionRead,
    SessionCreate,
    SessionRead,
)
from services.evidence_storage.streams import ChunkPullReader, ReadAhead
from shared import grants as grants_module
from shared.audit import AuditEntry
from shared.auth import ADMIN, INSPECTOR, STAFF, UNIT, Principal, install, require, verifier_from_settings
from shared.blobs.port import PresignedPost
from shared.bounds import MAX_BYTES, Limit
from shared.clock import as_utc
from shared.grants import GrantVerifier
from shared.health import install_health
from shared.http import not_found
from shared.observe import NATIVE_TELEMETRY_OFF, observe
from shared.ops import ops_router
from shared.problems import problem_response
from shared.runtime import ServiceContext
from shared.version import platform_version

T = TypeVar("T")
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": _BINARY,
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"files": {"type": "array", "items": _BINARY}}}
            },
        },
    }
}
UPLOADER = caller_of(
    ADMIN, UNIT, INSPECTOR
)  # uploads, sessions, deletions: the unit, an inspector (inspections only), an admin
READER = caller_of()  # any role; a unit only its own subtree's evidence
_CHUNK_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": _BINARY}}}
MULTIPART_OVERHEAD = 64 * 1024  # room for multipart boundaries and part headers around the files


GRANT = Header(
    None,
    alias=grants_module.HEADER,
    description=(
        "intake 创建报送材料时返回的 upload_grant，使刚创建的材料可立即上传 · the upload_grant from intake's create "
        "response: lets an upload in before this service has heard of the submission"
    ),
)


def create_app(ctx: ServiceContext) -> FastAPI:
    """The evidence_storage service's FastAPI application."""
    app = FastAPI(
        telemetry=NATIVE_TELEMETRY_OFF,
        title="evidence_storage · 佐证资料",
        version=platform_version(),
        description=(
            "上传、检查、保存与下载佐证资料。Upload (streamed, resumable sessions, presigned POST to S3), inspect, keep and "
            "export evidence. Every route but /healthz needs a bearer token; a unit sees only its own subtree's evidence."
        ),
    )
    install(app, verifier_from_settings(ctx.settings))
    observe(app, ctx)  # request ids in logs, access lines, HTTP metrics, /metrics (shared/observe.py)
    app.include_router(ops_router(ctx, AUDIT))  # /ops: parking lot, outbox errors, lag (admins)
    router = APIRouter()

    grants = GrantVerifier(ctx.settings)

    def submission_visible(caller: Caller, submission_id: str, grant: str | None = None) -> None:
        """404 for a submission of a unit outside the caller's subtree (an unknown one is left to the use case, unless
        intake's upload grant vouches for it); 403 for an inspector's upload to a unit's submission, or a unit's to an
        inspection."""
        with ctx.db.session() as uow:
            submission = uow.get(KnownSubmission, submission_id)
        if submission is None and grant:
            submission = handlers.admit_granted(ctx, submission_id, grant, grants)
        if submission is not None:
            check_access(
                caller,
                not_found("报送材料", "submission", submission_id),
                unit_path=submission.unit_path,
                unit_id=submission.unit_id,
            )
            check_uploader(caller, submission.state)

    def session_visible(caller: Caller, session_id: str) -> None:
        """404 for an upload session whose submission belongs to a unit outside the caller's subtree."""
        with ctx.db.session() as uow:
            session = uow.get(UploadSession, session_id)
            submission = uow.get(KnownSubmission, session.submission_id) if session is not None else None
        if session is not None:
            check_access(
                caller,
                not_found("上传会话", "upload session", session_id),
                unit_path=submission.unit_path if submission else None,
                unit_id=session.unit_id,
            )
            check_uploader(caller, submission.state if submission else None)

    def view(evidence: Evidence, caller: Caller) -> EvidenceRead:
        return views([evidence], caller)[0]

    def views(rows: list[Evidence], caller: Caller) -> list[EvidenceRead]:
        with ctx.db.session() as uow:
            flags = duplicate_views(uow, rows, caller.principal)
            videos = [row.id for row in rows if row.category == "video"]
            copies = (
                {
                    c.evidence_id: RenditionRead.model_validate(c)
                    for c in uow.scalars(
                        select(EvidenceRendition).where(EvidenceRendition.evidence_id.in_(videos))
                    )
                }
                if videos
                else {}
            )
        return [
            EvidenceRead.model_validate(row).model_copy(
                update={
                    "has_preview": row.thumbnail_key is not None,
                    "duplicates": [DuplicateRead.model_validate(found) for found in flags[row.id]],
                    "rendition": copies.get(row.id),
                }
            )
            for row in rows
        ]

    @router.post(
        "/submissions/{submission_id}/evidence",
        status_code=201,
        response_model=EvidenceRead | list[EvidenceRead],
        tags=["upload"],
        openapi_extra=_UPLOAD_BODY,
    )
    async def upload(
        submission_id: str,
        request: Request,
        filename: str | None = Query(None, max_length=1000),
        caller: Caller = Depends(UPLOADER),
        grant: str | None = GRANT,
    ):
        """Upload as the raw body (one file, `?filename=` for display) or as multipart/form-data (several files,
        all accepted or none). Streamed to the store, never held whole in memory; the type is judged from the bytes."""
        multipart = request.headers.get("content-type", "").lower().startswith("multipart/form-data")
        _refuse_declared_over_limit(
            request, ingest.largest_limit(ctx.settings) * (MAX_FILES if multipart else 1)
        )
        await _in_thread(lambda: submission_visible(caller, submission_id, grant))
        async with _body(request) as next_chunk:
            if multipart:
                content_type = request.headers["content-type"]
                rows = await _in_thread(
                    lambda: handlers.store_form(
                        submission_id, MultipartFiles(content_type, next_chunk), ctx=ctx, actor=caller.actor
                    )
                )
                return views(rows, caller)
            row = await _in_thread(
                lambda: handlers.store_evidence(
                    submission_id, filename, ChunkPullReader(next_chunk), ctx=ctx, actor=caller.actor
                )
            )
        return view(row, caller)

    @router.get("/submissions/{submission_id}/evidence", response_model=list[EvidenceRead], tags=["evidence"])
    def list_evidence(submission_id: str, caller: Caller = Depends(READER)) -> list[EvidenceRead]:
        """The evidence files of one submission, with duplicate flags (404 until this service has heard of it)."""
        return views(downloads.list_for_submission(submission_id, caller, ctx=ctx), caller)

    @router.get("/evidence/{evidence_id}", response_model=EvidenceRead, tags=["evidence"])
    def get_evidence(evidence_id: str, caller: Caller = Depends(READER)) -> EvidenceRead:
        """Metadata of one evidence file: checksum, type, dimensions, capture time and place, duplicates, lock."""
        return view(downloads.evidence_for(evidence_id, caller, ctx=ctx), caller)

    @router.get("/evidence/{evidence_id}/content", tags=["download"])
    def download(
        evidence_id: str,
        variant: Literal["original", "web"] = Query(
            "original", description="web: a video's web-playable copy when one is ready, else the original"
        ),
        caller: Caller = Depends(READER),
    ) -> StreamingResponse:
        """Stream the stored bytes (written to the audit log); X-Evidence-Variant says which object answered."""
        served, chunks = downloads.open_served(evidence_id, caller, variant, ctx=ctx)
        return StreamingResponse(
            chunks,
            media_type=served.media_type,
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(served.filename)}",
                "Content-Length": str(served.size),
                "X-Content-SHA256": served.sha256,
                "X-Content-Type-Options": "nosniff",
                "X-Evidence-Variant": served.variant,
            },
        )

    @router.get("/evidence/{evidence_id}/preview", tags=["download"])
    def preview(evidence_id: str, caller: Caller = Depends(READER)) -> StreamingResponse:
        """The thumbnail (photo) or poster frame (video) as JPEG (written to the audit log)."""
        _, chunks = downloads.open_content(evidence_id, caller, ctx=ctx, preview=True)
        return StreamingResponse(
            chunks, media_type="image/jpeg", headers={"X-Content-Type-Options": "nosniff"}
        )

    @router.post("/evidence/{evidence_id}/download-url", response_model=DownloadUrl, tags=["download"])
    def download_url(
        evidence_id: str,
        variant: Literal["original", "web"] = Query("original"),
        caller: Caller = Depends(READER),
    ) -> DownloadUrl:
        """A short-lived presigned URL straight to the object, or (variant=web) a video's web-playable copy when
        one is ready (S3 only; written to the audit log)."""
        _, url, expires_at = downloads.presigned_download(evidence_id, caller, ctx=ctx, variant=variant)
        return DownloadUrl(url=url, expires_at=expires_at)

    @router.delete("/evidence/{evidence_id}", status_code=204, tags=["evidence"])
    def delete(evidence_id: str, caller: Caller = Depends(UPLOADER)) -> None:
        """Delete evidence that is not yet locked; approved (locked) proof is refused."""
        with ctx.db.session() as uow:
            evidence = uow.get(Evidence, evidence_id)
            owner = uow.get(KnownSubmission, evidence.submission_id) if evidence is not None else None
        if evidence is not None and owner is not None:
            check_access(
                caller,
                not_found("佐证资料", "evidence", evidence_id),
                unit_path=evidence.unit_path,
                unit_id=evidence.unit_id,
            )
            check_uploader(caller, owner.state)
        handlers.delete_evidence(evidence_id, ctx=ctx, caller=caller)

    @router.post(
        "/submissions/{submission_id}/upload-sessions",
        status_code=201,
        response_model=SessionRead,
        tags=["upload"],
    )
    def create_session(
        submission_id: str, body: SessionCreate, caller: Caller = Depends(UPLOADER), grant: str | None = GRANT
    ) -> SessionRead:
        """Open a resumable chunked session, or a presigned POST straight to S3 (501 on the folder store)."""
        submission_visible(caller, submission_id, grant)
        session, form = uploads.create_session(
            submission_id,
            mode=body.mode,
            filename=body.filename,
            size=body.size,
            sha256=body.sha256,
            content_type=body.content_type,
            ctx=ctx,
            actor=caller.actor,
        )
        return session_view(session, form)

    @router.get("/upload-sessions/{session_id}", response_model=SessionRead, tags=["upload"])
    def get_session(session_id: str, caller: Caller = Depends(UPLOADER)) -> SessionRead:
        """How far a session got: `received` is the offset to resume from after a cut."""
        session_visible(caller, session_id)
        return session_view(uploads.get_session(session_id, ctx=ctx))

    @router.head("/upload-sessions/{session_id}", tags=["upload"])
    def head_session(session_id: str, caller: Caller = Depends(UPLOADER)) -> Response:
        """The received offset in the Upload-Offset header."""
        session_visible(caller, session_id)
        session = uploads.get_session(session_id, ctx=ctx)
        return Response(
            headers={
                "Upload-Offset": str(session.received),
                "Upload-Length": str(session.size),
                "Cache-Control": "no-store",
            }
        )

    @router.put(
        "/upload-sessions/{session_id}",
        response_model=SessionRead,
        tags=["upload"],
        openapi_extra=_CHUNK_BODY,
    )
    async def put_chunk(
        session_id: str,
        request: Request,
        offset: int | None = Query(None, ge=0, le=MAX_BYTES),
        caller: Caller = Depends(UPLOADER),
    ) -> SessionRead:
        """Send the next chunk, starting at the received offset (`?offset=` or `Content-Range: bytes a-b/size`)."""
        await _in_thread(lambda: session_visible(caller, session_id))
        content_range = request.headers.get("content-range")
        async with _body(request) as next_chunk:
            reader = ChunkPullReader(next_chunk)
            session = await _in_thread(
                lambda: uploads.put_chunk(
                    session_id, reader, offset=offset, content_range=content_range, ctx=ctx
                )
            )
        return session_view(session)

    @router.post(
        "/upload-sessions/{session_id}/complete",
        response_model=EvidenceRead,
        status_code=201,
        tags=["upload"],
    )
    def complete(
        session_id: str,
        response: Response,
        body: CompleteRequest | None = None,
        caller: Caller = Depends(UPLOADER),
    ) -> EvidenceRead:
        """Check the whole upload (size, type from its bytes, SHA-256) and make it evidence; repeating it is harmless."""
        session_visible(caller, session_id)
        evidence, created = uploads.complete(
            session_id, sha256=body.sha256 if body else None, ctx=ctx, actor=caller.actor
        )
        if not created:
            response.status_code = 200
        return view(evidence, caller)

    @router.delete("/upload-sessions/{session_id}", status_code=204, tags=["upload"])
    def abort_session(session_id: str, caller: Caller = Depends(UPLOADER)) -> None:
        """Give up an unfinished session; what it stored is removed."""
        session_visible(caller, session_id)
        uploads.abort(session_id, ctx=ctx)

    @router.get("/units/{unit_id}/export.zip", tags=["export"])
    def export_unit(unit_id: str, caller: Caller = Depends(READER)) -> StreamingResponse:
        """A unit's approved evidence as a ZIP (unit/measure/file + manifest.csv), streamed as it is made."""
        return _zip_response(*exports.export_zip(unit_id=unit_id, caller=caller, ctx=ctx))

    @router.get("/campaigns/{campaign_id}/export.zip", tags=["export"])
    def export_campaign(campaign_id: str, caller: Caller = Depends(caller_of(*STAFF))) -> StreamingResponse:
        """A campaign's approved evidence as a ZIP (unit/measure/file + manifest.csv), streamed as it is made."""
        return _zip_response(*exports.export_zip(campaign_id=campaign_id, caller=caller, ctx=ctx))

    @router.post("/integrity-checks", response_model=IntegrityRead, status_code=202, tags=["ops"])
    def check_integrity(
        body: IntegrityRequest | None = None, _admin: Principal = Depends(require(ADMIN))
    ) -> IntegrityCheck:
        """Queue a re-hash of stored objects (all, or a random sample); the evidence worker runs it and
        GET /integrity-checks/{id} shows its progress (checked of total) and mismatches, missing and orphan objects."""
        return integrity.request_check(sample=body.sample if body else None, ctx=ctx)

    @router.get("/integrity-checks/{check_id}", response_model=IntegrityRead, tags=["ops"])
    def integrity_check(check_id: str, _admin: Principal = Depends(require(ADMIN))) -> IntegrityCheck:
        """One integrity check: its state (queued, running, done, failed), progress and findings so far."""
        with ctx.db.session() as uow:
            found = uow.get(IntegrityCheck, check_id)
        if found is None:
            raise not_found("完整性检查", "integrity check", check_id)
        return found

    @router.get("/integrity-checks", response_model=list[IntegrityRead], tags=["ops"])
    def integrity_history(
        limit: int = Query(20, ge=1, le=200), _admin: Principal = Depends(require(ADMIN))
    ) -> list[IntegrityCheck]:
        """The latest integrity-check runs."""
        with ctx.db.session() as uow:
            return list(
                uow.scalars(select(IntegrityCheck).order_by(IntegrityCheck.started_at.desc()).limit(limit))
            )

    @router.get("/audit-log", response_model=list[AuditEntry], tags=["ops"])
    def audit_log(
        evidence_id: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        actor_id: str | None = None,
        limit: Limit = 100,
        _admin: Principal = Depends(require(ADMIN)),
    ) -> list[AuditEntry]:
        """Who downloaded, exported or deleted which evidence, newest first; admins only (actor: name, actor_id: id)."""
        query = select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit)
        for column, value in (
            ("resource_id", evidence_id),
            ("action", action),
            ("actor_name", actor),
            ("actor_id", actor_id),
        ):
            if value is not None:
                query = query.where(AUDIT.c[column] == value)
        with ctx.db.session() as uow:
            rows = uow.execute(query).mappings().all()
        return [AuditEntry.model_validate({**row, "at": as_utc(row["at"])}) for row in rows]

    def session_view(session: UploadSession, form: PresignedPost | None = None) -> SessionRead:
        return SessionRead.model_validate(session).model_copy(
            update={
                "min_chunk_bytes": ctx.blob_store.min_compose_part,
                "presigned": PresignedForm(url=form.url, fields=form.fields, expires_at=form.expires_at)
                if form
                else None,
            }
        )

    app.include_router(router)
    # an ops note, never a failure: whether the worker can read photos' text ("OCR 未安装" otherwise)
    install_health(app, ctx).add("ocr", lambda: ocr.state(ctx))

    @app.exception_handler(ClientDisconnect)
    async def client_went_away(request: Request, exc: ClientDisconnect) -> JSONResponse:
        return problem_response(
            request,
            400,
            "upload_interrupted",
            "上传连接中断，未保存；分片上传可从已接收位置续传",
            "the upload connection was cut; nothing was saved (a chunked session can resume)",
        )

    return app


def _refuse_declared_over_limit(request: Request, limit: int) -> None:
    """413 at once when the declared Content-Length is past the limit: not one byte of the body is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise refusals.too_large("", limit).as_api_error()


READ_AHEAD = 8 * 1024 * 1024  # request body received ahead of the worker thread: about one S3 part


@contextlib.asynccontextmanager
async def _body(request: Request) -> AsyncIterator[Callable[[], bytes]]:
    """A blocking function, for a worker thread, that returns the body's next bytes (b"" at the end), received
    ahead on the event loop (streams.ReadAhead) while the thread stores what it took."""
    pump = ReadAhead(request.stream(), READ_AHEAD)
    task = asyncio.ensure_future(pump.run())
    try:
        yield pump.take
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _in_thread(work: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(work)


def _zip_response(name: str, chunks) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="application/zip",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )
