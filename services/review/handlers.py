"""Review use cases: build the queue from events, and decide submissions."""
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.review.models import AUDIT, ReviewEvidence, ReviewItem
from shared import audit
from shared.auth import Principal, can_see_unit
from shared.contracts import make_event, read_payload
from shared.contracts.evidence import EvidenceStored
from shared.contracts.intake import SubmissionSubmitted, SubmissionWithdrawn, UnitRegistered
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
            submission_id=data.submission_id, unit_id=data.unit_id, unit_path=data.unit_path, measure_code=data.measure_code,
            title=data.title, version=data.version, state="pending", submitted_at=event.occurred_at,
        ))
    elif data.version > item.version:
        item.version, item.title, item.state, item.submitted_at = data.version, data.title, "pending", event.occurred_at
        item.unit_path = data.unit_path or item.unit_path
        item.decided_by = item.decided_at = item.comment = item.score = None


def repath_unit(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Keep who-may-see-it current: a unit (re)registered with a new path moves its review items along."""
    data = read_payload(UnitRegistered, event)
    if data.unit_path:
        uow.execute(update(ReviewItem).where(ReviewItem.unit_id == data.unit_id, ReviewItem.unit_path != data.unit_path)
                    .values(unit_path=data.unit_path))


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
           score: float | None = None, ctx: ServiceContext, principal: Principal | None = None,
           request: audit.RequestInfo | None = None) -> ReviewItem:
    """Approve, return or reject a pending version exactly once; a concurrent or stale decision gets 409.

    With a principal (every API call), the decision is audited in the same transaction.
    """
    state = DECISION_STATES[event_type]
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        item = uow.get(ReviewItem, submission_id)
        if item is None or (principal is not None and not can_see_unit(principal, item.unit_path, item.unit_id)):
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
        if principal is not None:
            audit.record(uow, AUDIT, principal=principal, action=event_type, resource=("submission", submission_id),
                         detail={"version": item.version, "state": state, "score": score, "comment": comment},
                         request=request)
    ctx.outbox_written()
    return item
