"""Finding the real servers tests need: skip when absent, fail when REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def port_open(url: str, default_port: int) -> bool:
    """Whether something listens at the URL's host and port."""
    parsed = urlparse(url.replace("postgresql+psycopg", "postgresql"))
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


def need(service: str, available: bool) -> None:
    """Skip (or fail under REQUIRE_SERVICES=1) when a service is missing."""
    if available:
        return
    message = f"{service} is not reachable; start it (see README) or unset the test's marker"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but {message}", pytrace=False)
    pytest.skip(message)


def unique(prefix: str) -> str:
    """A name no earlier or concurrent run uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database for this run and drop it afterwards; yields its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    need("PostgreSQL", port_open(POSTGRES_URL, 5432))
    name = unique("cep_test_")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def delete_rabbitmq_objects(url: str, *, queues: list[str], exchanges: list[str]) -> None:
    """Remove queues and exchanges a test created (missing ones are fine)."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for name in queues:
            channel = connection.channel()
            channel.queue_delete(queue=name)
            channel.close()
        for name in exchanges:
            channel = connection.channel()
            channel.exchange_delete(exchange=name)
            channel.close()
    finally:
        connection.close()
