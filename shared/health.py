"""Liveness and readiness: `/livez` (the process runs) and `/readyz` (its database, store or mailer, and broker
answer) on every API, and the same on a small server of each worker (setting HEALTH_PORT).

Each probe runs on a thread of its own with a shared time budget (HEALTH_PROBE_TIMEOUT_S): a probe that does
not answer in time counts as down, and a probe still running from an earlier request is waited for instead
of started again, so a black-holed store never piles up threads nor blocks a request thread (the routes
are async and only await the probes' futures). Anonymous callers learn only up or down; an admin token
shows each adapter's details.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from shared.observe import NATIVE_TELEMETRY_OFF

if TYPE_CHECKING:
    from shared.runtime import ServiceContext
    from shared.settings import Settings

log = logging.getLogger(__name__)

Check = Callable[[], dict[str, Any]]
FRESH_S = 1.0  # a result this recent is reused instead of probing again


class HealthMonitor:
    """Runs named adapter checks within a time budget, at most one run of each check at a time."""

    def __init__(self, checks: Mapping[str, Check], *, budget_s: float = 2.0) -> None:
        self.checks = dict(checks)
        self.budget_s = budget_s
        self._lock = threading.Lock()
        self._running: dict[str, Future[dict[str, Any]]] = {}
        self._last: dict[str, tuple[float, dict[str, Any]]] = {}

    def add(self, name: str, check: Check) -> None:
        """Add a check (e.g. the broker, known only to the composition root)."""
        self.checks[name] = check

    def _future(self, name: str) -> Future[dict[str, Any]]:
        """The result of a check: a fresh one kept, the run under way, or a new run on a thread of its own."""
        with self._lock:
            last = self._last.get(name)
            if last and time.monotonic() - last[0] < FRESH_S:
                done: Future[dict[str, Any]] = Future()
                done.set_result(last[1])
                return done
            running = self._running.get(name)
            if running is not None and not running.done():
                return running
            future: Future[dict[str, Any]] = Future()
            self._running[name] = future
        threading.Thread(target=self._run, args=(name, future), name=f"health-{name}", daemon=True).start()
        return future

    def _run(self, name: str, future: Future[dict[str, Any]]) -> None:
        try:
            result = dict(self.checks[name]())
        except Exception as exc:  # a check must report, not raise
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        with self._lock:
            self._last[name] = (time.monotonic(), result)
        future.set_result(result)

    async def report(self) -> dict[str, dict[str, Any]]:
        """Every check's result, a check that did not answer within the budget counting as down."""
        futures = {name: asyncio.wrap_future(self._future(name)) for name in self.checks}
        if futures:
            await asyncio.wait(futures.values(), timeout=self.budget_s)
        report = {}
        for name, future in futures.items():
            if future.done():
                report[name] = future.result()
            else:
                report[name] = {"ok": False, "error": f"no answer within {self.budget_s:g}s"}
                log.warning("health: %s did not answer within %.1fs", name, self.budget_s)
        return report

    def report_sync(self) -> dict[str, dict[str, Any]]:
        """report() for callers without an event loop (tests, scripts)."""
        return asyncio.run(self.report())


def is_admin(request: Request) -> bool:
    """Whether the request carries a valid admin token (verified with the app's token verifier)."""
    verifier = getattr(request.app.state, "token_verifier", None)
    header = request.headers.get("authorization", "")
    if verifier is None or not header.lower().startswith("bearer "):
        return False
    from shared.auth import ADMIN, TokenError

    try:
        return bool(verifier.verify(header[7:].strip()).role == ADMIN)
    except TokenError:
        return False


def health_routes(monitor: HealthMonitor, *, alive: Callable[[], dict[str, Any]] | None = None) -> APIRouter:
    """`/livez`, `/readyz` and the older `/healthz` (readiness with each adapter's ok) for an app."""
    router = APIRouter(tags=["ops"])

    @router.get("/livez", summary="进程存活 · the process runs")
    async def livez(request: Request) -> JSONResponse:
        state = {"ok": True} if alive is None else alive()
        body: dict[str, Any] = {"status": "up" if state.get("ok") else "down"}
        if is_admin(request):
            body["details"] = state
        return JSONResponse(body, status_code=200 if state.get("ok") else 503)

    @router.get("/readyz", summary="可以接收请求 · database, store or mailer, and broker answer")
    async def readyz(request: Request) -> JSONResponse:
        report = await monitor.report()
        ok = all(part.get("ok") for part in report.values())
        body: dict[str, Any] = {"status": "up" if ok else "down"}
        if is_admin(request):
            body["checks"] = report
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/healthz", summary="readiness, each adapter's ok (details with an admin token)")
    async def healthz(request: Request) -> JSONResponse:
        report = await monitor.report()
        ok = all(part.get("ok") for part in report.values())
        admin = is_admin(request)
        adapters = {name: part if admin else {"ok": bool(part.get("ok"))} for name, part in report.items()}
        return JSONResponse({"ok": ok, "adapters": adapters}, status_code=200 if ok else 503)

    return router


def broker_check(url: str, *, timeout_s: float = 2.0) -> Check:
    """A check that opens and closes one connection to RabbitMQ (for APIs, which hold none)."""

    def check() -> dict[str, Any]:
        import pika

        params = pika.URLParameters(url)
        params.connection_attempts, params.socket_timeout, params.stack_timeout = 1, timeout_s, timeout_s
        params.blocked_connection_timeout = timeout_s
        connection = pika.BlockingConnection(params)
        try:
            return {"backend": "rabbitmq", "ok": connection.is_open}
        finally:
            connection.close()

    return check


def service_checks(ctx: ServiceContext, *, bus_check: Check | None = None) -> dict[str, Check]:
    """A service's readiness checks: its database, its store and mailer if it has them, the broker if distributed."""
    checks: dict[str, Check] = {"database": ctx.db.health}
    if ctx.blobs is not None:
        checks["blob_store"] = ctx.blobs.health
    if ctx.mailer is not None:
        checks["mailer"] = ctx.mailer.health
    if bus_check is not None:
        checks["broker"] = bus_check
    elif ctx.settings.bus_backend == "rabbitmq":
        checks["broker"] = broker_check(
            ctx.settings.broker_url(), timeout_s=ctx.settings.health_probe_timeout_s
        )
    return checks


def install_health(app: FastAPI, ctx: ServiceContext) -> HealthMonitor:
    """Give a service API `/livez`, `/readyz` and `/healthz`; returns the monitor (to add checks)."""
    monitor = HealthMonitor(service_checks(ctx), budget_s=ctx.settings.health_probe_timeout_s)
    app.include_router(health_routes(monitor))
    app.state.health = monitor
    return monitor


def worker_health_app(
    monitor: HealthMonitor, *, alive: Callable[[], dict[str, Any]], settings: Settings
) -> FastAPI:
    """The worker's small HTTP app: `/livez`, `/readyz` (and `/metrics`, mounted by shared/metrics.py)."""
    from shared.auth import verifier_from_settings

    app = FastAPI(
        title="worker health", docs_url=None, redoc_url=None, openapi_url=None, telemetry=NATIVE_TELEMETRY_OFF
    )
    app.state.token_verifier = verifier_from_settings(settings)
    app.include_router(health_routes(monitor, alive=alive))
    app.state.health = monitor
    return app


class HealthServerFailed(RuntimeError):
    """A worker's health server could not start (HEALTH_PORT taken or not allowed)."""


class HealthServer:
    """Serves a worker's health app with uvicorn on a daemon thread (HEALTH_PORT)."""

    def __init__(self, app: FastAPI, *, host: str, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)  # off the main thread, uvicorn leaves the signals to the worker
        self._thread = threading.Thread(target=self._serve, name="health-server", daemon=True)
        self.port = port

    def start(self, timeout_s: float = 15.0) -> None:
        """Start serving; raises HealthServerFailed when it is not listening within timeout_s (a port in use)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                # uvicorn logged the cause (e.g. address already in use) and ended its thread
                self.stop()
                raise HealthServerFailed(f"the worker's health server is not listening on port {self.port}")
            time.sleep(0.02)
        log.info("worker health server on port %d (/livez, /readyz)", self.port)

    def _serve(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn's answer to a failed start, after logging why
            self._server.run()

    def stop(self) -> None:
        """Stop serving (bounded)."""
        self._server.should_exit = True
        self._thread.join(timeout=5)
