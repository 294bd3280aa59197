"""Intake HTTP API: a thin router over the handlers."""
from __future__ import annotations

from fastapi import APIRouter, FastAPI, Query
from sqlalchemy import select

from services.intake import handlers, schemas
from services.intake.models import Submission, Unit
from shared.http import health_router, not_found
from shared.runtime import ServiceContext


def create_app(ctx: ServiceContext) -> FastAPI:
    """The intake service's FastAPI application."""
    app = FastAPI(title="intake · 报送受理", description="单位、联络员与报送材料", version="0.1.0")
    router = APIRouter()

    @router.post("/units", status_code=201, response_model=schemas.UnitRead, tags=["units"])
    def create_unit(body: schemas.UnitCreate) -> Unit:
        """Register a unit with its liaison."""
        return handlers.register_unit(body, ctx=ctx)

    @router.get("/units", response_model=list[schemas.UnitRead], tags=["units"])
    def list_units(limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> list[Unit]:
        """List units by code."""
        with ctx.db.session() as uow:
            return list(uow.scalars(select(Unit).order_by(Unit.code).limit(limit).offset(offset)))

    @router.get("/units/{unit_id}", response_model=schemas.UnitRead, tags=["units"])
    def get_unit(unit_id: str) -> Unit:
        """One unit."""
        with ctx.db.session() as uow:
            unit = uow.get(Unit, unit_id)
        if unit is None:
            raise not_found("单位", "unit", unit_id)
        return unit

    @router.put("/units/{unit_id}/liaison", response_model=schemas.UnitRead, tags=["units"])
    def put_liaison(unit_id: str, body: schemas.LiaisonIn) -> Unit:
        """Designate the unit's liaison."""
        return handlers.designate_liaison(unit_id, body, ctx=ctx)

    @router.post("/submissions", status_code=201, response_model=schemas.SubmissionRead, tags=["submissions"])
    def create_submission(body: schemas.SubmissionCreate) -> Submission:
        """Hand in a submission for review."""
        return handlers.submit(body, ctx=ctx)

    @router.get("/submissions", response_model=list[schemas.SubmissionRead], tags=["submissions"])
    def list_submissions(
        unit_id: str | None = None, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)
    ) -> list[Submission]:
        """List submissions, optionally of one unit."""
        query = select(Submission).order_by(Submission.created_at.desc()).limit(limit).offset(offset)
        if unit_id:
            query = query.where(Submission.unit_id == unit_id)
        with ctx.db.session() as uow:
            return list(uow.scalars(query))

    @router.get("/submissions/{submission_id}", response_model=schemas.SubmissionRead, tags=["submissions"])
    def get_submission(submission_id: str) -> Submission:
        """One submission with its state."""
        with ctx.db.session() as uow:
            submission = uow.get(Submission, submission_id)
        if submission is None:
            raise not_found("报送材料", "submission", submission_id)
        return submission

    app.include_router(router)
    app.include_router(health_router({"database": ctx.db.health}))
    return app
