"""Alembic migrations, one history per service under services/<name>/migrations (docs/operations.md).

Each service's version table (`alembic_version`) lives in its own SQLite file or PostgreSQL schema. A
process either upgrades at start (`migrate_on_start`, the embedded default) or refuses to start on a
schema that is not at the newest revision its code knows, naming the command that fixes it.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection

from shared.db import Database, service_database
from shared.settings import Settings

log = logging.getLogger(__name__)

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"
VERSION_TABLE = "alembic_version"


class SchemaNotCurrent(RuntimeError):
    """The database is not at the head revision of the code (older: migrate; newer: upgrade the code)."""


def script_location(service: str) -> Path:
    """The folder with one service's migration history."""
    return SERVICES_DIR / service / "migrations"


def alembic_config(service: str, connection: Connection | None = None) -> Config:
    """An Alembic configuration for one service, built in code (there is no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(script_location(service)))
    config.attributes["service"] = service
    config.attributes["connection"] = connection
    return config


def head_revision(service: str) -> str | None:
    """The newest revision the code has for a service."""
    return ScriptDirectory.from_config(alembic_config(service)).get_current_head()


@contextmanager
def migration_connection(db: Database) -> Iterator[Connection]:
    """One transaction on the service's database with unqualified names meaning the service's own schema."""
    # The version table and raw SQL in revisions use unqualified names: on PostgreSQL the search path (local to
    # this transaction) points them at the service's schema, and no schema_translate_map rewrites anything.
    with db.engine.connect() as conn:
        conn = conn.execution_options(schema_translate_map=None)
        with conn.begin():
            if not db.is_sqlite:
                # An API, its worker and a one-shot migrate step may start together: one migrates, the others wait.
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"migrate:{db.schema}"}
                )
                # CREATE SCHEMA (even IF NOT EXISTS) needs CREATE on the database; a least-privilege role that
                # only owns its schema (deploy/postgres/service-role.sql) has none, so look first.
                if not conn.execute(
                    text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": db.schema}
                ).first():
                    conn.execute(text(f'CREATE SCHEMA "{db.schema}"'))
                conn.execute(text(f'SET LOCAL search_path TO "{db.schema}"'))
            yield conn


def current_revision(db: Database) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with migration_connection(db) as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(db: Database, service: str, revision: str = "head") -> str | None:
    """Upgrade one service's database to a revision (default the newest); returns the revision it is at."""
    with migration_connection(db) as conn:
        before = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
        if before is None and inspect(conn).has_table("outbox"):
            before = _adopt_unversioned(db, conn, service)
        command.upgrade(alembic_config(service, conn), revision)
        after = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if before != after:
        log.info(
            "migrated %s database from %s to %s",
            service,
            before or "empty",
            after,
            extra={"event": "schema.migrated", "from_revision": before, "to_revision": after},
        )
    return after


def _adopt_unversioned(db: Database, conn: Connection, service: str) -> str:
    # Tables made by create_all before migrations existed: record the newest revision whose columns they all hold
    # (nothing is changed), so the upgrade continues from there.
    script = ScriptDirectory.from_config(alembic_config(service))
    base = script.get_base()
    if base is None:
        raise RuntimeError(f"{service} has no migration history under {script_location(service)}")
    inspector = inspect(conn)
    have = {table: {c["name"] for c in inspector.get_columns(table)} for table in inspector.get_table_names()}
    missing: list[str] = []
    for candidate in [revision.revision for revision in script.walk_revisions()]:  # newest first
        expected = _columns_at(service, candidate)
        missing = sorted(
            f"{table}.{column}"
            for table, columns in expected.items()
            for column in columns - have.get(table, set())
        )
        if not missing:
            command.stamp(alembic_config(service, conn), candidate)
            log.warning(
                "adopted %s tables made before migrations existed as revision %s",
                service,
                candidate,
                extra={"event": "schema.adopted", "to_revision": candidate},
            )
            return candidate
    raise SchemaNotCurrent(
        f"{service} 数据库由引入迁移之前的更早版本建立，缺少列：{', '.join(missing)}；请先用 {base} 版本的表结构补齐这些列"
        f"（docs/operations.md）。 / the {service} tables predate migrations and lack {', '.join(missing)}: add them "
        f"as revision {base} defines them, then migrate (docs/operations.md)."
    )


def _columns_at(service: str, revision: str) -> dict[str, set[str]]:
    """Table and column names a service's history makes up to a revision (built in a scratch SQLite file)."""
    with tempfile.TemporaryDirectory() as scratch:
        db = Database(f"sqlite:///{scratch}/{service}.db", schema=service)
        try:
            with migration_connection(db) as conn:
                command.upgrade(alembic_config(service, conn), revision)
                inspector = inspect(conn)
                return {
                    table: {c["name"] for c in inspector.get_columns(table)}
                    for table in inspector.get_table_names()
                    if table != VERSION_TABLE
                }
        finally:
            db.dispose()


def require_head(db: Database, service: str) -> None:
    """Raise SchemaNotCurrent unless the database is at the code's head revision."""
    current, head = current_revision(db), head_revision(service)
    if current == head:
        return
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config(service)).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaNotCurrent(
            f"{service} 数据库的结构版本 {current} 比当前代码新：请部署新版本的代码。 / the {service} database is at "
            f"revision {current}, which this code does not know: it was migrated by a newer version; deploy that version."
        )
    raise SchemaNotCurrent(
        f"{service} 数据库的结构版本为 {current or '空'}，代码需要 {head}：请先运行 `python -m services.{service} migrate`"
        f"（数据保留）。 / the {service} database is at revision {current or 'none'} but the code needs {head}: run "
        f"`python -m services.{service} migrate` first (data is kept)."
    )


def open_database(settings: Settings, service: str) -> Database:
    """Open a service's database and upgrade it (migrate_on_start) or check it is at the head revision."""
    db = service_database(settings, service)
    try:
        if settings.migrate_on_start:
            upgrade(db, service)
        else:
            require_head(db, service)
    except BaseException:
        db.dispose()
        raise
    return db


def pending_changes(db: Database, metadata: MetaData) -> list[Any]:
    """What autogenerate would add to a new revision: differences between the models and the database."""
    from alembic.autogenerate import compare_metadata

    with migration_connection(db) as conn:
        default_schema = conn.dialect.default_schema_name
        if not db.is_sqlite:
            conn.dialect.default_schema_name = db.schema  # reflect the service's schema as the default one
        try:
            context = MigrationContext.configure(conn, opts=comparison_options(db.is_sqlite))
            with warnings.catch_warnings():
                # Expression indexes (intake's uq_units_campaign_code) cannot be reflected on SQLite: not compared.
                warnings.filterwarnings("ignore", message=".*expression-based index")
                changes: list[Any] = compare_metadata(context, metadata)
                return changes
        finally:
            conn.dialect.default_schema_name = default_schema


def comparison_options(is_sqlite: bool) -> dict[str, Any]:
    """How autogenerate compares models and database, the same in env.py and in the tests."""
    return {
        "version_table": VERSION_TABLE,
        "compare_type": True,
        "compare_server_default": False,
        "render_as_batch": is_sqlite,  # SQLite alters tables by copying them
        "include_object": _include_object,
    }


def _include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # The version table is Alembic's own; expression indexes are not reflected on every backend.
    return not (type_ == "table" and name == VERSION_TABLE)


def new_revision(service: str, message: str) -> Path:
    """Autogenerate a new revision for a service against a scratch SQLite database at the current head."""
    with tempfile.TemporaryDirectory() as scratch:
        db = Database(f"sqlite:///{scratch}/{service}.db", schema=service)
        try:
            upgrade(db, service)
            with migration_connection(db) as conn:
                script = command.revision(alembic_config(service, conn), message=message, autogenerate=True)
        finally:
            db.dispose()
    if not isinstance(script, Script):  # one head, one revision: alembic returns that revision's script
        raise RuntimeError(f"alembic did not write exactly one revision for {service}: {script!r}")
    return Path(script.path)


def run_environment(metadata: MetaData) -> None:
    """The body of every service's migrations/env.py: run Alembic's command on the given (or configured) database."""
    from alembic import context

    service = context.config.attributes.get("service")  # set by alembic_config()
    if not isinstance(service, str):
        raise RuntimeError("no service given: run `python -m services.<name> migrate`")
    conn: Connection | None = context.config.attributes.get("connection")
    if conn is not None:
        _run(conn, metadata)
        return
    # The `alembic` command line itself: the service's database from the environment's settings.
    settings = Settings()
    db = service_database(settings, service)
    try:
        with migration_connection(db) as conn:
            _run(conn, metadata)
    finally:
        db.dispose()


def _run(conn: Connection, metadata: MetaData) -> None:
    from alembic import context

    context.configure(
        connection=conn, target_metadata=metadata, **comparison_options(conn.dialect.name == "sqlite")
    )
    with context.begin_transaction():
        context.run_migrations()
