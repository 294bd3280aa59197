"""Notification HTTP API: the delivery log."""
from __future__ import annotations

from fastapi import APIRouter, FastAPI, Query
from sqlalchemy import select

from services.notification.models import Delivery
from services.notification.schemas import DeliveryRead
from shared.http import health_router, not_found
from shared.runtime import ServiceContext


def create_app(ctx: ServiceContext) -> FastAPI:
    """The notification service's FastAPI application."""
    app = FastAPI(title="notification · 通知", description="邮件通知与投递记录", version="0.1.0")
    router = APIRouter()

    @router.get("/deliveries", response_model=list[DeliveryRead], tags=["deliveries"])
    def deliveries(unit_id: str | None = None, event_id: str | None = None, status: str | None = None,
                   limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> list[Delivery]:
        """The delivery log, newest first."""
        query = select(Delivery).order_by(Delivery.created_at.desc()).limit(limit).offset(offset)
        for column, value in ((Delivery.unit_id, unit_id), (Delivery.event_id, event_id), (Delivery.status, status)):
            if value:
                query = query.where(column == value)
        with ctx.db.session() as uow:
            return list(uow.scalars(query))

    @router.get("/deliveries/{delivery_id}", response_model=DeliveryRead, tags=["deliveries"])
    def delivery(delivery_id: str) -> Delivery:
        """One delivery."""
        with ctx.db.session() as uow:
            found = uow.get(Delivery, delivery_id)
        if found is None:
            raise not_found("投递记录", "delivery", delivery_id)
        return found

    app.include_router(router)
    health = {"database": ctx.db.health}
    if ctx.mailer is not None:
        health["mailer"] = ctx.mailer.health
    app.include_router(health_router(health))
    return app
