"""Embedded composition root: every service in one process, sharing one bus (`make run`)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse

from deploy.prefixes import PlatformRoot
from services.console import app as console
from services.evidence_storage import api as evidence_api
from services.evidence_storage import bootstrap as evidence_bootstrap
from services.evidence_storage.jobs import jobs as evidence_jobs
from services.evidence_storage.subscriptions import SUBSCRIPTIONS as EVIDENCE_SUBSCRIPTIONS
from services.intake import api as intake_api
from services.intake import bootstrap as intake_bootstrap
from services.intake.subscriptions import SUBSCRIPTIONS as INTAKE_SUBSCRIPTIONS
from services.intake.subscriptions import jobs as intake_jobs
from services.notification import api as notification_api
from services.notification import bootstrap as notification_bootstrap
from services.notification.subscriptions import SUBSCRIPTIONS as NOTIFICATION_SUBSCRIPTIONS
from services.notification.subscriptions import jobs as notification_jobs
from services.review import api as review_api
from services.review import bootstrap as review_bootstrap
from services.review.subscriptions import SUBSCRIPTIONS as REVIEW_SUBSCRIPTIONS
from services.review.subscriptions import jobs as review_jobs
from shared import docs, problems
from shared.adapters import make_blob_store, make_bus, make_mailer
from shared.auth import verifier_from_settings
from shared.blobs.port import BlobStore
from shared.bus.port import MessageBus
from shared.clock import Clock, SystemClock
from shared.health import HealthMonitor, health_routes
from shared.launcher import refuse_unusable_store
from shared.mail.port import Mailer
from shared.metrics import metrics_router, register_bus
from shared.migrations import SchemaNotCurrent
from shared.observe import NATIVE_TELEMETRY_OFF
from shared.private import private_folder
from shared.request_context import RequestContextMiddleware
from shared.runtime import ServiceContext, ServiceWorker, configure_logging, freeze_startup_objects
from shared.settings import Settings
from shared.version import platform_version

PREFIXES = {
    "intake": "/intake",
    "evidence_storage": "/evidence",
    "review": "/review",
    "notification": "/notification",
}


@dataclass
class Platform:
    """The assembled platform: its bus, each service's context and worker, and its root app."""

    bus: MessageBus
    contexts: dict[str, ServiceContext]
    workers: list[ServiceWorker]
    app: FastAPI = field(init=False)  # the root app's lifespan starts and stops this platform: built after it

    def start(self) -> None:
        """Declare every queue, then start the workers' relays and jobs, then the bus deliveries.

        On the in-process bus an event routed to no queue counts as handled, so no relay may publish before
        every consumer has subscribed.
        """
        for worker in self.workers:
            worker.subscribe()
        for worker in self.workers:
            worker.start()
        self.bus.start()

    def liveness(self) -> dict:
        """Every worker's loops run and none is stuck (for /livez)."""
        states = {worker.ctx.name: worker.liveness() for worker in self.workers}
        return {"ok": all(state["ok"] for state in states.values()), "workers": states}

    def stop(self) -> None:
        """Stop deliveries, then the workers, then close databases."""
        self.bus.stop()
        for worker in self.workers:
            worker.stop()
        for ctx in self.contexts.values():
            ctx.db.dispose()


def build_platform(
    settings: Settings,
    *,
    clock: Clock | None = None,
    bus: MessageBus | None = None,
    blobs: BlobStore | None = None,
    mailer: Mailer | None = None,
) -> Platform:
    """Assemble all four services on one bus with adapters chosen by settings."""
    clock = clock or SystemClock()
    bus = bus or make_bus(settings)
    blobs = blobs or make_blob_store(settings)
    mailer = mailer or make_mailer(settings)
    contexts = {
        "intake": intake_bootstrap.bootstrap(settings, clock=clock, blobs=blobs),
        "evidence_storage": evidence_bootstrap.bootstrap(settings, clock=clock, blobs=blobs),
        "review": review_bootstrap.bootstrap(settings, clock=clock, blobs=blobs),
        "notification": notification_bootstrap.bootstrap(settings, clock=clock, mailer=mailer),
    }
    for ctx in contexts.values():
        ctx.bus = bus  # operator tools (/…/ops) work on the platform's own bus
    register_bus(bus)
    workers = [
        ServiceWorker(contexts["intake"], bus, INTAKE_SUBSCRIPTIONS, intake_jobs(contexts["intake"])),
        ServiceWorker(
            contexts["evidence_storage"],
            bus,
            EVIDENCE_SUBSCRIPTIONS,
            evidence_jobs(contexts["evidence_storage"]),
        ),
        ServiceWorker(contexts["review"], bus, REVIEW_SUBSCRIPTIONS, review_jobs(contexts["review"])),
        ServiceWorker(
            contexts["notification"],
            bus,
            NOTIFICATION_SUBSCRIPTIONS,
            notification_jobs(contexts["notification"]),
        ),
    ]
    platform = Platform(bus=bus, contexts=contexts, workers=workers)
    platform.app = _root_app(
        platform,
        {
            "intake": intake_api.create_app(contexts["intake"]),
            "evidence_storage": evidence_api.create_app(contexts["evidence_storage"]),
            "review": review_api.create_app(contexts["review"]),
            "notification": notification_api.create_app(contexts["notification"]),
        },
    )
    return platform


def _root_app(platform: Platform, apps: dict[str, FastAPI]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        platform.start()
        try:
            yield
        finally:
            platform.stop()

    root = PlatformRoot(
        services={PREFIXES[name]: app for name, app in apps.items()},
        title="宣传月佐证平台 · campaign-evidence platform",
        version=platform_version(),
        telemetry=NATIVE_TELEMETRY_OFF,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    problems.install(root)
    docs.install(root)
    root.add_middleware(RequestContextMiddleware)
    checks = {f"database.{name}": ctx.db.health for name, ctx in platform.contexts.items()}
    checks["bus"] = platform.bus.health
    checks["blob_store"] = platform.contexts["evidence_storage"].blobs.health
    checks["mailer"] = platform.contexts["notification"].mailer.health
    settings = platform.contexts["intake"].settings
    root.state.token_verifier = verifier_from_settings(settings)
    root.include_router(
        health_routes(
            HealthMonitor(checks, budget_s=settings.health_probe_timeout_s), alive=platform.liveness
        )
    )
    root.include_router(
        metrics_router(settings.metrics_token.get_secret_value() if settings.metrics_token else None)
    )

    @root.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(f"{console.PREFIX}/", status_code=307)

    @root.get("/platform", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        links = "".join(
            f'<li><a href="{prefix}/docs">{prefix}/docs</a>（{name}）</li>'
            for name, prefix in PREFIXES.items()
        )
        return (
            '<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>宣传月佐证平台</title>'
            f'<h1>宣传月佐证平台</h1><p><a href="{console.PREFIX}/">网页控制台</a></p><p>各服务接口文档：</p><ul>{links}</ul>'
            '<p><a href="/readyz">/readyz</a> 运行状态</p></html>'
        )

    for name, app in apps.items():
        root.mount(PREFIXES[name], app)
    root.mount(console.PREFIX, console.create_app())
    return root


def main() -> None:
    """Serve the embedded platform with uvicorn on HOST:PORT (default 127.0.0.1:8000)."""
    import uvicorn

    settings = Settings()
    configure_logging(settings)
    private_folder(settings.data_dir)
    try:
        platform = build_platform(settings)
    except SchemaNotCurrent as outdated:
        raise SystemExit(f"无法启动：{outdated}") from None
    refuse_unusable_store(platform.contexts["evidence_storage"].blob_store)
    freeze_startup_objects()
    uvicorn.run(
        platform.app,
        host=settings.host,
        port=settings.port,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level="info",
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
