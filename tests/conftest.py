"""Fixtures shared by every test: real servers, each run in its own fresh world."""
from __future__ import annotations

import pytest

from tests.services import RABBITMQ_URL, fresh_postgres_database, need, port_open, unique


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
