"""Review HTTP API: one app composing the sub-domains' routers (queue and decisions, timeline, inspections,
supervision, assessment, circulars), the audit log and health."""

from __future__ import annotations

from fastapi import FastAPI

from services.review.assessment import api as assessment_api
from services.review.circulars import api as circulars_api
from services.review.inspections import api as inspections_api
from services.review.models import AUDIT
from services.review.queue import api as queue_api
from services.review.supervision import api as supervision_api
from services.review.timeline import api as timeline_api
from shared import audit
from shared.auth import install, verifier_from_settings
from shared.health import install_health
from shared.observe import NATIVE_TELEMETRY_OFF, observe
from shared.ops import ops_router
from shared.runtime import ServiceContext
from shared.version import platform_version


def create_app(ctx: ServiceContext) -> FastAPI:
    """The review service's FastAPI application."""
    app = FastAPI(
        telemetry=NATIVE_TELEMETRY_OFF,
        title="review · 审核",
        description="审核队列、时间线、检查、督办、考核与通报",
        version=platform_version(),
    )
    install(app, verifier_from_settings(ctx.settings))
    observe(app, ctx)  # request ids in logs, access lines, HTTP metrics, /metrics (shared/observe.py)
    # FastAPI tries routes in order, twice per request (match, then handle): the busiest come first
    app.include_router(queue_api.router(ctx))
    app.include_router(timeline_api.router(ctx))
    app.include_router(ops_router(ctx, AUDIT))  # /ops: parking lot, outbox errors, lag (admins)
    app.include_router(inspections_api.router(ctx))
    app.include_router(supervision_api.router(ctx))
    app.include_router(assessment_api.router(ctx))
    app.include_router(circulars_api.router(ctx))
    app.include_router(audit.audit_router(AUDIT, ctx.db))
    install_health(app, ctx)
    return app
