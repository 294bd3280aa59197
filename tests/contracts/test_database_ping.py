"""Pooled PostgreSQL connections are pinged before use only after sitting idle (DATABASE_PING_IDLE_S)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from shared.db import Database

SCHEMA = "ping_contract"


def _pings(outcome: str) -> float:
    return REGISTRY.get_sample_value("cep_db_pings_total", {"schema": SCHEMA, "outcome": outcome}) or 0.0


def _backend(db: Database) -> int:
    with db.session() as uow:
        return uow.scalar(text("SELECT pg_backend_pid()"))


def _terminate(url: str, pid: int) -> None:
    """Drop one backend from outside, as a PostgreSQL restart or an idle cut by the network would."""
    # Activity statistics are cached per transaction: poll outside any, or the first answer repeats forever.
    other = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with other.connect() as conn:
            assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}) is True
            # pg_terminate_backend only signals; wait until the backend is gone
            for _ in range(750):  # up to 15 s on a busy machine
                if not conn.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ):
                    return
                time.sleep(0.02)
    finally:
        other.dispose()
    raise AssertionError(f"backend {pid} did not go away")


@pytest.fixture
def database(postgres_url):
    """A factory of one-connection pools on a fresh database, disposed afterwards."""
    made: list[Database] = []

    def make(ping_idle_s: float) -> Database:
        db = Database(postgres_url, schema=SCHEMA, pool_size=1, pool_overflow=0, ping_idle_s=ping_idle_s)
        made.append(db)
        return db

    yield make
    for db in made:
        db.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced_unseen(database, postgres_url):
    db = database(0.2)
    first = _backend(db)
    _terminate(postgres_url, first)
    time.sleep(0.3)
    replaced = _pings("replaced")
    assert _backend(db) != first  # the caller never saw the dead connection
    assert _pings("replaced") == replaced + 1


def test_an_idle_connection_still_alive_is_pinged_and_kept(database):
    db = database(0.1)
    first = _backend(db)
    time.sleep(0.2)
    alive = _pings("alive")
    assert _backend(db) == first
    assert _pings("alive") == alive + 1


def test_zero_pings_before_every_use(database, postgres_url):
    db = database(0.0)
    first = _backend(db)
    _terminate(postgres_url, first)
    assert _backend(db) != first


def test_a_connection_used_moments_ago_is_not_pinged_and_a_drop_fails_only_once(database, postgres_url):
    """The trade the setting makes (docs/deployment.md): no round trip for a connection just handed back, so a
    drop within idle_s fails the next transaction once; the pool is then invalidated and the one after succeeds."""
    db = database(60.0)
    first = _backend(db)
    alive, replaced = _pings("alive"), _pings("replaced")
    assert _backend(db) == first
    assert (_pings("alive"), _pings("replaced")) == (alive, replaced)
    _terminate(postgres_url, first)
    with pytest.raises(OperationalError) as failed:
        _backend(db)
    assert failed.value.connection_invalidated
    assert _backend(db) != first


def test_an_api_request_that_meets_the_dropped_connection_answers_503_and_the_next_succeeds(
    database, postgres_url
):
    """What a caller sees of that one failure: 503 with Retry-After in the platform's envelope, not a 500."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shared import problems

    db = database(60.0)
    app = FastAPI()
    problems.install(app)

    @app.get("/backend")
    def backend() -> dict[str, int]:
        return {"pid": _backend(db)}

    with TestClient(app, raise_server_exceptions=False) as client:
        first = client.get("/backend").json()["pid"]
        _terminate(postgres_url, first)
        failed = client.get("/backend")
        assert failed.status_code == 503 and failed.headers["retry-after"] == "1"
        assert failed.json()["code"] == "database_unavailable"
        assert client.get("/backend").json()["pid"] != first
