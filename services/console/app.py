"""The console's FastAPI app: server-rendered page skeletons (Jinja2) and static JavaScript and CSS.

The pages carry no data: the browser logs in at intake, keeps the token in sessionStorage and calls the
services' APIs under their prefixes (same origin: the embedded app or the gateway), so the console needs
no database, no token key and no access rule of its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.console.pages import HOME_BY_ROLE, PAGES, ROLE_NAMES, Page
from shared import problems
from shared.observe import NATIVE_TELEMETRY_OFF

PREFIX = "/console"  # where the console is mounted (embedded) or routed (gateway)
API_PREFIXES = {
    "intake": "/intake",
    "evidence": "/evidence",
    "review": "/review",
    "notification": "/notification",
}
HERE = Path(__file__).resolve().parent
# Scripts only from our own origin; previews are blob: URLs; a video may play from a presigned store URL.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob: http: https:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)


def create_app(*, api_prefixes: Mapping[str, str] | None = None) -> FastAPI:
    """The console app; api_prefixes says where the browser finds each service (same origin)."""
    app = FastAPI(
        title="console · 网页控制台",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=NATIVE_TELEMETRY_OFF,
    )
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined)
    version = _static_version()
    api = json.dumps(dict(api_prefixes or API_PREFIXES), ensure_ascii=False)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    problems.install(app)  # its own CSP middleware below covers every answer, error pages included

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.url.path.endswith((".js", ".css")):
            response.headers["Cache-Control"] = (
                "public, max-age=86400" if "v" in request.query_params else "no-cache"
            )
        return response

    def render(page: Page, request: Request, params: dict[str, str]) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        html = env.get_template(page.template).render(
            page=page,
            pages=PAGES,
            params=params,
            root=root,
            api=api,
            roles=" ".join(page.roles),
            static=lambda name: f"{root}/static/{name}?v={version}",
            role_names=ROLE_NAMES,
            homes=json.dumps(HOME_BY_ROLE),
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    for page in PAGES:
        _add_page(app, page, render)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"ok": True, "service": "console"})

    @app.get("/index.html", include_in_schema=False)
    def index(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '').rstrip('/')}/", status_code=307)

    return app


def _add_page(app: FastAPI, page: Page, render) -> None:
    def show(request: Request) -> HTMLResponse:
        return render(page, request, dict(request.path_params))

    show.__name__ = f"page_{page.name}"
    app.add_api_route(page.path, show, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)


def _static_version() -> str:
    """A short hash of the static files, so browsers fetch new scripts after an upgrade."""
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]
