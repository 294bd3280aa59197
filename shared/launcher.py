"""The composition root of a distributed service process: `python -m services.<name> api|worker`."""
from __future__ import annotations

import argparse
import logging
from typing import Callable, Mapping, Sequence

from fastapi import FastAPI

from shared.adapters import make_bus
from shared.bus.port import MessageBus
from shared.health import HealthMonitor, HealthServer, service_checks, worker_health_app
from shared.db import SchemaOutdated
from shared.messaging import EventHandler
from shared.runtime import PeriodicJob, ServiceContext, ServiceWorker, configure_logging, run_until_signalled
from shared.settings import Settings

log = logging.getLogger(__name__)


def launch(
    argv: Sequence[str] | None,
    *,
    service: str,
    bootstrap: Callable[[Settings], ServiceContext],
    create_app: Callable[[ServiceContext], FastAPI],
    subscriptions: Mapping[str, Sequence[EventHandler]],
    jobs: Callable[[ServiceContext], Sequence[PeriodicJob]] = lambda ctx: (),
) -> None:
    """Parse the role from argv and run the service's API or worker with adapters from the environment."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    parser.add_argument("role", choices=["api", "worker"], help="serve the HTTP API, or consume events and relay the outbox")
    parser.add_argument("--port", type=int, default=None, help="HTTP port for the api role (default: PORT)")
    args = parser.parse_args(argv)
    configure_logging()
    settings = Settings()
    try:
        ctx = bootstrap(settings)
    except SchemaOutdated as outdated:
        raise SystemExit(f"无法启动：{outdated}") from None
    if args.role == "api":
        import uvicorn

        uvicorn.run(create_app(ctx), host=settings.host, port=args.port or settings.port, root_path=settings.root_path,
                    log_level="info")
        return
    bus = make_bus(settings)
    worker = ServiceWorker(ctx, bus, subscriptions, jobs(ctx))
    health = worker_health_server(ctx, bus, worker) if settings.health_port else None

    def start() -> None:
        worker.start()
        bus.start()
        if health is not None:
            health.start()

    def stop() -> None:
        if health is not None:
            health.stop()
        bus.stop()
        worker.stop()

    run_until_signalled(start, stop)


def worker_health_server(ctx: ServiceContext, bus: MessageBus, worker: ServiceWorker) -> HealthServer:
    """The worker's /livez (its loops run, none stuck) and /readyz (database, store or mailer, broker) on HEALTH_PORT."""
    monitor = HealthMonitor(service_checks(ctx, bus_check=bus.health), budget_s=ctx.settings.health_probe_timeout_s)
    app = worker_health_app(monitor, alive=worker.liveness, settings=ctx.settings)
    return HealthServer(app, host=ctx.settings.host, port=ctx.settings.health_port)
