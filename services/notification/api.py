"""Notification HTTP API: the delivery log (e-mails and group-robot posts), units' digest preference, templates.

Every route but /healthz needs a bearer token (docs/security.md): staff read every unit's log, a unit
its own subtree's; a unit (or an admin) sets a unit's digest preference; only admins touch templates.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from sqlalchemy import func, or_, select

from services.notification import admin
from services.notification.access import ensure_unit_visible, unit_rows
from services.notification.models import AUDIT, Delivery, DigestItem
from services.notification.operations import operations_router
from services.notification.schemas import (
    DeliveryRead,
    DeliverySummary,
    DigestItemRead,
    PreferenceIn,
    PreferenceRead,
    PreviewRead,
    TemplateIn,
    TemplateRead,
)
from shared import audit
from shared.auth import ADMIN, STAFF, UNIT, Principal, install, require, verifier_from_settings
from shared.bounds import Limit, Offset
from shared.health import install_health
from shared.http import not_found
from shared.observe import NATIVE_TELEMETRY_OFF, observe
from shared.ops import ops_router
from shared.request_context import request_info
from shared.runtime import ServiceContext
from shared.version import platform_version

STATUSES = ("queued", "sending", "sent", "failed")
READERS = (*STAFF, UNIT)


def create_app(ctx: ServiceContext) -> FastAPI:
    """The notification service's FastAPI application."""
    app = FastAPI(
        telemetry=NATIVE_TELEMETRY_OFF,
        title="notification · 通知",
        description="邮件通知、每日汇总、模板与投递记录",
        version=platform_version(),
    )
    install(app, verifier_from_settings(ctx.settings))
    observe(app, ctx)  # request ids in logs, access lines, HTTP metrics, /metrics (shared/observe.py)
    app.include_router(ops_router(ctx, AUDIT))  # /ops: parking lot, outbox errors, lag (admins)
    app.include_router(operations_router(ctx))  # /ops/deliveries/requeue
    app.include_router(_delivery_routes(ctx))
    app.include_router(_preference_routes(ctx))
    app.include_router(_template_routes(ctx))
    app.include_router(audit.audit_router(AUDIT, ctx.db))
    install_health(app, ctx)
    return app


def _delivery_routes(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["deliveries"])

    @router.get("/deliveries", response_model=list[DeliveryRead])
    def deliveries(
        unit_id: str | None = None,
        event_id: str | None = None,
        event_type: str | None = None,
        status: str | None = Query(None, pattern="^(queued|sending|sent|failed)$"),
        channel: str | None = Query(None, pattern="^(email|dingtalk|wecom)$"),
        limit: Limit = 100,
        offset: Offset = 0,
        principal: Principal = Depends(require(*READERS)),
    ) -> list[Delivery]:
        """The delivery log, newest first; event_id also finds the digest that carried the event."""
        query = (
            select(Delivery)
            .where(unit_rows(principal, Delivery.unit_id))
            .order_by(Delivery.created_at.desc(), Delivery.id)
            .limit(limit)
            .offset(offset)
        )
        for column, value in (
            (Delivery.unit_id, unit_id),
            (Delivery.event_type, event_type),
            (Delivery.status, status),
            (Delivery.channel, channel),
        ):
            if value:
                query = query.where(column == value)
        if event_id:
            carried = select(DigestItem.delivery_id).where(DigestItem.event_id == event_id)
            query = query.where(or_(Delivery.event_id == event_id, Delivery.id.in_(carried)))
        with ctx.db.session() as uow:
            return list(uow.scalars(query))

    @router.get("/deliveries/summary", response_model=DeliverySummary)
    def summary(
        unit_id: str | None = None,
        channel: str | None = Query(None, pattern="^(email|dingtalk|wecom)$"),
        principal: Principal = Depends(require(*READERS)),
    ) -> DeliverySummary:
        """How many deliveries (of one channel, if given) are queued, sending, sent and failed, and how many notices
        wait for a digest."""
        counts = (
            select(Delivery.status, func.count())
            .where(unit_rows(principal, Delivery.unit_id))
            .group_by(Delivery.status)
        )
        waiting = (
            select(func.count())
            .select_from(DigestItem)
            .where(DigestItem.delivery_id.is_(None), unit_rows(principal, DigestItem.unit_id))
        )
        if channel:
            counts = counts.where(Delivery.channel == channel)
        if unit_id:
            counts = counts.where(Delivery.unit_id == unit_id)
            waiting = waiting.where(DigestItem.unit_id == unit_id)
        with ctx.db.session() as uow:
            if unit_id and not principal.is_staff:
                ensure_unit_visible(uow, principal, unit_id)  # a summary names its unit: 404 for another's
            by_status = {status: count for status, count in uow.execute(counts) if status in STATUSES}
            return DeliverySummary(unit_id=unit_id, waiting_for_digest=uow.scalar(waiting) or 0, **by_status)

    @router.get("/deliveries/{delivery_id}", response_model=DeliveryRead)
    def delivery(delivery_id: str, principal: Principal = Depends(require(*READERS))) -> Delivery:
        """One delivery."""
        with ctx.db.session() as uow:
            found = uow.scalar(
                select(Delivery).where(Delivery.id == delivery_id, unit_rows(principal, Delivery.unit_id))
            )
        if found is None:
            raise not_found("投递记录", "delivery", delivery_id)
        return found

    @router.get("/digest-items", response_model=list[DigestItemRead])
    def digest_items(
        unit_id: str | None = None,
        audience: str | None = None,
        pending: bool | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
        principal: Principal = Depends(require(*READERS)),
    ) -> list[DigestItem]:
        """Notices kept for daily digests, newest first; pending=true: not yet in a digest."""
        query = (
            select(DigestItem)
            .where(unit_rows(principal, DigestItem.unit_id))
            .order_by(DigestItem.created_at.desc(), DigestItem.id)
            .limit(limit)
            .offset(offset)
        )
        if (
            not principal.is_staff
        ):  # a reviewer's digest lists every unit's submissions: not a unit's business
            query = query.where(DigestItem.audience.startswith("unit:"))
        if unit_id:
            query = query.where(DigestItem.unit_id == unit_id)
        if audience:
            query = query.where(DigestItem.audience == audience)
        if pending is not None:
            query = query.where(
                DigestItem.delivery_id.is_(None) if pending else DigestItem.delivery_id.is_not(None)
            )
        with ctx.db.session() as uow:
            return list(uow.scalars(query))

    return router


def _preference_routes(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["preferences"])

    @router.get("/units/{unit_id}/preferences", response_model=PreferenceRead)
    def get_preferences(unit_id: str, principal: Principal = Depends(require(*READERS))):
        """A unit's notification preference."""
        return admin.get_preference(unit_id, ctx=ctx, principal=principal)

    @router.put("/units/{unit_id}/preferences", response_model=PreferenceRead)
    def put_preferences(
        unit_id: str,
        body: PreferenceIn,
        request: Request,
        principal: Principal = Depends(require(ADMIN, UNIT)),
    ):
        """Choose one daily digest instead of one e-mail per event (or back)."""
        return admin.set_preference(
            unit_id, digest=body.digest, ctx=ctx, principal=principal, request=request_info(request)
        )

    return router


def _template_routes(ctx: ServiceContext) -> APIRouter:
    admin_only = require(ADMIN)
    router = APIRouter(tags=["templates"], dependencies=[Depends(admin_only)])

    @router.get("/templates", response_model=list[TemplateRead])
    def templates():
        """Every template part (`<family>.subject|txt|html`, `_layout.txt|html`) with the text in force."""
        return admin.list_templates(ctx=ctx)

    @router.get("/templates/{name}", response_model=TemplateRead)
    def template(name: str):
        """One template part."""
        return admin.get_template(name, ctx=ctx)

    @router.put("/templates/{name}", response_model=TemplateRead)
    def put_template(
        name: str, body: TemplateIn, request: Request, principal: Principal = Depends(admin_only)
    ):
        """Override a template part; refused with 422 unless it renders with sample data and keeps HTML escaping."""
        return admin.put_template(
            name, body.text, ctx=ctx, principal=principal, request=request_info(request)
        )

    @router.delete("/templates/{name}", status_code=204)
    def delete_template(name: str, request: Request, principal: Principal = Depends(admin_only)) -> Response:
        """Drop an override and go back to the default."""
        admin.delete_template(name, ctx=ctx, principal=principal, request=request_info(request))
        return Response(status_code=204)

    @router.get("/templates/{family}/preview", response_model=PreviewRead)
    def preview(family: str):
        """A family (e.g. `decision`) rendered with the templates in force and sample data."""
        return admin.preview(family, ctx=ctx)

    return router
