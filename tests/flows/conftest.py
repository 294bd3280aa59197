"""An embedded platform per test: fresh SQLite files, blob folder and mail folder under tmp_path."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from deploy.embedded import build_platform
from shared.settings import Settings
from tests.flows.steps import admin_token


@pytest.fixture
def platform(tmp_path):
    """A started embedded platform with short retry delays."""
    settings = Settings(data_dir=tmp_path, bus_retry_delays_ms=(50, 100), outbox_poll_s=0.1)
    built = build_platform(settings)
    with TestClient(built.app) as client:
        built.client = client
        yield built


@pytest.fixture
def client(platform) -> TestClient:
    """HTTP client of the started embedded platform, logged in as an admin."""
    platform.client.headers["Authorization"] = f"Bearer {admin_token(platform.contexts['intake'])}"
    return platform.client
