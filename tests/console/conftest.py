"""Fixtures of the console's browser tests: Chromium (Debian's), a live platform per test, screenshots."""

from __future__ import annotations

import importlib.util

import pytest

from tests.console.support import CHROMIUM, CHROMIUM_ARGS, LiveServer, Shots, build_world
from tests.services import need

_shot_folders: list[str] = []


@pytest.fixture(scope="package")  # Playwright's sync API holds an event loop: end it with this package
def browser():
    """Debian's Chromium driven by Playwright (never `playwright install`); skips when either is missing."""
    need("Chromium at /usr/bin/chromium (apt-get install chromium fonts-noto-cjk)", CHROMIUM.exists())
    need(
        "the Python package playwright (pip install -e '.[test]')",
        importlib.util.find_spec("playwright") is not None,
    )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(
        timeout=15_000
    )  # assertions wait as long as actions: a loaded 2-core CI machine is slow
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def world(tmp_path):
    """The embedded platform served over real HTTP with the Huaibei campaign, a liaison and a reviewer login."""
    from deploy.embedded import build_platform
    from shared.settings import Settings
    from tests.flows.steps import admin_token

    settings = Settings(
        data_dir=tmp_path, bus_retry_delays_ms=(50, 100), outbox_poll_s=0.1, ocr_enabled=True, ocr_poll_s=0.5
    )  # OCR on: the review queue shows what the photos say
    platform = build_platform(settings)
    server = LiveServer(platform.app).start()
    try:
        world = build_world(server.url, admin_token(platform.contexts["intake"]))
        world.platform = platform
        yield world
        world.admin.close()
    finally:
        server.stop()


@pytest.fixture
def shots(request):
    """Screenshots of this test, kept under artifacts/console/<test name>/ (the folder is printed)."""
    taken = Shots(request.node.name)
    yield taken
    _shot_folders.append(str(taken.folder))
    print(f"\nscreenshots: {taken.folder}")


@pytest.fixture
def contexts(browser):
    """New browser contexts (each its own sessionStorage) for this test; no page may throw a script error."""
    opened = []
    errors: list[str] = []

    def make(**options):
        context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **options)
        context.set_default_timeout(15000)
        context.on(
            "page", lambda page: page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        )
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()
    assert errors == [], f"script errors in the console: {errors}"


def pytest_terminal_summary(terminalreporter):
    """Say where the screenshots are."""
    if _shot_folders:
        terminalreporter.write_line(f"console screenshots: {', '.join(sorted(set(_shot_folders)))}")
