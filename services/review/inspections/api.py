"""Inspection and sampling routes (检查、抽查)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from services.review.inspections import sampling
from services.review.inspections import use_cases as inspections
from services.review.inspections.schemas import (
    CriterionScoreRead,
    InspectionCreate,
    InspectionRead,
    PhotoRead,
    SampledUnit,
    SamplingCreate,
    SamplingRead,
)
from services.review.models import Inspection, ReviewUnit, SamplingDraw
from shared.auth import ADMIN, INSPECTOR, REVIEWER, STAFF, UNIT, Principal, require, visible
from shared.bounds import Limit, Offset
from shared.http import not_found
from shared.request_context import request_info
from shared.runtime import ServiceContext

INSPECTORS = (ADMIN, INSPECTOR)
READERS = (ADMIN, REVIEWER, INSPECTOR, UNIT)  # a unit reads only its own subtree's inspections


def _sampling_view(ctx: ServiceContext, row: SamplingDraw) -> SamplingRead:
    with ctx.db.session() as uow:
        units = {
            u.unit_id: u for u in uow.scalars(select(ReviewUnit).where(ReviewUnit.unit_id.in_(row.selected)))
        }
    out = SamplingRead.model_validate(row)
    out.units = [
        SampledUnit(unit_id=uid, code=units[uid].code, name=units[uid].name, level=units[uid].level)
        for uid in row.selected
        if uid in units
    ]
    out.reproduced = sampling.reproduces(row)
    return out


def _inspection_view(recorded: inspections.Recorded) -> InspectionRead:
    out = InspectionRead.model_validate(recorded.inspection)
    out.max_points = recorded.max_points
    out.scores = [CriterionScoreRead.model_validate(s) for s in recorded.scores]
    out.photos = [PhotoRead.model_validate(p) for p in recorded.photos]
    out.supervision_ids = recorded.supervision_ids
    return out


def router(ctx: ServiceContext) -> APIRouter:
    """The sampling and inspection routes."""
    router = APIRouter()

    @router.post("/samplings", response_model=SamplingRead, status_code=201, tags=["inspections"])
    def draw(
        body: SamplingCreate, request: Request, principal: Principal = Depends(require(*INSPECTORS))
    ) -> SamplingRead:
        """Propose whom to inspect: a reproducible random draw whose seed is recorded (inspectors and admins)."""
        row = sampling.draw(
            ctx,
            campaign_id=body.campaign_id,
            size=body.size,
            level=body.level,
            seed=body.seed,
            principal=principal,
            request=request_info(request),
        )
        return _sampling_view(ctx, row)

    @router.get("/samplings", response_model=list[SamplingRead], tags=["inspections"])
    def samplings(
        campaign_id: str | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
        _staff: Principal = Depends(require(*STAFF)),
    ) -> list[SamplingRead]:
        """Earlier draws, newest first."""
        query = select(SamplingDraw)
        if campaign_id:
            query = query.where(SamplingDraw.campaign_id == campaign_id)
        with ctx.db.session() as uow:
            rows = list(uow.scalars(query.order_by(SamplingDraw.drawn_at.desc()).limit(limit).offset(offset)))
        return [_sampling_view(ctx, row) for row in rows]

    @router.get("/samplings/{sampling_id}", response_model=SamplingRead, tags=["inspections"])
    def one_sampling(sampling_id: str, _staff: Principal = Depends(require(*STAFF))) -> SamplingRead:
        """One draw with its population, seed and selection."""
        with ctx.db.session() as uow:
            row = uow.get(SamplingDraw, sampling_id)
        if row is None:
            raise not_found("抽查记录", "sampling", sampling_id)
        return _sampling_view(ctx, row)

    @router.post("/inspections", response_model=InspectionRead, status_code=201, tags=["inspections"])
    def record(
        body: InspectionCreate, request: Request, principal: Principal = Depends(require(*INSPECTORS))
    ) -> InspectionRead:
        """Record an inspection within the campaign's inspection window; it is scored by the rubric (inspectors and admins)."""
        return _inspection_view(
            inspections.record(ctx, body, principal=principal, request=request_info(request))
        )

    @router.get("/inspections", response_model=list[InspectionRead], tags=["inspections"])
    def listing(
        campaign_id: str | None = None,
        unit_id: str | None = None,
        method: str | None = None,
        inspected_from: date | None = None,
        inspected_to: date | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
        principal: Principal = Depends(require(*READERS)),
    ) -> list[InspectionRead]:
        """Inspections, newest first (a unit sees only its own subtree's)."""
        query = select(Inspection).where(visible(principal, Inspection.unit_path, Inspection.unit_id))
        for column, value in (
            (Inspection.campaign_id, campaign_id),
            (Inspection.unit_id, unit_id),
            (Inspection.method, method),
        ):
            if value:
                query = query.where(column == value)
        if inspected_from:
            query = query.where(Inspection.inspected_on >= inspected_from)
        if inspected_to:
            query = query.where(Inspection.inspected_on <= inspected_to)
        return [_inspection_view(r) for r in inspections.listing(ctx, query, limit=limit, offset=offset)]

    @router.get("/inspections/{inspection_id}", response_model=InspectionRead, tags=["inspections"])
    def one(inspection_id: str, principal: Principal = Depends(require(*READERS))) -> InspectionRead:
        """One inspection with its score breakdown, photos and the supervisions it opened."""
        return _inspection_view(inspections.read(ctx, inspection_id, principal=principal))

    return router
