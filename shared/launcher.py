"""The composition root of a distributed service process: `python -m services.<name> api|worker`."""
from __future__ import annotations

import argparse
import logging
from typing import Callable, Mapping, Sequence

from fastapi import FastAPI

from shared.adapters import make_bus
from shared.blobs.port import BlobStore, BlobStoreMisconfigured, BlobStoreUnavailable
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
    if ctx.blobs is not None:
        refuse_unusable_store(ctx.blobs)
    if args.role == "api":
        import uvicorn

        uvicorn.run(create_app(ctx), host=settings.host, port=args.port or settings.port, root_path=settings.root_path,
                    log_level="info")
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


def refuse_unusable_store(blobs: BlobStore) -> None:
    """Exit with a clear message when the blob store's settings cannot work, instead of failing the first write."""
    try:
        blobs.check_config()
    except (BlobStoreMisconfigured, BlobStoreUnavailable) as exc:
        log.error("blob store check failed, not starting: %s", exc)
        raise SystemExit(f"无法启动：对象存储不可用 (blob store unusable): {exc}") from None
    log.info("blob store checked: %s", {k: v for k, v in blobs.health().items() if k != "free_bytes"})
