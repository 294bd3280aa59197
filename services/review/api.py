"""Review HTTP API: the queue and the three decisions, for authenticated callers only."""
from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from sqlalchemy import select

from services.review import handlers, schemas
from services.review.models import AUDIT, ReviewEvidence, ReviewItem
from shared import audit
from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT, Principal, ensure_visible, install, require, verifier_from_settings, visible
from shared.http import health_router, not_found
from shared.runtime import ServiceContext

READERS = (ADMIN, REVIEWER, INSPECTOR, UNIT)  # a unit reads only its own subtree's items
DECIDERS = (ADMIN, REVIEWER)


def create_app(ctx: ServiceContext) -> FastAPI:
    """The review service's FastAPI application."""
    app = FastAPI(title="review · 审核", description="审核队列与审核决定", version="0.1.0")
    install(app, verifier_from_settings(ctx.settings))
    router = APIRouter()

    def read(item: ReviewItem) -> schemas.ReviewItemRead:
        with ctx.db.session() as uow:
            evidence = uow.scalars(select(ReviewEvidence).where(ReviewEvidence.submission_id == item.submission_id)).all()
        out = schemas.ReviewItemRead.model_validate(item)
        out.evidence = [schemas.EvidenceBrief.model_validate(e) for e in evidence]
        return out

    def decide(submission_id: str, event_type: str, principal: Principal, request: Request, **decision) -> schemas.ReviewItemRead:
        return read(handlers.decide(submission_id, event_type, reviewer=principal.name, ctx=ctx, principal=principal,
                                    request=audit.request_info(request), **decision))

    @router.get("/queue", response_model=list[schemas.ReviewItemRead], tags=["queue"])
    def queue(state: schemas.QueueState = "pending", unit_id: str | None = None, measure_code: str | None = None,
              limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
              principal: Principal = Depends(require(*READERS))) -> list[schemas.ReviewItemRead]:
        """Review items, oldest first (a unit sees only its own subtree's)."""
        query = select(ReviewItem).where(ReviewItem.state == state,
                                         visible(principal, ReviewItem.unit_path, ReviewItem.unit_id))
        if unit_id:
            query = query.where(ReviewItem.unit_id == unit_id)
        if measure_code:
            query = query.where(ReviewItem.measure_code == measure_code)
        with ctx.db.session() as uow:
            items = uow.scalars(query.order_by(ReviewItem.submitted_at).limit(limit).offset(offset)).all()
        return [read(item) for item in items]

    @router.get("/submissions/{submission_id}", response_model=schemas.ReviewItemRead, tags=["queue"])
    def item(submission_id: str, principal: Principal = Depends(require(*READERS))) -> schemas.ReviewItemRead:
        """One review item with its evidence."""
        with ctx.db.session() as uow:
            found = uow.get(ReviewItem, submission_id)
        missing = not_found("待审核材料", "review item", submission_id)
        if found is None:
            raise missing
        ensure_visible(principal, missing, unit_path=found.unit_path, unit_id=found.unit_id)
        return read(found)

    @router.post("/submissions/{submission_id}/approve", response_model=schemas.ReviewItemRead, tags=["decisions"])
    def approve(submission_id: str, body: schemas.Approve, request: Request,
                principal: Principal = Depends(require(*DECIDERS))) -> schemas.ReviewItemRead:
        """Approve the pending version (reviewers and admins)."""
        return decide(submission_id, "submission.approved", principal, request, version=body.version,
                      comment=body.comment, score=body.score)

    @router.post("/submissions/{submission_id}/return", response_model=schemas.ReviewItemRead, tags=["decisions"])
    def return_(submission_id: str, body: schemas.Return, request: Request,
                principal: Principal = Depends(require(*DECIDERS))) -> schemas.ReviewItemRead:
        """Return the pending version for changes, with a comment (reviewers and admins)."""
        return decide(submission_id, "submission.returned", principal, request, version=body.version, comment=body.comment)

    @router.post("/submissions/{submission_id}/reject", response_model=schemas.ReviewItemRead, tags=["decisions"])
    def reject(submission_id: str, body: schemas.Reject, request: Request,
               principal: Principal = Depends(require(*DECIDERS))) -> schemas.ReviewItemRead:
        """Reject the pending version, with a reason (reviewers and admins)."""
        return decide(submission_id, "submission.rejected", principal, request, version=body.version, comment=body.reason)

    app.include_router(router)
    app.include_router(audit.audit_router(AUDIT, ctx.db))
    app.include_router(health_router({"database": ctx.db.health}))
    return app
