"""API documentation pages served by the platform itself: Swagger UI at /docs, ReDoc at /redoc, no CDN.

The scripts and styles come from the fastapi-offline wheel (Swagger UI and ReDoc builds shipped on PyPI),
so the docs work on an offline government network. Every HTML page of an app gets a Content-Security-Policy
(scripts only from our own origin, no inline script) unless the page set its own.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ASSETS = "/docs-assets"
# Swagger UI and ReDoc set inline styles and ReDoc starts a worker from a blob: URL; scripts stay same-origin only.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'"
)
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
_FILES = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "application/javascript",
    "favicon.png": "image/png",
}
_SWAGGER_INIT = """window.addEventListener("DOMContentLoaded", function () {
  var holder = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: holder.dataset.openapi, dom_id: "#swagger-ui", layout: "BaseLayout", deepLinking: true,
    showExtensions: true, showCommonExtensions: true, persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]
  });
});
"""


def install(app: FastAPI) -> None:
    """Replace FastAPI's CDN-backed /docs and /redoc with self-hosted ones, and put a CSP on every HTML page."""
    if getattr(app.state, "docs_installed", False):
        return
    app.state.docs_installed = True
    app.add_middleware(HtmlSecurityHeaders)
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    dropped = {path for path in (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if path}
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) not in dropped
    ]
    title = escape(app.title)

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return _page(f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{title} · 接口文档</title>
<link rel="icon" href="{root}{ASSETS}/favicon.png"><link rel="stylesheet" href="{root}{ASSETS}/swagger-ui.css"></head>
<body><div id="swagger-ui" data-openapi="{escape(root + openapi_url)}"></div>
<script src="{root}{ASSETS}/swagger-ui-bundle.js"></script><script src="{root}{ASSETS}/swagger-init.js"></script></body></html>""")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        return _page(f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{title} · 接口文档（ReDoc）</title>
<link rel="icon" href="{root}{ASSETS}/favicon.png"></head>
<body><redoc spec-url="{escape(root + openapi_url)}"></redoc><script src="{root}{ASSETS}/redoc.standalone.js"></script></body></html>""")

    @app.get(ASSETS + "/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name == "swagger-init.js":
            return Response(_SWAGGER_INIT, media_type="application/javascript", headers=_cached())
        if name not in _FILES:
            return Response(status_code=404)
        return Response(_asset_bytes(name), media_type=_FILES[name], headers=_cached())


class HtmlSecurityHeaders:
    """Adds a Content-Security-Policy (and nosniff, no framing) to every text/html answer that has none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {key.lower() for key, _ in headers}
                content_type = next((value for key, value in headers if key.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", PAGE_CSP.encode("ascii")))
                    if b"x-content-type-options" not in names:
                        headers.append((b"x-content-type-options", b"nosniff"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_csp)


def _page(html: str) -> HTMLResponse:
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": DOCS_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-cache",
        },
    )


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _cached() -> dict[str, str]:
    return {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}


@lru_cache(maxsize=8)
def _asset_bytes(name: str) -> bytes:
    return (_asset_folder() / name).read_bytes()


def _asset_folder() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"
