"""Reads and writes: Database.session() reads without locking, Database.transaction() is the one way to write."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import Database, ReadOnlySession
from tests.helpers import create_tables


class _Base(DeclarativeBase):
    pass


class _Counter(_Base):
    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    """A fresh database of each kind with one counters table."""
    url = (
        f"sqlite:///{tmp_path}/rw.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    database = Database(url, schema="rw_test")
    create_tables(database, _Base.metadata)
    with database.transaction() as uow:
        uow.add(_Counter(name="hits", value=0))
    yield database
    database.dispose()


def test_a_read_session_refuses_to_write(db):
    with db.session() as uow:
        uow.add(_Counter(name="other", value=1))
        with pytest.raises(ReadOnlySession):
            uow.flush()
    with db.session() as uow:
        with pytest.raises(ReadOnlySession):
            uow.execute(update(_Counter).values(value=5))
        counter = uow.get(_Counter, "hits")
        counter.value = 7
        with pytest.raises(ReadOnlySession):
            uow.flush()
    with db.session() as uow:
        assert uow.get(_Counter, "hits").value == 0


def test_a_writer_commits_while_a_read_is_open(db):
    # Before: every SQLite transaction began IMMEDIATE, so an open read held the write lock and this
    # writer (same thread) would wait for busy_timeout and then fail with "database is locked".
    with db.session() as reader:
        assert reader.get(_Counter, "hits").value == 0
        with db.transaction() as writer:
            writer.get(_Counter, "hits").value = 1
        assert reader.scalar(select(_Counter.value).where(_Counter.name == "hits")) in (0, 1)
    with db.session() as uow:
        assert uow.get(_Counter, "hits").value == 1


def test_read_modify_write_transactions_never_fail_on_upgrade(db):
    # Each transaction reads the counter, then writes it: on SQLite the write lock is taken up front, so
    # concurrent ones queue instead of failing with SQLITE_BUSY on the read-to-write upgrade.
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def bump() -> None:
        try:
            start.wait()
            for _ in range(5):
                with db.transaction() as uow:
                    counter = uow.get(_Counter, "hits", with_for_update=True)
                    counter.value = counter.value + 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.session() as uow:
        assert uow.get(_Counter, "hits").value == 30


def test_core_writes_through_a_transaction_and_reads_through_a_session(db):
    metadata = MetaData()
    notes = Table("notes", metadata, Column("id", Integer, primary_key=True), Column("text", String(20)))
    create_tables(db, metadata)
    with db.transaction() as uow:
        uow.execute(insert(notes).values(id=1, text="宣传月"))
    with db.session() as uow:
        assert uow.execute(select(notes.c.text)).scalar_one() == "宣传月"


def test_sqlite_runs_in_wal_with_synchronous_normal(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/pragmas.db", schema="pragmas")
    try:
        with db.session() as uow:
            assert uow.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert uow.execute(text("PRAGMA synchronous")).scalar_one() == 1  # NORMAL
    finally:
        db.dispose()


def _write_then_fail(db: Database, *, on: object) -> None:
    with db.transaction() as uow:
        uow.add(_Counter(name="lost", value=1))
        uow.flush()
        assert uow.connection().connection.dbapi_connection is on
        raise RuntimeError("the use case fails after its write")


def test_a_read_on_postgresql_holds_no_transaction_and_leaves_the_pool_transactional(postgres_url):
    from psycopg.pq import TransactionStatus

    db = Database(postgres_url, schema="rw_test", pool_size=1, pool_overflow=0)  # one connection for both
    create_tables(db, _Base.metadata)
    try:
        with db.session() as uow:
            assert uow.execute(select(_Counter.name)).first() is None
            driver = uow.connection().connection.dbapi_connection
            assert (
                driver.info.transaction_status == TransactionStatus.IDLE
            )  # autocommit: no BEGIN, no ROLLBACK
        with pytest.raises(RuntimeError, match="fails after its write"):
            _write_then_fail(db, on=driver)
        with db.session() as uow:
            assert uow.get(_Counter, "lost") is None  # the writer on the reader's connection was rolled back
    finally:
        db.dispose()
