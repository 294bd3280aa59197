"""The composition root of a distributed service process: `python -m services.<name> api|worker|migrate`."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI

from shared.adapters import make_bus
from shared.blobs.port import BlobStore, BlobStoreMisconfigured, BlobStoreUnavailable
from shared.bus.port import MessageBus
from shared.db import service_database
from shared.health import HealthMonitor, HealthServer, HealthServerFailed, service_checks, worker_health_app
from shared.messaging import EventHandler
from shared.metrics import metrics_router, register_bus, register_service
from shared.migrations import SchemaNotCurrent, head_revision, new_revision, upgrade
from shared.outbox_wake import wake_relays_on_commit
from shared.runtime import (
    PeriodicJob,
    ServiceContext,
    ServiceWorker,
    configure_logging,
    freeze_startup_objects,
    run_until_signalled,
)
from shared.settings import Settings

log = logging.getLogger(__name__)
_SERVICE_ENV = "CEP_API_SERVICE"  # which service a uvicorn worker process of worker_app serves


def worker_app() -> FastAPI:
    """The API of the service named in the environment, built in a uvicorn worker process (API_WORKERS > 1)."""
    import importlib

    service = os.environ[_SERVICE_ENV]
    settings = Settings()
    configure_logging(settings, service=service, role="api")
    bootstrap = importlib.import_module(f"services.{service}.bootstrap").bootstrap
    create_app = importlib.import_module(f"services.{service}.api").create_app
    ctx = bootstrap(settings)
    wake_relays_on_commit(ctx)
    app: FastAPI = create_app(ctx)
    freeze_startup_objects()
    return app


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
    parser.add_argument(
        "role",
        choices=["api", "worker", "migrate"],
        help="serve the HTTP API, consume events and relay the outbox, or upgrade the database schema",
    )
    parser.add_argument("--port", type=int, default=None, help="HTTP port for the api role (default: PORT)")
    parser.add_argument(
        "--to", default="head", help="migrate: the revision to upgrade to (default: the newest)"
    )
    parser.add_argument(
        "--new-revision",
        metavar="MESSAGE",
        default=None,
        help="migrate: write a new revision from the models' changes instead (developers)",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings, service=service, role=args.role)
    if args.role == "migrate":
        migrate(settings, service, to=args.to, new=args.new_revision)
        return
    try:
        ctx = bootstrap(settings)
    except SchemaNotCurrent as outdated:
        raise SystemExit(f"无法启动：{outdated}") from None
    if ctx.blobs is not None:
        refuse_unusable_store(ctx.blobs)
    if args.role == "api":
        import uvicorn

        wake_relays_on_commit(ctx)
        port = args.port or settings.port
        # X-Forwarded-For/-Proto are believed only from FORWARDED_ALLOW_IPS (the gateway), so audit rows
        # record the user's address rather than the gateway's.
        served: dict[str, Any] = dict(
            host=settings.host,
            port=port,
            root_path=settings.root_path,
            log_level="info",
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            log_config=None,
            access_log=False,
        )
        if settings.api_workers > 1:
            # Each worker process builds its own context from the same environment (API_WORKERS > 1).
            ctx.db.dispose()
            os.environ[_SERVICE_ENV] = service
            metrics_dir, made = _shared_metrics_dir(service)
            log.info(
                "%s API: %d worker processes on port %d; /metrics sums them (counters in %s)",
                service,
                settings.api_workers,
                port,
                metrics_dir,
            )
            from shared.http_workers import WorkersConfig, serve_in_workers

            serve_in_workers(
                WorkersConfig(f"{__name__}:worker_app", factory=True, workers=settings.api_workers, **served)
            )
            if made:
                shutil.rmtree(metrics_dir, ignore_errors=True)
            return
        app = create_app(ctx)
        freeze_startup_objects()
        uvicorn.run(app, **served)
        return
    bus = make_bus(settings)
    worker = ServiceWorker(ctx, bus, subscriptions, jobs(ctx))
    health = worker_health_server(ctx, bus, worker) if settings.health_port else None
    register_service(ctx)  # served at /metrics by the worker's health server (HEALTH_PORT)
    register_bus(bus)

    def start() -> None:
        if health is not None:
            # first: a worker without its probes would run on unwatched, so it exits before it consumes anything
            try:
                health.start()
            except HealthServerFailed as exc:
                log.error(
                    "%s (is HEALTH_PORT taken?): exiting for the supervisor to restart this worker", exc
                )
                raise SystemExit(1) from exc
        worker.start()
        bus.start()

    def stop() -> None:
        if health is not None:
            health.stop()
        bus.stop()
        worker.stop()

    freeze_startup_objects()
    run_until_signalled(start, stop)


def _shared_metrics_dir(service: str) -> tuple[str, bool]:
    """The folder where API worker processes keep their counters for /metrics to sum (prometheus-client's
    multiprocess mode): PROMETHEUS_MULTIPROC_DIR if the operator set one, emptied of an earlier run's files,
    else a fresh temporary folder. Set before uvicorn spawns the workers, which read it when they import."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))
        return directory, False
    directory = tempfile.mkdtemp(prefix=f"cep-metrics-{service}-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory, True


def worker_health_server(ctx: ServiceContext, bus: MessageBus, worker: ServiceWorker) -> HealthServer:
    """The worker's /livez (its loops run, none stuck) and /readyz (database, store or mailer, broker) on HEALTH_PORT."""
    monitor = HealthMonitor(
        service_checks(ctx, bus_check=bus.health), budget_s=ctx.settings.health_probe_timeout_s
    )
    app = worker_health_app(monitor, alive=worker.liveness, settings=ctx.settings)
    token = ctx.settings.metrics_token
    app.include_router(
        metrics_router(token.get_secret_value() if token else None)
    )  # /metrics (shared/metrics.py)
    return HealthServer(app, host=ctx.settings.host, port=ctx.settings.health_port)


def migrate(settings: Settings, service: str, *, to: str = "head", new: str | None = None) -> None:
    """Upgrade the service's database to a revision, or autogenerate a new revision from its models."""
    if new is not None:
        path = new_revision(service, new)
        print(
            f"new revision written: {path}  (read it, then test: pytest tests/operations/test_migrations.py)"
        )
        return
    db = service_database(settings, service)
    try:
        at = upgrade(db, service, to)
    finally:
        db.dispose()
    print(f"{service}: database at revision {at} (code head {head_revision(service)})")


def refuse_unusable_store(blobs: BlobStore) -> None:
    """Exit with a clear message when the blob store's settings cannot work, instead of failing the first write."""
    try:
        blobs.check_config()
    except (BlobStoreMisconfigured, BlobStoreUnavailable) as exc:
        log.error("blob store check failed, not starting: %s", exc)
        raise SystemExit(f"无法启动：对象存储不可用 (blob store unusable): {exc}") from None
    log.info("blob store checked: %s", {k: v for k, v in blobs.health().items() if k != "free_bytes"})
