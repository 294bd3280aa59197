"""Operator tools on every service API, for admins (docs/operations.md; CLI: `python -m deploy.ops`).

The service's parking lot (list, peek, replay with the attempt count reset, purge with a reason), its outbox
rows that failed to publish, and its consumer lag. Replays and purges are written to the service's audit log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Table, select

from shared import audit
from shared.adapters import make_bus
from shared.auth import ADMIN, Principal, require
from shared.bus.port import MessageBus
from shared.http import UtcDateTime, not_found
from shared.request_context import request_info
from shared.runtime import ServiceContext

log = logging.getLogger(__name__)
ADMIN_ONLY = Depends(require(ADMIN))


class ParkedRead(BaseModel):
    """A parked message: its id, event type, attempts, the last error and the message itself."""

    message_id: str
    type: str
    attempts: int
    error: str | None
    body: str


class Replay(BaseModel):
    """Which parked message to deliver again (none: all of them)."""

    message_id: str | None = Field(None, max_length=100)
    reason: str | None = Field(None, max_length=500)


class Purge(BaseModel):
    """Which parked message to drop (none: all of them), and why (kept in the audit log)."""

    message_id: str | None = Field(None, max_length=100)
    reason: str = Field(min_length=3, max_length=500)


class OutboxRow(BaseModel):
    """An outbox row as an operator sees it."""

    id: int
    event_id: str
    type: str
    created_at: UtcDateTime
    published_at: UtcDateTime | None
    attempts: int
    last_error: str | None


def bus_provider(ctx: ServiceContext) -> Callable[[], MessageBus]:
    """The bus the process runs on (embedded, worker), else one made from settings on first use (an API)."""
    lock, made = threading.Lock(), list[MessageBus]()

    def provide() -> MessageBus:
        if ctx.bus is not None:
            return ctx.bus
        with lock:
            if not made:
                made.append(make_bus(ctx.settings))
            return made[0]

    return provide


def ops_router(
    ctx: ServiceContext, audit_log: Table, bus: Callable[[], MessageBus] | None = None
) -> APIRouter:
    """GET/POST /ops/...: the service's parking lot, outbox errors and consumer lag, for admins."""
    router = APIRouter(prefix="/ops", tags=["ops"])
    bus = bus or bus_provider(ctx)
    consumer = ctx.name

    @router.get("/parked", response_model=list[ParkedRead])
    def list_parked(
        limit: int = Query(100, ge=1, le=1000), _admin: Principal = ADMIN_ONLY
    ) -> list[ParkedRead]:
        """The service's parked messages (停放的消息), oldest first, with why they failed."""
        return [ParkedRead(**vars(m)) for m in bus().parked_messages(consumer, limit=limit)]

    @router.get("/parked/{message_id}", response_model=ParkedRead)
    def peek_parked(message_id: str, _admin: Principal = ADMIN_ONLY) -> ParkedRead:
        """One parked message with its whole body (peeked, not removed)."""
        for message in bus().parked_messages(consumer, limit=10_000):
            if message.message_id == message_id:
                return ParkedRead(**vars(message))
        raise not_found("停放的消息", "parked message", message_id)

    @router.post("/parked/replay")
    def replay_parked(body: Replay, request: Request, principal: Principal = ADMIN_ONLY) -> dict[str, object]:
        """Deliver one parked message (or all) again, from attempt one; audited."""
        count = bus().replay_parked(consumer, body.message_id)
        _audit(
            ctx,
            audit_log,
            principal,
            request,
            "ops.parked_replayed",
            {"message_id": body.message_id, "count": count, "reason": body.reason},
        )
        log.warning(
            "%s: %d parked message(s) replayed by %s",
            consumer,
            count,
            principal.name,
            extra={"message_id": body.message_id},
        )
        return {"replayed": count}

    @router.post("/parked/purge")
    def purge_parked(body: Purge, request: Request, principal: Principal = ADMIN_ONLY) -> dict[str, object]:
        """Drop one parked message (or all) for good, with a reason; audited with what was dropped."""
        dropped = bus().purge_parked(consumer, body.message_id)
        _audit(
            ctx,
            audit_log,
            principal,
            request,
            "ops.parked_purged",
            {
                "reason": body.reason,
                "messages": [{"message_id": m.message_id, "type": m.type, "error": m.error} for m in dropped],
            },
        )
        log.warning(
            "%s: %d parked message(s) purged by %s: %s", consumer, len(dropped), principal.name, body.reason
        )
        return {"purged": [m.message_id for m in dropped]}

    @router.get("/outbox", response_model=list[OutboxRow])
    def outbox(
        errors_only: bool = True, limit: int = Query(100, ge=1, le=1000), _admin: Principal = ADMIN_ONLY
    ) -> list[OutboxRow]:
        """Outbox rows not published yet (with errors_only: those whose publishing failed), oldest first."""
        t = ctx.messaging.outbox
        query = select(t).where(t.c.published_at.is_(None)).order_by(t.c.id).limit(limit)
        if errors_only:
            query = query.where(t.c.last_error.is_not(None))
        with ctx.db.session() as uow:
            return [OutboxRow.model_validate(dict(row)) for row in uow.execute(query).mappings()]

    @router.get("/lag")
    def lag(_admin: Principal = ADMIN_ONLY) -> dict[str, object]:
        """The service's consumer lag: messages waiting in its queue, and parked ones."""
        return {"consumer": consumer, **bus().queue_state(consumer)}

    return router


def _audit(
    ctx: ServiceContext,
    table: Table,
    principal: Principal,
    request: Request,
    action: str,
    detail: dict[str, object],
) -> None:
    with ctx.db.transaction() as uow:
        audit.record(
            uow,
            table,
            principal=principal,
            action=action,
            resource=("parking_lot", ctx.name),
            detail=detail,
            request=request_info(request),
        )
