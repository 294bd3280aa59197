"""shared/audit.py: entries written in the caller's transaction, the append-only guard (SQLite and PostgreSQL),
and the admin-only read endpoint."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Column, MetaData, String, Table, delete, insert, select, text, update
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import shared.auth
from shared import audit
from shared.auth import ADMIN, REVIEWER, Principal, TokenIssuer, TokenVerifier, install, load_keys
from shared.db import Database
from shared.request_context import RequestInfo
from shared.settings import Settings
from tests.helpers import create_tables

ADMIN_USER = Principal(id="a1", name="王芳", role=ADMIN)


def service_tables() -> tuple[MetaData, Table, Table]:
    metadata = MetaData()
    things = Table("things", metadata, Column("id", String(36), primary_key=True), Column("name", String(50)))
    return metadata, things, audit.audit_table(metadata)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """The same service database on SQLite and on a PostgreSQL schema (skips without PostgreSQL)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path}/svc.db", schema="svc")
        yield db
    else:
        url = request.getfixturevalue("postgres_url")
        db = Database(url, schema="svc")
        yield db
    db.dispose()


def add_entry(uow, table, **detail):
    audit.record(
        uow,
        table,
        principal=ADMIN_USER,
        action="thing.created",
        resource=("thing", "t1"),
        detail=detail,
        request=RequestInfo(client_ip="192.0.2.7", request_id="req-1"),
    )


def test_entry_commits_and_rolls_back_with_the_change(database):
    metadata, things, table = service_tables()
    create_tables(database, metadata)
    with database.transaction() as uow:
        uow.execute(insert(things).values(id="t1", name="宣传角"))
        add_entry(uow, table, name="宣传角")
    with pytest.raises(RuntimeError), database.transaction() as uow:  # noqa: PT012 - the raise is what is tested
        uow.execute(insert(things).values(id="t2", name="横幅"))
        add_entry(uow, table, name="横幅")
        raise RuntimeError("the change failed")
    with database.session() as uow:
        rows = uow.execute(select(table)).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert (
        row["actor_id"],
        row["actor_name"],
        row["actor_role"],
        row["action"],
        row["resource_type"],
        row["resource_id"],
        row["detail"],
        row["client_ip"],
        row["request_id"],
    ) == ("a1", "王芳", ADMIN, "thing.created", "thing", "t1", {"name": "宣传角"}, "192.0.2.7", "req-1")
    assert row["at"] is not None


@pytest.mark.parametrize("change", ["update", "delete"])
def test_rows_cannot_be_changed_or_deleted(database, change):
    metadata, _, table = service_tables()
    create_tables(database, metadata)
    with database.transaction() as uow:
        add_entry(uow, table)
    statement = update(table).values(action="tampered") if change == "update" else delete(table)
    with pytest.raises(DatabaseError, match="append-only"), database.transaction() as uow:
        uow.execute(statement)
    with database.session() as uow:
        assert uow.execute(select(table.c.action)).scalars().all() == ["thing.created"]
    with database.transaction() as uow:  # appending still works after a refused change
        add_entry(uow, table)


def test_truncate_is_refused_on_postgresql(postgres_url):
    db = Database(postgres_url, schema="svc")
    try:
        metadata, _, table = service_tables()
        create_tables(db, metadata)
        with db.transaction() as uow:
            add_entry(uow, table)
        with pytest.raises(DatabaseError, match="append-only"), db.transaction() as uow:
            uow.execute(text('TRUNCATE "svc".audit_log'))
        # the guard function lives in the service's own schema, so two services never share (or race on) it
        with db.session() as uow:
            schemas = (
                uow.execute(
                    text(
                        "SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE p.proname = 'audit_log_append_only'"
                    )
                )
                .scalars()
                .all()
            )
        assert schemas == ["svc"]
    finally:
        db.dispose()


def test_two_services_on_one_postgresql_each_get_their_guard(postgres_url):
    first, second = Database(postgres_url, schema="svc_a"), Database(postgres_url, schema="svc_b")
    try:
        for db in (first, second):
            metadata, _, table = service_tables()
            create_tables(db, metadata)
            with db.transaction() as uow:
                add_entry(uow, table)
            with pytest.raises(DatabaseError, match="append-only"), db.transaction() as uow:
                uow.execute(delete(table))
    finally:
        first.dispose()
        second.dispose()


def test_audit_endpoint_is_for_admins_and_filters(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/svc.db", schema="svc")
    metadata, _, table = service_tables()
    create_tables(db, metadata)
    with db.transaction() as uow:
        add_entry(uow, table)
        audit.record(uow, table, principal=None, action="auth.login_failed", resource=("user", None))
    keys = load_keys(Settings(data_dir=tmp_path))
    issuer = TokenIssuer(keys.private_key, issuer="campaign-evidence")
    app = FastAPI()
    install(app, TokenVerifier(keys.public_key, issuer="campaign-evidence"))
    app.include_router(audit.audit_router(table, db))
    admin = {"Authorization": "Bearer " + issuer.issue(subject="a1", name="王芳", role=ADMIN, ttl_s=60)}
    reviewer = {"Authorization": "Bearer " + issuer.issue(subject="r1", name="赵强", role=REVIEWER, ttl_s=60)}
    with TestClient(app) as client:
        assert client.get("/audit-log").status_code == 401
        assert client.get("/audit-log", headers=reviewer).status_code == 403
        entries = client.get("/audit-log", headers=admin).json()
        assert [e["action"] for e in entries] == ["auth.login_failed", "thing.created"]
        assert entries[1]["at"].endswith(("Z", "+00:00"))
        filtered = client.get("/audit-log", params={"resource_type": "thing"}, headers=admin).json()
        assert [e["resource_id"] for e in filtered] == ["t1"]
    db.dispose()


def test_any_table_can_be_made_append_only(tmp_path):
    class Base(DeclarativeBase):
        pass

    class Download(Base):  # e.g. a service's own audit model
        __tablename__ = "downloads"
        id: Mapped[int] = mapped_column(primary_key=True)
        actor: Mapped[str] = mapped_column(String(50))

    audit.append_only(Download.__table__)
    db = Database(f"sqlite:///{tmp_path}/svc.db", schema="svc")
    create_tables(db, Base.metadata)
    with db.transaction() as uow:
        uow.add(Download(actor="王芳"))
    with pytest.raises(DatabaseError, match="downloads is append-only"), db.transaction() as uow:
        uow.get(Download, 1).actor = "someone else"
    db.dispose()


def test_auth_does_not_import_the_audit_log():
    """audit needs auth (principals, the admin role); auth needs only the request context, never audit back."""
    source = Path(shared.auth.__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):  # lazy imports inside functions count too
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert "shared.request_context" in imported
    assert not {name for name in imported if name == "shared.audit" or name.startswith("shared.audit.")}
