"""Review queue HTTP routes: the queue, claims and assignment, decisions (one or in bulk), comments."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from services.review.queue import comments, decisions, schemas
from services.review.queue import use_cases as queue
from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT, Principal, require
from shared.bounds import Limit, Offset
from shared.clock import as_utc
from shared.request_context import request_info
from shared.runtime import ServiceContext

READERS = (ADMIN, REVIEWER, INSPECTOR, UNIT)  # a unit reads only its own subtree's items
DECIDERS = (ADMIN, REVIEWER)
COMMENTERS = (ADMIN, REVIEWER, UNIT)
MAX_AGE_HOURS = 24 * 366 * 10  # ten years: far beyond any campaign, and safe for date arithmetic


def router(ctx: ServiceContext) -> APIRouter:
    """The queue, claim, decision and comment routes."""
    router = APIRouter()

    def decide(
        submission_id: str, event_type: str, principal: Principal, request: Request, **decision
    ) -> schemas.ReviewItemRead:
        decided = decisions.decide(
            submission_id,
            event_type,
            reviewer=principal.name,
            ctx=ctx,
            principal=principal,
            request=request_info(request),
            **decision,
        )
        return queue.show_item(decided, principal=principal, ctx=ctx)

    @router.get("/queue", response_model=list[schemas.ReviewItemRead], tags=["queue"])
    def list_queue(
        state: schemas.QueueState = "pending",
        unit_id: str | None = None,
        measure_code: str | None = None,
        kind: schemas.SubmissionKind | None = None,
        campaign_id: str | None = None,
        assigned_to: str | None = Query(None, max_length=100, description='user id, "me" or "none"'),
        claimed_by: str | None = Query(
            None, max_length=100, description='user id, "me" or "none" (live claims only)'
        ),
        flag: schemas.QueueFlag | None = None,
        text_finding: schemas.TextFinding | None = Query(
            None, description="the text read in its photos (OCR): keywords_found, no_campaign_text, unread"
        ),
        text: str | None = Query(None, max_length=100, description="words searched in the photos' text"),
        older_than_hours: float | None = Query(None, ge=0, le=MAX_AGE_HOURS),
        newer_than_hours: float | None = Query(None, ge=0, le=MAX_AGE_HOURS),
        limit: Limit = 100,
        offset: Offset = 0,
        principal: Principal = Depends(require(*READERS)),
    ) -> list[schemas.ReviewItemRead]:
        """Review items, oldest first, with filters (a unit sees only its own subtree's)."""
        filters = queue.QueueFilter(
            state=state,
            unit_id=unit_id,
            measure_code=measure_code,
            kind=kind,
            campaign_id=campaign_id,
            assigned_to=assigned_to,
            claimed_by=claimed_by,
            flag=flag,
            text_finding=text_finding,
            text=text,
            older_than_hours=older_than_hours,
            newer_than_hours=newer_than_hours,
            limit=limit,
            offset=offset,
        )
        return queue.list_queue(filters, principal=principal, ctx=ctx)

    @router.get("/submissions/{submission_id}", response_model=schemas.ReviewItemRead, tags=["queue"])
    def item(submission_id: str, principal: Principal = Depends(require(*READERS))) -> schemas.ReviewItemRead:
        """One review item with its evidence and flags."""
        return queue.read_item(submission_id, principal=principal, ctx=ctx)

    @router.post("/submissions/{submission_id}/claim", response_model=schemas.ReviewItemRead, tags=["queue"])
    def claim(
        submission_id: str,
        request: Request,
        body: schemas.Claim | None = None,
        principal: Principal = Depends(require(*DECIDERS)),
    ) -> schemas.ReviewItemRead:
        """Take the pending version to review; 409 while another reviewer's claim is live."""
        return queue.claim(
            submission_id,
            version=body.version if body else None,
            principal=principal,
            ctx=ctx,
            request=request_info(request),
        )

    @router.post(
        "/submissions/{submission_id}/release", response_model=schemas.ReviewItemRead, tags=["queue"]
    )
    def release(
        submission_id: str, request: Request, principal: Principal = Depends(require(*DECIDERS))
    ) -> schemas.ReviewItemRead:
        """Give a claimed version back to the queue (the claim holder or an admin)."""
        return queue.release(submission_id, principal=principal, ctx=ctx, request=request_info(request))

    @router.post("/submissions/{submission_id}/assign", response_model=schemas.ReviewItemRead, tags=["queue"])
    def assign(
        submission_id: str,
        body: schemas.Assign,
        request: Request,
        principal: Principal = Depends(require(*DECIDERS)),
    ) -> schemas.ReviewItemRead:
        """Assign the pending item to a reviewer (user id or "me"; null removes the assignment)."""
        return queue.assign(
            submission_id, reviewer=body.reviewer, principal=principal, ctx=ctx, request=request_info(request)
        )

    @router.post(
        "/submissions/{submission_id}/approve", response_model=schemas.ReviewItemRead, tags=["decisions"]
    )
    def approve(
        submission_id: str,
        body: schemas.Approve,
        request: Request,
        principal: Principal = Depends(require(*DECIDERS)),
    ) -> schemas.ReviewItemRead:
        """Approve the pending version; score 0-100 is the share of the measure's rubric points (absent: 100)."""
        return decide(
            submission_id,
            "submission.approved",
            principal,
            request,
            version=body.version,
            comment=body.comment,
            score=body.score,
        )

    @router.post(
        "/submissions/{submission_id}/return", response_model=schemas.ReviewItemRead, tags=["decisions"]
    )
    def return_(
        submission_id: str,
        body: schemas.Return,
        request: Request,
        principal: Principal = Depends(require(*DECIDERS)),
    ) -> schemas.ReviewItemRead:
        """Return the pending version for changes, with a comment (reviewers and admins)."""
        return decide(
            submission_id,
            "submission.returned",
            principal,
            request,
            version=body.version,
            comment=body.comment,
        )

    @router.post(
        "/submissions/{submission_id}/reject", response_model=schemas.ReviewItemRead, tags=["decisions"]
    )
    def reject(
        submission_id: str,
        body: schemas.Reject,
        request: Request,
        principal: Principal = Depends(require(*DECIDERS)),
    ) -> schemas.ReviewItemRead:
        """Reject the pending version, with a reason (reviewers and admins)."""
        return decide(
            submission_id,
            "submission.rejected",
            principal,
            request,
            version=body.version,
            comment=body.reason,
        )

    @router.post("/bulk/approve", response_model=schemas.BulkResult, tags=["decisions"])
    def bulk_approve(
        body: schemas.BulkApprove, request: Request, principal: Principal = Depends(require(*DECIDERS))
    ) -> schemas.BulkResult:
        """Approve up to 200 versions, each in its own transaction; lists each item's outcome."""
        return queue.bulk_decide(
            body.items,
            "submission.approved",
            principal=principal,
            ctx=ctx,
            comment=body.comment,
            score=body.score,
            request=request_info(request),
        )

    @router.post("/bulk/return", response_model=schemas.BulkResult, tags=["decisions"])
    def bulk_return(
        body: schemas.BulkReturn, request: Request, principal: Principal = Depends(require(*DECIDERS))
    ) -> schemas.BulkResult:
        """Return up to 200 versions with one comment, each in its own transaction; lists each item's outcome."""
        return queue.bulk_decide(
            body.items,
            "submission.returned",
            principal=principal,
            ctx=ctx,
            comment=body.comment,
            request=request_info(request),
        )

    @router.get(
        "/submissions/{submission_id}/comments", response_model=list[schemas.CommentRead], tags=["comments"]
    )
    def list_comments(
        submission_id: str,
        limit: int = Query(200, ge=1, le=1000),
        offset: Offset = 0,
        principal: Principal = Depends(require(*READERS)),
    ) -> list[schemas.CommentRead]:
        """A submission's comment thread, oldest first."""
        rows = comments.list_comments(submission_id, principal=principal, ctx=ctx, limit=limit, offset=offset)
        return [
            schemas.CommentRead.model_validate(row).model_copy(update={"at": as_utc(row.at)}) for row in rows
        ]

    @router.post(
        "/submissions/{submission_id}/comments",
        response_model=schemas.CommentRead,
        status_code=201,
        tags=["comments"],
    )
    def add_comment(
        submission_id: str,
        body: schemas.CommentCreate,
        request: Request,
        principal: Principal = Depends(require(*COMMENTERS)),
    ) -> schemas.CommentRead:
        """Post to a submission's comment thread (reviewers, admins and the unit itself)."""
        row = comments.add_comment(
            submission_id, body.body, principal=principal, ctx=ctx, request=request_info(request)
        )
        return schemas.CommentRead.model_validate(row).model_copy(update={"at": as_utc(row.at)})

    return router
