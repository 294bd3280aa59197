"""The embedded root's shortcut to its services' apps answers every request as starlette's Mount does."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from starlette.routing import Mount

from deploy.prefixes import PlatformRoot, ServicePrefixes


def _service() -> FastAPI:
    """A service app with what the real ones depend on: path parameters, url_for, root_path, docs, errors."""
    app = FastAPI(title="service")

    @app.get("/items/{item_id}", name="item")
    def item(item_id: int, request: Request) -> dict:
        return {
            "item_id": item_id,
            "url": str(request.url_for("item", item_id=item_id + 1)),
            "root_path": request.scope["root_path"],
            "route": request.scope["route"].path,
            "base_url": str(request.base_url),
        }

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"body": (await request.body()).decode()}

    @app.get("/missing")
    def missing() -> dict:
        raise HTTPException(404, "no such thing")

    return app


def _roots() -> tuple[FastAPI, FastAPI]:
    """The same service mounted on a plain root (starlette's Mount) and on the platform's root."""
    plain, shortcut = FastAPI(), PlatformRoot(services={})
    for root in (plain, shortcut):

        @root.get("/livez")
        def livez() -> dict:
            return {"ok": True}

    service = _service()
    plain.mount("/intake", service)
    shortcut.services = {"/intake": service}
    shortcut.mount("/intake", service)
    return plain, shortcut


REQUESTS = [
    ("GET", "/intake/items/7", None),
    ("GET", "/intake/items/seven", None),  # 422 from the service's validation
    ("POST", "/intake/echo", "宣传月"),
    ("GET", "/intake/missing", None),
    ("GET", "/intake/nowhere", None),
    ("GET", "/intake/docs", None),
    ("GET", "/intake/openapi.json", None),
    ("GET", "/intake", None),  # the prefix without its slash is the root's to answer
    ("GET", "/intakes/items/7", None),  # a look-alike prefix is not the service's
    ("GET", "/livez", None),
    ("GET", "/elsewhere", None),
]


@pytest.mark.parametrize("root_path", ["", "/gateway"])
def test_the_shortcut_answers_as_the_mount_does(root_path):
    plain, shortcut = _roots()
    with (
        TestClient(plain, root_path=root_path, follow_redirects=False) as a,
        TestClient(shortcut, root_path=root_path, follow_redirects=False) as b,
    ):
        for method, path, body in REQUESTS:
            url = f"{root_path}{path}"
            expected, got = a.request(method, url, content=body), b.request(method, url, content=body)
            assert (got.status_code, got.content) == (expected.status_code, expected.content), (method, url)
            assert dict(got.headers) == dict(expected.headers), (method, url)
    assert isinstance(shortcut.middleware_stack, ServicePrefixes)  # the requests above went the short way
    # the service stays mounted too: the root answers what is not under its prefix (and lists it)
    assert any(isinstance(route, Mount) for route in shortcut.routes)
