"""Assessment and circular routes (考核、通报).

Staff read every unit's score; a unit reads only its own subtree's rows (ranks are still counted over
the whole level). Admins make and publish circulars; a unit sees a circular once it is published,
and downloads its .docx (the document as issued); the .xlsx, the snapshot and verify are for staff.
"""
from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from services.review import assessment as scoring
from services.review import circulars
from services.review.assessment_schemas import (
    AssessmentRead, CircularCreate, CircularRead, CircularVerification, UnitScore, level_sizes, unit_score,
)
from services.review.models import Circular, ReviewUnit
from shared.auth import ADMIN, INSPECTOR, REVIEWER, STAFF, UNIT, Principal, can_see_unit, forbidden, require
from shared.clock import as_utc
from shared.http import not_found
from shared.request_context import request_info
from shared.runtime import ServiceContext

READERS = (ADMIN, REVIEWER, INSPECTOR, UNIT)
FileKind = Literal["docx", "xlsx", "snapshot"]


def router(ctx: ServiceContext) -> APIRouter:
    """The assessment and circular routes."""
    router = APIRouter()

    def assessed(campaign_id: str, as_of: str | None) -> scoring.Assessment:
        now = as_utc(ctx.clock.now())
        with ctx.db.session() as uow:
            campaign = scoring.load_campaign(uow, campaign_id)
            # A future moment would call deadlines between now and then missed: what is known is as of now.
            moment = min(scoring.parse_as_of(as_of, campaign.zone, now), now)
            return scoring.compute(uow, campaign_id, moment)

    @router.get("/assessment", response_model=AssessmentRead, tags=["assessment"])
    def assessment(campaign_id: str = Query(..., max_length=36),
                   as_of: str | None = Query(None, max_length=40, description="ISO date (end of that day) or datetime; default now"),
                   principal: Principal = Depends(require(*READERS))) -> AssessmentRead:
        """Every participating unit's score and rank within its level, as of a moment (考核得分)."""
        result = assessed(campaign_id, as_of)
        sizes = level_sizes(result)
        rows = [unit_score(u, sizes[u.level]) for _, units in result.by_level() for u in units
                if can_see_unit(principal, u.unit_path, u.unit_id)]
        return AssessmentRead(campaign_id=campaign_id, campaign_name=result.campaign.name, as_of=result.as_of,
                              max_total=float(result.campaign.rubric.get("total", 100)), units=rows)

    @router.get("/assessment/units/{unit_id}", response_model=UnitScore, tags=["assessment"])
    def unit_assessment(unit_id: str, campaign_id: str | None = Query(None, max_length=36),
                        as_of: str | None = Query(None, max_length=40),
                        principal: Principal = Depends(require(*READERS))) -> UnitScore:
        """One unit's score with every line behind it, as of a moment."""
        missing = not_found("参加考核的单位", "assessed unit", unit_id)
        with ctx.db.session() as uow:
            unit = uow.get(ReviewUnit, unit_id)
        if unit is None or not can_see_unit(principal, unit.unit_path, unit.unit_id):
            raise missing
        if not (campaign_id or unit.campaign_id):
            raise missing
        result = assessed(campaign_id or unit.campaign_id, as_of)
        found = result.unit(unit_id)
        if found is None:
            raise missing
        return unit_score(found, level_sizes(result)[found.level])

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
    def create_circular(body: CircularCreate, request: Request,
                        principal: Principal = Depends(require(ADMIN))) -> CircularRead:
        """Freeze the assessment for a period into a new draft revision with its .docx, .xlsx and snapshot (admins)."""
        return read(circulars.create(ctx, campaign_id=body.campaign_id, period=body.period, as_of=body.as_of,
                                     title=body.title, document_number=body.document_number, principal=principal,
                                     request=request_info(request)))

    @router.get("/circulars", response_model=list[CircularRead], tags=["circulars"])
    def list_circulars(campaign_id: str | None = Query(None, max_length=36), limit: int = Query(100, ge=1, le=1000),
                       offset: int = Query(0, ge=0), principal: Principal = Depends(require(*READERS))) -> list[CircularRead]:
        """Circulars, newest first (a unit sees published ones only)."""
        query = select(Circular)
        if campaign_id:
            query = query.where(Circular.campaign_id == campaign_id)
        if not principal.is_staff:
            query = query.where(Circular.state == "published")
        with ctx.db.session() as uow:
            rows = uow.scalars(query.order_by(Circular.created_at.desc(), Circular.period, Circular.revision.desc())
                               .limit(limit).offset(offset)).all()
        return [read(row) for row in rows]

    @router.get("/circulars/{circular_id}", response_model=CircularRead, tags=["circulars"])
    def get_circular(circular_id: str, principal: Principal = Depends(require(*READERS))) -> CircularRead:
        """One circular."""
        return read(visible_circular(circular_id, principal))

    @router.get("/circulars/{circular_id}/files/{file_kind}", tags=["circulars"],
                response_class=StreamingResponse, responses={200: {"content": {"application/octet-stream": {}}}})
    def circular_file(circular_id: str, file_kind: FileKind,
                      principal: Principal = Depends(require(*READERS))) -> StreamingResponse:
        """The circular's .docx, .xlsx or snapshot JSON, streamed from the blob store (units: the published .docx)."""
        row = visible_circular(circular_id, principal)
        if not principal.is_staff and file_kind != "docx":
            raise forbidden()
        chunks, media_type, name = circulars.open_file(ctx, row, file_kind)
        fallback = circulars.FILES[file_kind][0]
        return StreamingResponse(chunks, media_type=media_type, headers={
            "Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff"})

    @router.get("/circulars/{circular_id}/verify", response_model=CircularVerification, tags=["circulars"])
    def verify_circular(circular_id: str, principal: Principal = Depends(require(*STAFF))) -> CircularVerification:
        """Re-hash the stored snapshot and compare it with the SHA-256 recorded when the circular was made."""
        return CircularVerification(**circulars.verify(ctx, visible_circular(circular_id, principal)))

    @router.post("/circulars/{circular_id}/publish", response_model=CircularRead, tags=["circulars"])
    def publish_circular(circular_id: str, request: Request,
                         principal: Principal = Depends(require(ADMIN))) -> CircularRead:
        """Publish a draft once (circular.published); 409 when it was published already (admins)."""
        return read(circulars.publish(ctx, circular_id, principal=principal, request=request_info(request)))

    return router
