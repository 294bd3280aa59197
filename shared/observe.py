"""What every service API gets for operators: the request id in every log line, one access line per request
(never the query string), HTTP metrics by route and status, and GET /metrics."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import log_context
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS, metrics_router, register_service
from shared.request_context import REQUEST_ID_PATTERN
from shared.tracing import span

if TYPE_CHECKING:
    from shared.runtime import ServiceContext

# FastAPI(telemetry=…): FastAPI's own OpenTelemetry instrumentation looks up the global providers on every request
# and in every app a request passes through, only to find none configured (5 µs a look, tens of µs a request).
# Requests are observed here and traced by shared/tracing.py, so it stays off. Typed Any: older FastAPI releases
# within the pinned range take the keyword as an extra and ignore it.
NATIVE_TELEMETRY_OFF: Any = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
access = logging.getLogger("http.access")
QUIET_ROUTES = {
    "/metrics",
    "/livez",
    "/readyz",
    "/healthz",
}  # polled every few seconds: no access line unless it fails


def observe(app: FastAPI, ctx: ServiceContext) -> None:
    """Instrument a service's app: request context for logs, access lines, HTTP metrics and /metrics."""
    app.add_middleware(ObserveMiddleware, service=ctx.name)
    token = ctx.settings.metrics_token.get_secret_value() if ctx.settings.metrics_token else None
    app.include_router(metrics_router(token))
    register_service(ctx)


class ObserveMiddleware:
    """Binds service and request id to the log context, then times the request and counts it by route."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = state.get("request_id")
        if request_id is None:
            incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
            request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
            state["request_id"] = request_id
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.perf_counter()
        carried = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers") or []
            if k in (b"traceparent", b"tracestate")
        }
        with (
            log_context(service=self.service, request_id=request_id),
            span(
                f"{scope.get('method', '')} {self.service}",
                parent=carried,
                kind="server",
                request_id=request_id,
                path=scope.get("path"),
            ),
        ):
            try:
                await self.app(scope, receive, send_status)
            finally:
                elapsed = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                method = scope.get("method", "")
                HTTP_REQUESTS.labels(self.service, method, route, str(status[0])).inc()
                HTTP_LATENCY.labels(self.service, method, route).observe(elapsed)
                if route not in QUIET_ROUTES or status[0] >= 500:
                    access.info(
                        "%s %s %s",
                        method,
                        scope.get("path", ""),
                        status[0],
                        extra={
                            "http_method": method,
                            "route": route,
                            "status": status[0],
                            "duration_ms": round(elapsed * 1000, 1),
                        },
                    )
