"""Fixtures shared by every test: real servers, each run in its own fresh world."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services import RABBITMQ_URL, fresh_postgres_database, need, port_open, unique

TIERS = ("unit", "integration", "browser", "fault", "fuzz")
_TESTS = Path(__file__).parent
# Tier by top-level folder under tests/, then by the fixtures a test uses; unmarked tests are unit tests.
# flows/ drives the whole platform end to end (every service, its worker loops, often subprocesses).
_FOLDER_TIERS = {"console": "browser", "faults": "fault", "fuzz": "fuzz", "flows": "integration"}
_SERVER_FIXTURES = {"rabbitmq_url": "rabbitmq", "postgres_url": "postgres"}
# Parameters that make a fixture ask for a server through request.getfixturevalue() (e.g. world[postgresql]).
_SERVER_PARAMS = {"postgresql": "postgres", "postgres": "postgres", "rabbitmq": "rabbitmq"}


def _server_markers(item: pytest.Item) -> set[str]:
    """The server markers a test needs: from the fixtures it names and from parameters that pick a server."""
    fixtures = set(getattr(item, "fixturenames", ()))
    needed = {marker for fixture, marker in _SERVER_FIXTURES.items() if fixture in fixtures}
    callspec = getattr(item, "callspec", None)
    for value in callspec.params.values() if callspec else ():
        if isinstance(value, str) and value in _SERVER_PARAMS:
            needed.add(_SERVER_PARAMS[value])
    return needed


def _tier(item: pytest.Item) -> str:
    """The one tier a collected test belongs to (see the markers in pyproject.toml)."""
    explicit = [name for name in TIERS if item.get_closest_marker(name) is not None]
    if explicit:
        return explicit[0]
    folder = Path(item.path).relative_to(_TESTS).parts[0]
    if folder in _FOLDER_TIERS:
        return _FOLDER_TIERS[folder]
    if "schemathesis" in getattr(getattr(item, "module", None), "__dict__", {}):
        return "fuzz"
    if _server_markers(item) or any(item.get_closest_marker(m) for m in _SERVER_FIXTURES.values()):
        return "integration"
    return "unit"


def pytest_configure(config: pytest.Config) -> None:
    """Raise the open-files limit to the hard limit: the fault suite serves eight processes' S3 and SMTP traffic
    from this process (moto, aiosmtpd and the fault proxies), and a 1024 soft limit is easy to reach there."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < min(wanted, 65536):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, 65536), hard))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test exactly one tier marker, and the server markers its fixtures imply."""
    for item in items:
        tier = _tier(item)
        if item.get_closest_marker(tier) is None:
            item.add_marker(tier)
        for marker in _server_markers(item):
            if item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@pytest.fixture
def rabbitmq_url() -> str:
    """The broker URL; skips (or fails under REQUIRE_SERVICES=1) when RabbitMQ is down."""
    need("RabbitMQ", port_open(RABBITMQ_URL, 5672))
    return RABBITMQ_URL


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def run_name() -> str:
    """A unique prefix for exchanges and queues created by one test."""
    return unique("test.")


@pytest.fixture(scope="session")
def moto_s3():
    """One in-process moto S3 server for the whole run."""
    from tests.servers import moto_s3_server

    with moto_s3_server() as server:
        yield server


@pytest.fixture
def s3(moto_s3):
    """The moto S3 server with a fresh bucket name (not created yet); the bucket is removed afterwards."""
    target = moto_s3.fresh()
    yield target
    target.remove_bucket()


@pytest.fixture
def smtp():
    """A recording SMTP server of this test's own, on a free port."""
    from tests.servers import smtp_server

    with smtp_server() as server:
        yield server
