"""Circular routes (通报).

Admins make and publish circulars; a unit sees a circular once it is published, and downloads its
.docx (the document as issued); the .xlsx, the snapshot and verify are for staff.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from services.review.circulars import use_cases as circulars
from services.review.circulars.schemas import CircularCreate, CircularRead, CircularVerification
from services.review.models import Circular
from shared.auth import ADMIN, INSPECTOR, REVIEWER, STAFF, UNIT, Principal, forbidden, require
from shared.bounds import Limit, Offset
from shared.clock import as_utc
from shared.http import not_found
from shared.request_context import request_info
from shared.runtime import ServiceContext

READERS = (ADMIN, REVIEWER, INSPECTOR, UNIT)  # a unit sees published circulars only
FileKind = Literal["docx", "xlsx", "snapshot"]


def router(ctx: ServiceContext) -> APIRouter:
    """The circular routes."""
    router = APIRouter()

    def read(row: Circular) -> CircularRead:
        out = CircularRead.model_validate(row)
        out.as_of, out.created_at = as_utc(row.as_of), as_utc(row.created_at)
        out.published_at = as_utc(row.published_at) if row.published_at else None
        out.files = {kind: f"/review/circulars/{row.id}/files/{kind}" for kind in circulars.FILES}
        return out

    def visible_circular(circular_id: str, principal: Principal) -> Circular:
        with ctx.db.session() as uow:
            row = uow.get(Circular, circular_id)
        if row is None or (not principal.is_staff and row.state != "published"):
            raise not_found("通报", "circular", circular_id)
        return row

    @router.post("/circulars", response_model=CircularRead, status_code=201, tags=["circulars"])
    def create_circular(
        body: CircularCreate, request: Request, principal: Principal = Depends(require(ADMIN))
    ) -> CircularRead:
        """Freeze the assessment for a period into a new draft revision with its .docx, .xlsx and snapshot (admins)."""
        return read(
            circulars.create(
                ctx,
                campaign_id=body.campaign_id,
                period=body.period,
                as_of=body.as_of,
                title=body.title,
                document_number=body.document_number,
                principal=principal,
                request=request_info(request),
            )
        )

    @router.get("/circulars", response_model=list[CircularRead], tags=["circulars"])
    def list_circulars(
        campaign_id: str | None = Query(None, max_length=36),
        limit: Limit = 100,
        offset: Offset = 0,
        principal: Principal = Depends(require(*READERS)),
    ) -> list[CircularRead]:
        """Circulars, newest first (a unit sees published ones only)."""
        query = select(Circular)
        if campaign_id:
            query = query.where(Circular.campaign_id == campaign_id)
        if not principal.is_staff:
            query = query.where(Circular.state == "published")
        with ctx.db.session() as uow:
            rows = uow.scalars(
                query.order_by(Circular.created_at.desc(), Circular.period, Circular.revision.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        return [read(row) for row in rows]

    @router.get("/circulars/{circular_id}", response_model=CircularRead, tags=["circulars"])
    def get_circular(circular_id: str, principal: Principal = Depends(require(*READERS))) -> CircularRead:
        """One circular."""
        return read(visible_circular(circular_id, principal))

    @router.get(
        "/circulars/{circular_id}/files/{file_kind}",
        tags=["circulars"],
        response_class=StreamingResponse,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    def circular_file(
        circular_id: str, file_kind: FileKind, principal: Principal = Depends(require(*READERS))
    ) -> StreamingResponse:
        """The circular's .docx, .xlsx or snapshot JSON, streamed from the blob store (units: the published .docx)."""
        row = visible_circular(circular_id, principal)
        if not principal.is_staff and file_kind != "docx":
            raise forbidden()
        chunks, media_type, name = circulars.open_file(ctx, row, file_kind)
        fallback = circulars.FILES[file_kind][0]
        return StreamingResponse(
            chunks,
            media_type=media_type,
            headers={
                "Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @router.get("/circulars/{circular_id}/verify", response_model=CircularVerification, tags=["circulars"])
    def verify_circular(
        circular_id: str, principal: Principal = Depends(require(*STAFF))
    ) -> CircularVerification:
        """Re-hash the stored snapshot and compare it with the SHA-256 recorded when the circular was made."""
        return CircularVerification(**circulars.verify(ctx, visible_circular(circular_id, principal)))

    @router.post("/circulars/{circular_id}/publish", response_model=CircularRead, tags=["circulars"])
    def publish_circular(
        circular_id: str, request: Request, principal: Principal = Depends(require(ADMIN))
    ) -> CircularRead:
        """Publish a draft once (circular.published); 409 when it was published already (admins)."""
        return read(circulars.publish(ctx, circular_id, principal=principal, request=request_info(request)))

    return router
