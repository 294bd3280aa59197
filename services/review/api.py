"""Review HTTP API: the queue and the three decisions."""
from __future__ import annotations

from fastapi import APIRouter, FastAPI, Query
from sqlalchemy import select

from services.review import handlers, schemas
from services.review.models import ReviewEvidence, ReviewItem
from shared.http import health_router, not_found
from shared.runtime import ServiceContext


def create_app(ctx: ServiceContext) -> FastAPI:
    """The review service's FastAPI application."""
    app = FastAPI(title="review · 审核", description="审核队列与审核决定", version="0.1.0")
    router = APIRouter()

    def read(item: ReviewItem) -> schemas.ReviewItemRead:
        with ctx.db.session() as uow:
            evidence = uow.scalars(select(ReviewEvidence).where(ReviewEvidence.submission_id == item.submission_id)).all()
        out = schemas.ReviewItemRead.model_validate(item)
        out.evidence = [schemas.EvidenceBrief.model_validate(e) for e in evidence]
        return out

    @router.get("/queue", response_model=list[schemas.ReviewItemRead], tags=["queue"])
    def queue(state: schemas.QueueState = "pending", unit_id: str | None = None, measure_code: str | None = None,
              limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> list[schemas.ReviewItemRead]:
        """Review items, oldest first."""
        query = select(ReviewItem).where(ReviewItem.state == state)
        if unit_id:
            query = query.where(ReviewItem.unit_id == unit_id)
        if measure_code:
            query = query.where(ReviewItem.measure_code == measure_code)
        with ctx.db.session() as uow:
            items = uow.scalars(query.order_by(ReviewItem.submitted_at).limit(limit).offset(offset)).all()
        return [read(item) for item in items]

    @router.get("/submissions/{submission_id}", response_model=schemas.ReviewItemRead, tags=["queue"])
    def item(submission_id: str) -> schemas.ReviewItemRead:
        """One review item with its evidence."""
        with ctx.db.session() as uow:
            found = uow.get(ReviewItem, submission_id)
        if found is None:
            raise not_found("待审核材料", "review item", submission_id)
        return read(found)

    @router.post("/submissions/{submission_id}/approve", response_model=schemas.ReviewItemRead, tags=["decisions"])
    def approve(submission_id: str, body: schemas.Approve) -> schemas.ReviewItemRead:
        """Approve the pending version."""
        return read(handlers.decide(submission_id, "submission.approved", reviewer=body.reviewer, version=body.version,
                                    comment=body.comment, score=body.score, ctx=ctx))

    @router.post("/submissions/{submission_id}/return", response_model=schemas.ReviewItemRead, tags=["decisions"])
    def return_(submission_id: str, body: schemas.Return) -> schemas.ReviewItemRead:
        """Return the pending version for changes, with a comment."""
        return read(handlers.decide(submission_id, "submission.returned", reviewer=body.reviewer, version=body.version,
                                    comment=body.comment, ctx=ctx))

    @router.post("/submissions/{submission_id}/reject", response_model=schemas.ReviewItemRead, tags=["decisions"])
    def reject(submission_id: str, body: schemas.Reject) -> schemas.ReviewItemRead:
        """Reject the pending version, with a reason."""
        return read(handlers.decide(submission_id, "submission.rejected", reviewer=body.reviewer, version=body.version,
                                    comment=body.reason, ctx=ctx))

    app.include_router(router)
    app.include_router(health_router({"database": ctx.db.health}))
    return app
