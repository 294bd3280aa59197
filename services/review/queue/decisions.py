"""Review decisions: approve, return or reject the pending version exactly once.

A decision is a compare-and-set on the review item: only the UPDATE that still finds the version
pending (and not under another reviewer's live claim, unless an admin decides) moves it, so two
reviewers can never both decide one version; the loser gets 409.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from sqlalchemy import DateTime, String, Update, bindparam, or_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from services.review import activity
from services.review.models import ReviewDecision, ReviewItem
from shared.auth import ADMIN, Principal, can_see_unit
from shared.contracts import make_event
from shared.contracts.review import DECISIONS
from shared.db import by_key
from shared.http import ApiError, not_found
from shared.request_context import RequestInfo
from shared.runtime import ServiceContext

SERVICE = "review"
DECISION_STATES = {
    "submission.approved": "approved",
    "submission.returned": "returned",
    "submission.rejected": "rejected",
}
FULL_SCORE = 100.0  # an approval without a score earns all of the measure's points


def claim_cutoff(ctx: ServiceContext, now: datetime) -> datetime:
    """Claims taken before this moment have expired."""
    return now - timedelta(seconds=ctx.settings.review_claim_ttl_s)


def claim_is_live(item: ReviewItem, cutoff: datetime) -> bool:
    """Whether someone holds a claim on the item that has not expired."""
    if not item.claimed_by or item.claimed_at is None:
        return False
    claimed_at = item.claimed_at if item.claimed_at.tzinfo else item.claimed_at.replace(tzinfo=cutoff.tzinfo)
    return claimed_at >= cutoff


def free_for(principal_id: str | BindParameter[str], cutoff: datetime | BindParameter[datetime]):
    """WHERE clause: no live claim on the item, or the caller holds it."""
    return or_(
        ReviewItem.claimed_by.is_(None),
        ReviewItem.claimed_by == principal_id,
        ReviewItem.claimed_at.is_(None),
        ReviewItem.claimed_at < cutoff,
    )


def claimed_by_other(item: ReviewItem) -> ApiError:
    """409 for a version another reviewer has claimed."""
    return ApiError(
        409,
        "claimed_by_other",
        f"该材料已由其他审核员认领审核（{item.claimed_by}），请待其释放或认领过期后再试",
        f"another reviewer ({item.claimed_by}) holds a claim on this version",
    )


def decide(
    submission_id: str,
    event_type: str,
    *,
    reviewer: str,
    version: int | None,
    comment: str | None,
    score: float | None = None,
    ctx: ServiceContext,
    principal: Principal | None = None,
    request: RequestInfo | None = None,
) -> ReviewItem:
    """Approve, return or reject a pending version exactly once; a concurrent, stale or claimed decision gets 409.

    The decision is kept as a dated fact (review_decisions), put on the timeline and, with a principal
    (every API call), audited, all in one transaction with the outbox event.
    """
    state = DECISION_STATES[event_type]
    if event_type == "submission.approved" and score is None:
        score = FULL_SCORE
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        item = by_key(uow, ReviewItem, submission_id)
        if item is None or (
            principal is not None and not can_see_unit(principal, item.unit_path, item.unit_id)
        ):
            raise not_found("待审核材料", "review item", submission_id)
        expected = version or item.version
        # Compare-and-set: only one reviewer's UPDATE can move this version out of "pending". RETURNING the row
        # refreshes the item in the same round trip. Admins may decide over another's claim.
        holder = principal.id if principal is not None and principal.role != ADMIN else None
        decided = uow.scalars(
            _compare_and_set(holder is not None),
            {
                "sid": submission_id,
                "expected": expected,
                "to_state": state,
                "decider": reviewer,
                "at": now,
                "remark": comment,
                "points": score,
                **({"holder": holder, "cutoff": claim_cutoff(ctx, now)} if holder is not None else {}),
            },
        ).first()
        if decided is None:
            raise _refusal(uow, item, expected, ctx, now)
        item = decided
        uow.add(
            ReviewDecision(
                submission_id=item.submission_id,
                unit_id=item.unit_id,
                campaign_id=item.campaign_id,
                measure_code=item.measure_code,
                kind=item.kind,
                version=item.version,
                decision=state,
                score=score,
                comment=comment,
                reviewer=reviewer,
                decided_at=now,
            )
        )
        # The audit row also names the state; the timeline's kind says it already.
        activity.record(
            uow,
            activity.Actor(reviewer, principal.role if principal else "", principal, request),
            event_type,
            ("submission", submission_id),
            at=now,
            unit_id=item.unit_id,
            submission_id=submission_id,
            detail={"version": item.version, "score": score, "comment": comment},
            audit_detail={"version": item.version, "state": state, "score": score, "comment": comment},
        )
        payload = DECISIONS[event_type](
            submission_id=item.submission_id,
            unit_id=item.unit_id,
            measure_code=item.measure_code,
            title=item.title,
            version=item.version,
            reviewer=reviewer,
            comment=comment,
            decided_at=now,
            **({"score": score} if event_type == "submission.approved" else {}),
        )
        ctx.outbox.add(uow, make_event(payload, producer=SERVICE))
    return item


@functools.cache
def _compare_and_set(claim_matters: bool) -> Update:
    # Built once per variant: every decision runs it, and building it cost about what running it did. The bind
    # names differ from the columns': SQLAlchemy reserves a column's own name in an UPDATE.
    conditions = [
        ReviewItem.submission_id == bindparam("sid"),
        ReviewItem.version == bindparam("expected"),
        ReviewItem.state == "pending",
    ]
    if claim_matters:
        conditions.append(
            free_for(bindparam("holder", type_=String()), bindparam("cutoff", type_=DateTime(timezone=True)))
        )
    return (
        update(ReviewItem)
        .where(*conditions)
        .values(
            state=bindparam("to_state"),
            decided_by=bindparam("decider"),
            decided_at=bindparam("at"),
            comment=bindparam("remark"),
            score=bindparam("points"),
            claimed_by=None,
            claimed_at=None,
        )
        .returning(ReviewItem)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


def _refusal(uow: Session, item: ReviewItem, expected: int, ctx: ServiceContext, now: datetime) -> ApiError:
    uow.refresh(item)  # what the winner (or the claim holder) left behind
    if item.state == "pending" and item.version == expected and claim_is_live(item, claim_cutoff(ctx, now)):
        return claimed_by_other(item)
    return ApiError(
        409,
        "already_decided",
        "该版本已被审核或已更新，请刷新后再试",
        "this version was already decided or superseded; reload and retry",
    )
