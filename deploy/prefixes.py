"""The embedded root app's shortcut: a request under a service's prefix goes straight to that service's app."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send


class ServicePrefixes:
    """Hands an HTTP request under a service's prefix to the service's app as starlette's Mount would (the same
    child scope, with the root's router, which `url_for` asks); everything else (other paths, lifespan) goes to
    the root app's own stack."""

    def __init__(self, services: Mapping[str, ASGIApp], root: ASGIApp, router: ASGIApp) -> None:
        self._services = [(prefix.rstrip("/") + "/", app) for prefix, app in services.items()]
        self._root, self._router = root, router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root_path = scope.get("root_path", "")
            path = scope["path"]
            route_path = path[len(root_path) :] if root_path and path.startswith(root_path + "/") else path
            for prefix, app in self._services:
                if route_path.startswith(prefix):
                    child = {
                        **scope,
                        "path_params": dict(scope.get("path_params", {})),
                        "app_root_path": scope.get("app_root_path", root_path),
                        "root_path": root_path + prefix[:-1],
                        "endpoint": app,
                        "router": self._router,
                    }
                    await app(child, receive, send)
                    return
        await self._root(scope, receive, send)


class PlatformRoot(FastAPI):
    """The embedded root app. Each service app mounted on it carries the root's middleware of its own (request id,
    problem answers, security headers) and its request metrics, so a request under a service's prefix skips the
    root's stack and router, which cost about 45 µs of CPU a request (docs/architecture.md, twelfth round)."""

    def __init__(self, *, services: Mapping[str, ASGIApp], **settings: Any) -> None:
        super().__init__(**settings)
        self.services = dict(services)  # prefix -> the service's app (mounted on the root as well)

    def build_middleware_stack(self) -> ASGIApp:
        """The root's own stack, behind the shortcut to the services given in `services`."""
        return ServicePrefixes(self.services, super().build_middleware_stack(), self.router)
