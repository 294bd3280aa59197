"""Operator tools of the notification service: put failed or stuck deliveries (e-mails, group-robot posts) back in
the queue (audited), and see the group robots configured."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import and_, case, func, or_, select, update

from services.notification.models import AUDIT, Delivery
from shared import audit
from shared.auth import ADMIN, Principal, require
from shared.request_context import RequestInfo, request_info
from shared.runtime import ServiceContext


class Requeue(BaseModel):
    """Which deliveries to send again: the given ids, else every failed one and every one stuck in `sending`."""

    delivery_ids: list[str] | None = Field(None, max_length=1000)
    stuck_minutes: int = Field(
        15,
        ge=1,
        le=7 * 24 * 60,
        description="`sending` for longer than this, and no longer under a live worker's lease, counts as stuck",
    )
    channel: str | None = Field(
        None, pattern="^(email|dingtalk|wecom)$", description="only deliveries of this channel"
    )
    reason: str = Field(min_length=3, max_length=500)


def requeue(
    ctx: ServiceContext,
    *,
    delivery_ids: list[str] | None,
    stuck_for: timedelta,
    reason: str,
    principal: Principal,
    request: RequestInfo | None = None,
    channel: str | None = None,
) -> list[str]:
    """Queue failed deliveries, and stuck `sending` ones, to go out now with a new retry window; returns their ids.

    A `sending` row is stuck when it was claimed longer than stuck_for ago and its lease has ended: a row under a
    live lease is being sent by a running worker, and queueing it again would send it twice. A stuck row may
    have reached the server before a crash: its Message-ID stays the same, so a receiving system can tell a
    repeat, but a person may still see the e-mail twice.
    """
    now = ctx.clock.now()
    claimed_before = now - stuck_for
    lease_ended_before = min(now, claimed_before + timedelta(seconds=ctx.settings.notify_lease_s))
    stuck = and_(
        Delivery.status == "sending",
        or_(
            Delivery.lease_expires_at <= lease_ended_before,
            # rows claimed before leases existed (0.1): only the time they became due tells their age
            and_(Delivery.lease_expires_at.is_(None), Delivery.next_attempt_at < claimed_before),
        ),
    )
    with ctx.db.transaction() as uow:
        wanted = or_(Delivery.status == "failed", stuck)
        query = select(Delivery.id).where(wanted)
        if delivery_ids is not None:
            query = query.where(Delivery.id.in_(delivery_ids))
        if channel is not None:
            query = query.where(Delivery.channel == channel)
        ids = list(uow.scalars(query.order_by(Delivery.created_at)))
        if ids:
            # the condition again: on PostgreSQL a worker may have claimed one of them since the SELECT
            taken = set(
                uow.scalars(
                    update(Delivery)
                    .where(Delivery.id.in_(ids), wanted)
                    .values(
                        status="queued",
                        next_attempt_at=now,
                        retry_from=now,
                        sent_at=None,
                        lease_owner=None,
                        lease_expires_at=None,
                        resends=Delivery.resends + case((Delivery.status == "sending", 1), else_=0),
                    )
                    .returning(Delivery.id)
                    .execution_options(synchronize_session=False)
                )
            )
            ids = [delivery_id for delivery_id in ids if delivery_id in taken]
        audit.record(
            uow,
            AUDIT,
            principal=principal,
            action="delivery.requeued",
            resource=("delivery", None),
            detail={"delivery_ids": ids, "reason": reason, **({"channel": channel} if channel else {})},
            request=request,
        )
    return ids


def robot_states(ctx: ServiceContext) -> list[dict[str, Any]]:
    """Each configured robot (no token, no secret): its units and campaigns, its deliveries by status, and how many
    posts it made in the last rate-limit window (from the delivery log, so across workers)."""
    if ctx.channels is None:
        return []
    limit, now = ctx.channels.limit, ctx.clock.now()
    with ctx.db.session() as uow:
        counted = uow.execute(
            select(Delivery.recipient, Delivery.status, func.count())
            .where(Delivery.channel != "email")
            .group_by(Delivery.recipient, Delivery.status)
        ).all()
        recent = dict(
            uow.execute(
                select(Delivery.recipient, func.count())
                .where(
                    Delivery.channel != "email",
                    Delivery.status == "sent",
                    Delivery.sent_at >= now - timedelta(seconds=limit.window_s),
                )
                .group_by(Delivery.recipient)
            )
            .tuples()
            .all()
        )
    by_robot: dict[str, dict[str, int]] = {}
    for name, status, count in counted:
        by_robot.setdefault(name, {})[status] = count
    return [
        {
            **robot.public(),
            "deliveries": by_robot.get(robot.name, {}),
            "window": {
                "posted": recent.get(robot.name, 0),
                "max": limit.per_window,
                "seconds": limit.window_s,
            },
        }
        for robot in sorted(ctx.channels.robots, key=lambda robot: robot.name)
    ]


def operations_router(ctx: ServiceContext) -> APIRouter:
    """POST /ops/deliveries/requeue and GET /ops/channels for admins."""
    router = APIRouter(prefix="/ops", tags=["ops"])

    @router.post("/deliveries/requeue")
    def requeue_deliveries(
        body: Requeue, request: Request, principal: Principal = Depends(require(ADMIN))
    ) -> dict:
        """Send failed (and stuck) e-mails again now; audited with the reason."""
        ids = requeue(
            ctx,
            delivery_ids=body.delivery_ids,
            stuck_for=timedelta(minutes=body.stuck_minutes),
            reason=body.reason,
            principal=principal,
            request=request_info(request),
            channel=body.channel,
        )
        return {"requeued": ids}

    @router.get("/channels")
    def channels(principal: Principal = Depends(require(ADMIN))) -> dict:
        """The group robots configured (never their token or secret), each with its posts in the current window."""
        return {"robots": robot_states(ctx)}

    return router
