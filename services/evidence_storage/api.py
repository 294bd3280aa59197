"""Evidence HTTP API: streamed uploads and downloads, a thin router over the handlers."""
from __future__ import annotations

from urllib.parse import quote

import anyio
import anyio.from_thread
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from services.evidence_storage import handlers
from services.evidence_storage.models import Evidence, KnownSubmission
from services.evidence_storage.schemas import EvidenceRead
from services.evidence_storage.streams import ChunkPullReader
from shared.http import health_router, not_found
from shared.runtime import ServiceContext


def create_app(ctx: ServiceContext) -> FastAPI:
    """The evidence_storage service's FastAPI application."""
    app = FastAPI(title="evidence_storage · 佐证资料", description="上传、保存与下载佐证资料", version="0.1.0")
    router = APIRouter()

    @router.post(
        "/submissions/{submission_id}/evidence",
        status_code=201,
        response_model=EvidenceRead,
        tags=["evidence"],
        openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, "required": True}},
    )
    async def upload(submission_id: str, request: Request, filename: str | None = Query(None, max_length=1000)) -> Evidence:
        """Upload one file as the raw request body; it is streamed to the store, never held whole in memory."""
        chunks = request.stream().__aiter__()

        async def next_chunk() -> bytes:
            try:
                return await chunks.__anext__()
            except StopAsyncIteration:
                return b""

        reader = ChunkPullReader(lambda: anyio.from_thread.run(next_chunk))
        return await anyio.to_thread.run_sync(lambda: handlers.store_evidence(submission_id, filename, reader, ctx=ctx))

    @router.get("/submissions/{submission_id}/evidence", response_model=list[EvidenceRead], tags=["evidence"])
    def list_evidence(submission_id: str) -> list[Evidence]:
        """The evidence files of one submission (404 until this service has heard of the submission)."""
        with ctx.db.session() as uow:
            if uow.get(KnownSubmission, submission_id) is None:
                raise not_found("报送材料", "submission", submission_id)
            return list(uow.scalars(select(Evidence).where(Evidence.submission_id == submission_id).order_by(Evidence.created_at)))

    @router.get("/evidence/{evidence_id}", response_model=EvidenceRead, tags=["evidence"])
    def get_evidence(evidence_id: str) -> Evidence:
        """Metadata of one evidence file."""
        return _load(evidence_id)

    @router.get("/evidence/{evidence_id}/content", tags=["evidence"])
    def download(evidence_id: str) -> StreamingResponse:
        """Stream the stored bytes back."""
        evidence = _load(evidence_id)
        disposition = f"attachment; filename*=UTF-8''{quote(evidence.filename)}"
        return StreamingResponse(
            ctx.blobs.read(evidence.object_key),
            media_type=evidence.media_type,
            headers={"Content-Disposition": disposition, "Content-Length": str(evidence.size), "X-Content-SHA256": evidence.sha256},
        )

    @router.delete("/evidence/{evidence_id}", status_code=204, tags=["evidence"])
    def delete(evidence_id: str) -> None:
        """Delete evidence that is not yet locked as assessment proof."""
        handlers.delete_evidence(evidence_id, ctx=ctx)

    def _load(evidence_id: str) -> Evidence:
        with ctx.db.session() as uow:
            evidence = uow.get(Evidence, evidence_id)
        if evidence is None:
            raise not_found("佐证资料", "evidence", evidence_id)
        return evidence

    app.include_router(router)
    app.include_router(health_router({"database": ctx.db.health, "blob_store": ctx.blobs.health}))
    return app
