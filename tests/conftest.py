"""Fixtures shared by every test: real servers, each run in its own fresh world."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services import RABBITMQ_URL, fresh_postgres_database, need, port_open, unique

TIERS = ("unit", "integration", "browser", "fault", "fuzz")
_TESTS = Path(__file__).parent
# Tier by top-level folder under tests/, then by what a test needs: a server (PostgreSQL, RabbitMQ, moto's S3,
# SMTP), processes (marked explicitly) or the whole platform make it integration; the rest are unit tests.
# flows/ drives the whole platform end to end (every service, its worker loops, often subprocesses).
_FOLDER_TIERS = {"console": "browser", "faults": "fault", "fuzz": "fuzz", "flows": "integration"}
_SERVER_FIXTURES = {"rabbitmq_url": "rabbitmq", "postgres_url": "postgres"}
# Parameters that make a fixture ask for a server through request.getfixturevalue() (e.g. world[postgresql]).
_SERVER_PARAMS = {"postgresql": "postgres", "postgres": "postgres", "rabbitmq": "rabbitmq"}
# Servers the tests start in-process (moto's S3 over HTTP, aiosmtpd) are real servers too: integration tier.
_LOCAL_SERVER_FIXTURES = {"moto_s3", "s3", "smtp"}
_LOCAL_SERVER_PARAMS = {"s3", "smtp"}


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
    if _uses_local_server(item) or _builds_the_platform(item):
        return "integration"
    return "unit"


# deploy/embedded.py and tests/review/inspection_world.py
_PLATFORM_BUILDERS = ("build_platform", "CampaignWorld")


def _builds_the_platform(item: pytest.Item) -> bool:
    """Whether the test runs all four services together (the embedded platform), in its module or a fixture."""
    modules = [getattr(item, "module", None)]
    info = getattr(item, "_fixtureinfo", None)
    for definitions in info.name2fixturedefs.values() if info else ():
        modules += [getattr(d.func, "__globals__", None) for d in definitions]
    return any(
        any(name in (m if isinstance(m, dict) else getattr(m, "__dict__", {})) for name in _PLATFORM_BUILDERS)
        for m in modules
        if m is not None
    )


def _uses_local_server(item: pytest.Item) -> bool:
    """Whether the test talks to a server started for it (moto S3, SMTP), by fixture or by parameter."""
    if _LOCAL_SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return any(
        isinstance(value, str) and value in _LOCAL_SERVER_PARAMS
        for value in (callspec.params.values() if callspec else ())
    )


def pytest_configure(config: pytest.Config) -> None:
    """Cheap password hashes and no OCR unless a test asks; raise the open-files limit to the hard limit: the fault suite serves eight
    processes' S3 and SMTP traffic from this process (moto, aiosmtpd and the fault proxies), where a 1024 soft
    limit is easy to reach."""
    import os
    import resource

    # argon2id at RFC 9106's 64 MiB and 3 passes is a quarter second a hash; every test world logs an admin in.
    # Processes the tests start inherit these. Production keeps the defaults (shared/settings.py).
    os.environ.setdefault("AUTH_HASH_MEMORY_KIB", "8192")
    os.environ.setdefault("AUTH_HASH_TIME_COST", "1")
    # OCR reads every uploaded photo in the background (about a second of CPU and 500 MiB for the engine): only
    # the tests about it turn it on (tests/evidence_storage/test_ocr.py, the console's review queue).
    os.environ.setdefault("OCR_ENABLED", "false")

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


@pytest.fixture(scope="session", autouse=True)
def _migrated_sqlite_templates(tmp_path_factory):
    """A fresh SQLite service database starts as a copy of one migrated once per run (about 50 ms a world saved).

    Only empty files at the head revision are filled; the migrations themselves are tested on their own
    (tests/operations/test_migrations.py calls shared.migrations.upgrade directly, not through this)."""
    from shared import migrations
    from shared.db import Database

    real = migrations.upgrade
    templates: dict[str, bytes] = {}

    def template(service: str) -> bytes:
        if service not in templates:
            path = tmp_path_factory.mktemp("schema") / f"{service}.db"
            scratch = Database(f"sqlite:///{path}", schema=service)
            try:
                real(scratch, service)
            finally:
                scratch.dispose()  # the last connection's close checkpoints the WAL into the file
            assert not Path(f"{path}-wal").exists(), "the template's WAL was not checkpointed"
            templates[service] = path.read_bytes()
        return templates[service]

    def upgrade(db: Database, service: str, revision: str = "head") -> str | None:
        database = db.url.database if db.is_sqlite else None
        if revision == "head" and database and database != ":memory:":
            path = Path(database)
            if path.is_file() and path.stat().st_size == 0 and not Path(f"{database}-wal").exists():
                db.dispose()
                path.write_bytes(template(service))  # into the existing file: its 0600 mode stays
        return real(db, service, revision)

    migrations.upgrade = upgrade
    yield
    migrations.upgrade = real
