"""The database port: an engine and sessions for one service, SQLite or PostgreSQL."""
from __future__ import annotations

import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import MetaData, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, CursorResult, Engine, Result, make_url
from sqlalchemy.orm import Session, sessionmaker

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class SchemaOutdated(RuntimeError):
    """The database's tables lack columns the code needs (made by an older version; no migrations yet)."""


class Database:
    """One service's database: its own SQLite file, or its own schema in PostgreSQL."""

    def __init__(self, url: str, *, schema: str) -> None:
        if not _SCHEMA.match(schema):
            raise ValueError(f"invalid schema name: {schema!r}")
        self.url = make_url(url)
        self.schema = schema
        self.engine = self._make_engine()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        """Whether this is an embedded SQLite database."""
        return self.url.get_backend_name() == "sqlite"

    def _make_engine(self) -> Engine:
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin_immediate)
            return engine
        engine = create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        # Tables are declared without a schema; each service's tables land in its own.
        return engine.execution_options(schema_translate_map={None: self.schema})

    def create_all(self, metadata: MetaData) -> None:
        """Create the service's schema and tables if missing; SchemaOutdated if existing tables lack columns."""
        if self.is_sqlite:
            metadata.create_all(self.engine)
            with self.engine.connect() as conn:
                self._check_columns(conn, metadata, schema=None)
            return
        with self.engine.begin() as conn:
            # An API and its worker start together: serialise their DDL so neither trips on the other's.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"create_all:{self.schema}"})
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            metadata.create_all(conn)
            self._check_columns(conn, metadata, schema=self.schema)

    def _check_columns(self, conn: Connection, metadata: MetaData, *, schema: str | None) -> None:
        # create_all never alters an existing table: a table from an older version would fail later, mid-request.
        inspector = inspect(conn)
        missing = [f"{table.name}.{column.name}" for table in metadata.sorted_tables
                   for have in [{c["name"] for c in inspector.get_columns(table.name, schema=schema)}]
                   for column in table.columns if column.name not in have]
        if not missing:
            return
        where = self.url.database if self.is_sqlite else f"schema {self.schema}"
        remedy = (f"嵌入模式：停止平台后删除 {self.url.database} 及同目录下的其他 .db 文件再启动（会清空数据）"
                  if self.is_sqlite else f"分布式模式：删除 schema {self.schema} 后重启该服务（会清空数据）")
        raise SchemaOutdated(
            f"数据库（{where}）的表结构比当前代码旧，缺少列：{', '.join(missing)}。尚无迁移脚本，{remedy}。 / "
            f"the tables in {where} were made by an older version and lack {', '.join(missing)}; there are no "
            "migrations yet: recreate the database (its data is lost) or add the columns by hand.")

    def session(self) -> Session:
        """A new ORM session."""
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction, committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

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


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    # Take the write lock up front so concurrent writers wait instead of failing on upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def rows_affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (Session.execute types every result as the generic Result)."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"not the result of an UPDATE or DELETE: {type(result).__name__}")
    return result.rowcount
