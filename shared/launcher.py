"""The composition root of a distributed service process: `python -m services.<name> api|worker`."""
from __future__ import annotations

import argparse
import logging
import os
from typing import Callable, Mapping, Sequence

from fastapi import FastAPI

from shared.adapters import make_bus
from shared.db import SchemaOutdated
from shared.messaging import EventHandler
from shared.runtime import PeriodicJob, ServiceContext, ServiceWorker, configure_logging, run_until_signalled
from shared.settings import Settings

log = logging.getLogger(__name__)
_SERVICE_ENV = "CEP_API_SERVICE"  # which service a uvicorn worker process of worker_app serves


def worker_app() -> FastAPI:
    """The API of the service named in the environment, built in a uvicorn worker process (API_WORKERS > 1)."""
    import importlib

    service = os.environ[_SERVICE_ENV]
    configure_logging()
    bootstrap = importlib.import_module(f"services.{service}.bootstrap").bootstrap
    create_app = importlib.import_module(f"services.{service}.api").create_app
    return create_app(bootstrap(Settings()))


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

        port = args.port or settings.port
        if settings.api_workers > 1:
            # Each worker process builds its own context from the same environment (API_WORKERS > 1).
            ctx.db.dispose()
            os.environ[_SERVICE_ENV] = service
            log.info("%s API: %d worker processes on port %d", service, settings.api_workers, port)
            uvicorn.run(f"{__name__}:worker_app", factory=True, workers=settings.api_workers, host=settings.host, port=port,
                        root_path=settings.root_path, log_level="info")
            return
        uvicorn.run(create_app(ctx), host=settings.host, port=port, root_path=settings.root_path, log_level="info")
        return
    bus = make_bus(settings)
    worker = ServiceWorker(ctx, bus, subscriptions, jobs(ctx))

    def start() -> None:
        worker.start()
        bus.start()

    def stop() -> None:
        bus.stop()
        worker.stop()

    run_until_signalled(start, stop)
