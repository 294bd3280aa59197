"""Review use cases: build the queue from events, and decide submissions."""
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.review.models import ReviewEvidence, ReviewItem
from shared.contracts import make_event, read_payload
from shared.contracts.evidence import EvidenceStored
from shared.contracts.intake import SubmissionSubmitted, SubmissionWithdrawn
from shared.contracts.review import DECISIONS
from shared.events import Envelope
from shared.http import ApiError, not_found
from shared.runtime import ServiceContext

SERVICE = "review"
DECISION_STATES = {"submission.approved": "approved", "submission.returned": "returned", "submission.rejected": "rejected"}


def enqueue_submission(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Put a (re)submitted version in the review queue."""
    data = read_payload(SubmissionSubmitted, event)
    item = uow.get(ReviewItem, data.submission_id)
    if item is None:
        uow.add(ReviewItem(
            submission_id=data.submission_id, unit_id=data.unit_id, measure_code=data.measure_code,
            title=data.title, version=data.version, state="pending", submitted_at=event.occurred_at,
        ))
    elif data.version > item.version:
        item.version, item.title, item.state, item.submitted_at = data.version, data.title, "pending", event.occurred_at
        item.decided_by = item.decided_at = item.comment = item.score = None


def attach_evidence(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Show newly stored evidence on its review item."""
    data = read_payload(EvidenceStored, event)
    if uow.get(ReviewEvidence, data.evidence_id) is None:
        uow.add(ReviewEvidence(
            evidence_id=data.evidence_id, submission_id=data.submission_id, filename=data.filename,
            media_type=data.media_type, size=data.size, sha256=data.sha256,
        ))


def withdraw(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Take a withdrawn version out of the queue."""
    data = read_payload(SubmissionWithdrawn, event)
    uow.execute(update(ReviewItem).where(
        ReviewItem.submission_id == data.submission_id, ReviewItem.version == data.version, ReviewItem.state == "pending",
    ).values(state="withdrawn"))


def decide(submission_id: str, event_type: str, *, reviewer: str, version: int | None, comment: str | None,
           score: float | None = None, ctx: ServiceContext) -> ReviewItem:
    """Approve, return or reject a pending version exactly once; a concurrent or stale decision gets 409."""
    state = DECISION_STATES[event_type]
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        item = uow.get(ReviewItem, submission_id)
        if item is None:
            raise not_found("待审核材料", "review item", submission_id)
        expected = version or item.version
        # Compare-and-set: only one reviewer's UPDATE can move this version out of "pending".
        result = uow.execute(update(ReviewItem).where(
            ReviewItem.submission_id == submission_id, ReviewItem.version == expected, ReviewItem.state == "pending",
        ).values(state=state, decided_by=reviewer, decided_at=now, comment=comment, score=score))
        if result.rowcount != 1:
            raise ApiError(409, "already_decided", "该版本已被审核或已更新，请刷新后再试",
                           "this version was already decided or superseded; reload and retry")
        uow.refresh(item)
        payload = DECISIONS[event_type](
            submission_id=item.submission_id, unit_id=item.unit_id, measure_code=item.measure_code,
            title=item.title, version=item.version, reviewer=reviewer, comment=comment,
            **({"score": score} if event_type == "submission.approved" else {}),
        )
        ctx.outbox.add(uow, make_event(payload, producer=SERVICE))
    ctx.outbox_written()
    return item
