"""Intake on its own: a real SQLite database and blob folder under tmp_path, a clock the test moves."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.intake.api import create_app
from services.intake.bootstrap import bootstrap
from shared.clock import FixedClock
from shared.settings import Settings
from tests.intake.support import BEFORE_CAMPAIGN, admin_header


@pytest.fixture
def clock() -> FixedClock:
    """A clock that stands still until the test moves it."""
    return FixedClock(BEFORE_CAMPAIGN)


@pytest.fixture
def ctx(tmp_path, clock):
    """An intake service context on a fresh SQLite file and blob folder."""
    context = bootstrap(Settings(data_dir=tmp_path), clock=clock)
    yield context
    context.db.dispose()


@pytest.fixture
def api(ctx) -> TestClient:
    """HTTP client of the intake app alone, as an admin (no bus: events stay in the outbox, where tests read them)."""
    with TestClient(create_app(ctx)) as client:
        client.headers.update(admin_header(ctx))
        yield client
