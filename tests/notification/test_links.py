"""Every link the e-mails carry opens a page of the web console (never a JSON endpoint that needs a token)."""

from __future__ import annotations

import inspect
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from services.console.app import create_app
from services.notification.links import Links

BASE = "https://campaign.example.org"
EXPECTED_PAGE = {  # Links method → the console page it must open
    "home": "home",
    "campaign": "campaign",
    "materials": "campaign",
    "unit": "unit",
    "submission": "submission",
    "unit_submissions": "tasks",
    "evidence": "submission",
    "review_item": "queue",
    "review_queue": "queue",
    "inspection": "inspection",
    "supervision": "supervision",
    "circular": "circular",
}


def _links() -> list[tuple[str, str]]:
    links = Links(BASE + "/")
    made = []
    for name, method in inspect.getmembers(links, inspect.ismethod):
        if name.startswith("_") or name == "absolute":
            continue
        arguments = ["0b5c1c3e-7d1e-4a55-9d1f-1f5b7c1d2e3f"] * (len(inspect.signature(method).parameters))
        made.append((name, method(*arguments)))
    return made


def test_every_link_method_is_checked():
    assert {name for name, _ in _links()} == set(EXPECTED_PAGE)


@pytest.mark.parametrize("name, url", _links(), ids=[name for name, _ in _links()])
def test_each_mail_link_opens_its_console_page(name, url):
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE and parts.path.startswith("/console/"), url
    console = TestClient(create_app())
    page = console.get(parts.path.removeprefix("/console"), params=parts.query or None)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'data-page="{EXPECTED_PAGE[name]}"' in page.text
    # a page that needs a log-in sends the reader to 登录 and back (console.js reads data-roles; login.js `next`)
    if EXPECTED_PAGE[name] != "home":
        assert 'data-roles="' in page.text and 'data-roles=""' not in page.text
