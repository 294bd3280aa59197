"""The database port: an engine and sessions for one service, SQLite or PostgreSQL (schema: shared/migrations.py)."""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Select, bindparam, create_engine, event, select, text
from sqlalchemy.engine import Connection, CursorResult, Engine, Result, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import ORMExecuteState, Session, class_mapper, sessionmaker

from shared.logs import first_line
from shared.metrics import DB_PINGS
from shared.private import private_file, private_folder

if TYPE_CHECKING:
    from shared.settings import Settings

Entity = TypeVar("Entity", bound=Hashable)  # a mapped class's objects (bound: type[Entity] keys a cache)

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_AFTER_COMMIT = "db.after_commit"
_RETURNED_AT = "db.returned_at"
log = logging.getLogger(__name__)


class ReadOnlySession(RuntimeError):
    """Something tried to write through Database.session(), which is for reads; use Database.transaction()."""


class Database:
    """One service's database: its own SQLite file, or its own schema in PostgreSQL."""

    def __init__(
        self,
        url: str,
        *,
        schema: str,
        pool_size: int = 10,
        pool_overflow: int = 5,
        ping_idle_s: float = 0.0,
    ) -> None:
        if not _SCHEMA.match(schema):
            raise ValueError(f"invalid schema name: {schema!r}")
        self.url = make_url(url)
        self.schema = schema
        self._pool = (pool_size, pool_overflow)
        self._ping_idle_s = ping_idle_s
        self.engine = self._make_engine()
        # Writers begin IMMEDIATE on SQLite (the write lock up front: concurrent writers queue on busy_timeout
        # instead of failing when a read snapshot tries to upgrade); readers begin DEFERRED and never lock.
        self._write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        # On PostgreSQL a read session runs each statement on its own (autocommit): under READ COMMITTED each
        # statement takes a snapshot of its own inside a transaction too, so this saves the BEGIN and ROLLBACK
        # round trips (two of three for a one-query read) and changes nothing a reader sees.
        readers = (
            self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._sessions = sessionmaker(readers, expire_on_commit=False, class_=ReadSession)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        """Whether this is an embedded SQLite database."""
        return self.url.get_backend_name() == "sqlite"

    def _make_engine(self) -> Engine:
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                private_folder(Path(database).parent)
                private_file(Path(database))  # SQLite gives its -wal and -shm files the database file's mode
            engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        # Connections beyond pool_size are closed once returned: each new one is a backend process PostgreSQL
        # forks, so a pool smaller than a process's usual concurrency churns (bench/pipeline: 7 a second).
        size, overflow = self._pool
        engine = create_engine(self.url, pool_size=size, max_overflow=overflow)
        _ping_when_idle(engine, self.schema, self._ping_idle_s)
        # Tables are declared without a schema; each service's tables land in its own.
        return engine.execution_options(schema_translate_map={None: self.schema})

    def session(self) -> Session:
        """A new read-only ORM session (SQLite: deferred, takes no write lock; PostgreSQL: autocommit); writing
        through it raises ReadOnlySession."""
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """The write entry point: a session inside one transaction, committed on success, rolled back on error.

        On SQLite it begins IMMEDIATE, so a transaction that reads and then writes never fails on the upgrade. What
        was registered with `after_commit` runs once the commit succeeded, never after a rollback."""
        with self._write_sessions() as session:
            with session.begin():
                yield session
            for callback in session.info.pop(_AFTER_COMMIT, ()):
                try:
                    callback()
                except Exception:  # the transaction is committed: a failing hook must not make it look failed
                    log.exception("after-commit hook %r failed", callback)

    def health(self) -> dict[str, Any]:
        """Whether a trivial query succeeds."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return {"backend": self.url.get_backend_name(), "ok": True, "schema": self.schema}
        except Exception as exc:  # health reports, never raises
            return {"backend": self.url.get_backend_name(), "ok": False, "error": type(exc).__name__}

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run callback once this Database.transaction() session commits (once, however often it is registered)."""
    callbacks = session.info.setdefault(_AFTER_COMMIT, [])
    if callback not in callbacks:
        callbacks.append(callback)


def service_database(settings: Settings, service: str) -> Database:
    """A service's database as the settings name it: its URL, its schema, its pool."""
    return Database(
        settings.database_url_for(service),
        schema=service,
        pool_size=settings.database_pool_size,
        pool_overflow=settings.database_pool_overflow,
        ping_idle_s=settings.database_ping_idle_s,
    )


def _ping_when_idle(engine: Engine, schema: str, idle_s: float) -> None:
    """Ping a pooled connection before use when it sat unused for more than idle_s (0: before every use), and
    replace it, with every pooled connection older than it, when the server has dropped it.

    SQLAlchemy's pool_pre_ping pings at every checkout: a round trip per transaction, 0.35 ms of client and
    server CPU (bench/pool) at 15-25 transactions per submission. A connection handed back moments ago is as
    alive as a ping would show (HikariCP skips its check within 500 ms for the same reason), except across a
    PostgreSQL restart shorter than idle_s: then its first use fails once and the pool is invalidated
    (docs/deployment.md)."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or (idle_s > 0 and time.monotonic() - returned_at <= idle_s):
            return  # new from connect(), or used moments ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            DB_PINGS.labels(schema, "replaced").inc()
            log.warning(
                "database %s: a pooled connection unused for %.1f s was dropped by the server (%s); "
                "reconnecting, and replacing the pool's older connections",
                schema,
                time.monotonic() - returned_at,
                first_line(exc),
            )
            record.info.pop(_RETURNED_AT, None)
            raise InvalidatePoolError() from exc
        DB_PINGS.labels(schema, "alive").inc()


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a process crash loses nothing, a power
    # cut may lose the last commits (not corrupt the file).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql(
        "BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_begin") == "IMMEDIATE" else "BEGIN"
    )


class ReadSession(Session):
    """The session Database.session() hands out: reads only, so SQLite never needs to upgrade its transaction."""


@event.listens_for(ReadSession, "before_flush")
def _refuse_flush(session: Session, _context: object, _instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlySession(
            "this session is read-only (Database.session); write inside Database.transaction()"
        )


@event.listens_for(ReadSession, "do_orm_execute")
def _refuse_write(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySession(
            "this session is read-only (Database.session); write inside Database.transaction()"
        )


def rows_affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (Session.execute types every result as the generic Result)."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"not the result of an UPDATE or DELETE: {type(result).__name__}")
    return result.rowcount


def insert_values(**values: Any) -> dict[str, Any]:
    """Parameters for a Core INSERT with the None values left out, so that each such column gets its default as it
    would through the ORM (which skips None for a column with a default)."""
    return {key: value for key, value in values.items() if value is not None}


def by_key(session: Session, entity: type[Entity], key: object, *, lock: bool = False) -> Entity | None:
    """The row of an entity with a one-column primary key, or None, as Session.get finds it, from a statement
    built once (Session.get builds its own at every call; it also skips the query for a row already loaded).
    lock: SELECT … FOR UPDATE, as Session.get(with_for_update=True)."""
    return cast("Entity | None", session.scalars(_key_lookup(entity, lock), {"key": key}).first())


@functools.cache
def _key_lookup(entity: type, lock: bool) -> Select[Any]:
    # Session.get annotates and hashes a fresh statement per call: about 0.3 ms of CPU, a sixteenth of the
    # embedded platform's time per submission (py-spy, bench.submit); a statement built once skips that.
    (column,) = class_mapper(entity).primary_key
    found: Select[Any] = select(entity).where(column == bindparam("key"))
    return found.with_for_update() if lock else found
