"""The append-only audit log each service keeps: who changed what, when (UTC) and from where.

Rows are written by `record` inside the same transaction as the change they describe, so a change
and its audit entry commit or roll back together. There is no update or delete API, and the table
gets database triggers refusing UPDATE and DELETE (and TRUNCATE on PostgreSQL).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    event,
    insert,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from shared.auth import ADMIN, Principal, require
from shared.bounds import Limit, Offset
from shared.clock import as_utc
from shared.db import Database
from shared.request_context import RequestInfo

TABLE = "audit_log"


def audit_table(metadata: MetaData) -> Table:
    """Declare the append-only audit_log table on a service's metadata (guards are created with it)."""
    table = Table(
        TABLE,
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("at", DateTime(timezone=True), nullable=False, index=True),
        Column("actor_id", String(100), nullable=True, index=True),
        Column("actor_name", String(200), nullable=True),
        Column("actor_role", String(32), nullable=True),
        Column("actor_unit_id", String(36), nullable=True),
        Column("action", String(64), nullable=False, index=True),
        Column("resource_type", String(64), nullable=False),
        Column("resource_id", String(100), nullable=True),
        Column("detail", JSON, nullable=False),
        Column("client_ip", String(64), nullable=True),
        Column("request_id", String(64), nullable=True),
        Index("ix_audit_log_resource", "resource_type", "resource_id"),
    )
    return append_only(table)


def append_only(table: Table) -> Table:
    """Mark a table append-only: a plain create_all gives it the guards (services get them from a migration)."""
    event.listen(table, "after_create", _create_guards)
    return table


def guard_statements(dialect: str, table: str, schema: str | None = None) -> list[str]:
    """SQL creating the triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on a table.

    Migration revisions run these; changing them means adding a revision that replaces the triggers.
    """
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            for op in ("UPDATE", "DELETE")
        ]
    if dialect != "postgresql":
        return []
    prefix = f'"{schema}".' if schema else ""
    function = f"{prefix}{table}_append_only"
    return [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{table} is append-only' USING ERRCODE = 'insufficient_privilege'; END $$",
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {prefix}{table} "
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {prefix}{table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    ]


def _create_guards(table: Table, connection: Connection, **_kw: Any) -> None:
    schema = connection.schema_for_object(table) if connection.dialect.name == "postgresql" else None
    for statement in guard_statements(connection.dialect.name, table.name, schema):
        connection.exec_driver_sql(statement)


# ---------------------------------------------------------------- writing and reading


def record(
    uow: Session,
    table: Table,
    *,
    principal: Principal | None,
    action: str,
    resource: tuple[str, str | None],
    detail: dict[str, Any] | None = None,
    request: RequestInfo | None = None,
    at: datetime | None = None,
) -> None:
    """Append one audit entry inside the caller's transaction (principal None: an anonymous caller)."""
    resource_type, resource_id = resource
    request = request or RequestInfo()
    uow.execute(
        _insert(table),
        {
            "at": at or datetime.now(UTC),
            "actor_id": principal.id if principal else None,
            "actor_name": principal.name if principal else None,
            "actor_role": principal.role if principal else None,
            "actor_unit_id": principal.unit_id if principal else None,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "detail": detail or {},
            "client_ip": request.client_ip,
            "request_id": request.request_id,
        },
    )


@functools.cache
def _insert(table: Table) -> Insert:
    # Built once per table: a statement built per call with .values() costs a fresh cache key every time.
    return insert(table)


class AuditEntry(BaseModel):
    """One audit log entry as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor_id: str | None
    actor_name: str | None
    actor_role: str | None
    actor_unit_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    detail: dict[str, Any]
    client_ip: str | None
    request_id: str | None


def audit_router(table: Table, db: Database) -> APIRouter:
    """GET /audit-log for admins: the service's audit entries, newest first, with filters."""
    router = APIRouter()

    @router.get("/audit-log", response_model=list[AuditEntry], tags=["audit"])
    def audit_log(
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        actor_id: str | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
        _admin: Principal = Depends(require(ADMIN)),
    ) -> list[AuditEntry]:
        """The audit log (审计日志), newest first; admins only."""
        query = select(table).order_by(table.c.id.desc()).limit(limit).offset(offset)
        for column, value in (
            ("action", action),
            ("resource_type", resource_type),
            ("resource_id", resource_id),
            ("actor_id", actor_id),
        ):
            if value is not None:
                query = query.where(table.c[column] == value)
        with db.session() as uow:
            rows = uow.execute(query).mappings().all()
        return [AuditEntry.model_validate({**row, "at": as_utc(row["at"])}) for row in rows]

    return router
