"""Swagger UI and ReDoc come from the platform itself (no CDN), and every HTML page carries a CSP."""

from __future__ import annotations

import re

import pytest

from tests.console.support import LiveServer

EXTERNAL = re.compile(r"(src|href)=\"(https?:)?//", re.IGNORECASE)


@pytest.mark.parametrize("prefix", ["/intake", "/evidence", "/review", "/notification"])
def test_docs_pages_load_their_assets_from_the_platform_with_a_csp(platform, prefix):
    client = platform.client
    for page in ("docs", "redoc"):
        response = client.get(f"{prefix}/{page}")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
        assert not EXTERNAL.search(response.text), response.text
        assert "<script>" not in response.text  # no inline script: the CSP would block it
        for asset in re.findall(r"(?:src|href)=\"([^\"]+)\"", response.text):
            fetched = client.get(asset)
            assert fetched.status_code == 200 and len(fetched.content) > 100, asset
    assert client.get(f"{prefix}/docs-assets/../../etc/passwd").status_code == 404
    assert client.get(f"{prefix}/docs-assets/unknown.js").status_code == 404


def test_every_html_page_has_a_csp(platform):
    client = platform.client
    for path in ("/platform", "/console/", "/console/login"):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html"), path
        assert "default-src 'self'" in response.headers["content-security-policy"], path


@pytest.mark.browser
def test_swagger_ui_and_redoc_render_in_a_browser_without_csp_violations(platform, browser):
    server = LiveServer(platform.app).start()
    violations: list[str] = []
    context = browser.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                violations.append(message.text)
                if "Content Security Policy" in message.text or "Refused to" in message.text
                else None
            ),
        )
        page.on("pageerror", lambda error: violations.append(str(error)))
        page.goto(f"{server.url}/intake/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "intake" in page.inner_text(".swagger-ui .info .title")
        page.goto(f"{server.url}/review/redoc")
        page.wait_for_selector("h1", timeout=30_000)
        assert "review" in page.inner_text("h1")
    finally:
        context.close()
        server.stop()
    # ReDoc's sidebar links its "powered by" logo from its vendor's CDN: the CSP blocks that one image, as it should.
    assert [text for text in violations if "cdn.redoc.ly" not in text] == []
