"""A submission's comment thread: reviewers, admins and the unit itself (its subtree) talk about it."""

from __future__ import annotations

from sqlalchemy import select

from services.review import activity
from services.review.models import ReviewComment, ReviewItem
from shared.auth import ADMIN, REVIEWER, UNIT, Principal, can_see_unit
from shared.events import new_id
from shared.http import ApiError, not_found
from shared.request_context import RequestInfo
from shared.runtime import ServiceContext

AUTHORS = (ADMIN, REVIEWER, UNIT)  # inspectors read threads but do not post


def _item(uow, submission_id: str, principal: Principal) -> ReviewItem:
    item = uow.get(ReviewItem, submission_id)
    if item is None or not can_see_unit(principal, item.unit_path, item.unit_id):
        raise not_found("待审核材料", "review item", submission_id)
    return item


def list_comments(
    submission_id: str, *, principal: Principal, ctx: ServiceContext, limit: int = 200, offset: int = 0
) -> list[ReviewComment]:
    """A submission's comments, oldest first; 404 outside the caller's subtree."""
    with ctx.db.session() as uow:
        _item(uow, submission_id, principal)
        return list(
            uow.scalars(
                select(ReviewComment)
                .where(ReviewComment.submission_id == submission_id)
                .order_by(ReviewComment.at, ReviewComment.id)
                .limit(limit)
                .offset(offset)
            )
        )


def add_comment(
    submission_id: str,
    body: str,
    *,
    principal: Principal,
    ctx: ServiceContext,
    request: RequestInfo | None = None,
) -> ReviewComment:
    """Post a comment on the submission's current version (timeline and audit in the same transaction)."""
    if principal.role not in AUTHORS:
        raise ApiError(403, "forbidden", "当前角色无权发表评论", "your role may not comment")
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        item = _item(uow, submission_id, principal)
        comment = ReviewComment(
            id=new_id(),
            submission_id=item.submission_id,
            unit_id=item.unit_id,
            version=item.version,
            author=principal.name,
            author_role=principal.role,
            body=body,
            at=now,
        )
        uow.add(comment)
        uow.flush()
        # The text belongs to the thread's history, not to the audit log.
        activity.record(
            uow,
            activity.Actor.of(principal, request),
            "comment.added",
            ("submission", item.submission_id),
            at=now,
            unit_id=item.unit_id,
            submission_id=item.submission_id,
            detail={"comment_id": comment.id, "version": item.version, "body": body},
            audit_detail={"comment_id": comment.id, "version": item.version},
        )
    return comment
