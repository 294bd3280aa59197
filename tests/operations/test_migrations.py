"""Alembic migrations per service: models and head agree, a campaign survives an upgrade, processes refuse an old
schema, and `python -m services.<name> migrate` upgrades (SQLite and PostgreSQL)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select, text
from sqlalchemy.exc import DatabaseError

from services.intake import identity  # noqa: F401  (users, api_keys and audit_log on intake's metadata)
from services.review.timeline import chain as timeline
from shared.auth import ADMIN, issuer_from_settings
from shared.db import Database
from shared.migrations import (
    SchemaNotCurrent,
    current_revision,
    head_revision,
    open_database,
    pending_changes,
    upgrade,
)
from shared.settings import Settings
from tests.operations.campaign_rows import SERVICES, dump_rows, load_rows, read_snapshot

FIRST = "0001"
APPEND_ONLY = {
    "intake": ["audit_log"],
    "evidence_storage": ["audit_log"],
    "review": ["audit_log", "timeline_records"],
    "notification": ["audit_log"],
}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """A fresh database of each kind ({service} in the SQLite URL gives each service its own file)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/{{service}}.db"
    else:
        yield request.getfixturevalue("postgres_url")


def service_db(url: str, service: str) -> Database:
    """The service's database as its bootstrap opens it."""
    return Database(url.format(service=service), schema=service)


def metadata_of(service: str) -> MetaData:
    """The service's models."""
    return importlib.import_module(f"services.{service}.models").Base.metadata


@pytest.mark.parametrize("service", SERVICES)
def test_models_and_head_revision_agree(database_url, service):
    db = service_db(database_url, service)
    try:
        assert upgrade(db, service) == head_revision(service)
        assert pending_changes(db, metadata_of(service)) == [], (
            f"the {service} models differ from its newest migration: add a revision "
            f"(python -m services.{service} migrate --new-revision '...', see docs/operations.md)"
        )
    finally:
        db.dispose()


@pytest.mark.parametrize("service", SERVICES)
def test_append_only_tables_refuse_changes_after_migrating(database_url, service):
    db = service_db(database_url, service)
    try:
        upgrade(db, service)
        for table in APPEND_ONLY[service]:
            reflected = MetaData()
            with db.engine.connect() as conn:
                reflected.reflect(
                    conn.execution_options(schema_translate_map=None),
                    only=[table],
                    schema=None if db.is_sqlite else service,
                )
            for statement in (
                reflected.sorted_tables[0].update().values(),
                reflected.sorted_tables[0].delete(),
            ):
                row = _sample_row(table)
                with db.engine.begin() as conn:
                    conn.execute(reflected.sorted_tables[0].insert().values(**row))
                with pytest.raises(DatabaseError, match="append-only"), db.engine.begin() as conn:
                    conn.execute(
                        statement.values(**{next(iter(row)): row[next(iter(row))]})
                        if statement.is_update
                        else statement
                    )
    finally:
        db.dispose()


def _sample_row(table: str) -> dict:
    from datetime import datetime

    now = datetime.now(UTC)
    if table == "audit_log":
        return {"at": now, "action": "thing.created", "resource_type": "thing", "detail": {}}
    seq = _sample_row.seq = getattr(_sample_row, "seq", 0) + 1
    return {
        "seq": seq,
        "at": now,
        "actor": "王芳",
        "actor_role": "admin",
        "kind": "comment.added",
        "subject_type": "submission",
        "subject_id": "s1",
        "detail": {},
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
    }


def test_a_campaign_survives_the_upgrade_from_the_first_revision(database_url, tmp_path):
    snapshot = read_snapshot(FIRST)
    for service in SERVICES:
        db = service_db(database_url, service)
        try:
            assert upgrade(db, service, snapshot["revisions"][service]) == FIRST
            load_rows(db, snapshot["rows"][service])
        finally:
            db.dispose()

    # The embedded platform upgrades every service to the newest revision as it starts.
    from deploy.embedded import build_platform

    settings = Settings(data_dir=tmp_path, database_url=database_url, outbox_poll_s=0.1)
    platform = build_platform(settings)
    try:
        for service, ctx in platform.contexts.items():
            assert current_revision(ctx.db) == head_revision(service)
            after = dump_rows(ctx.db)
            for table, rows in snapshot["rows"][service].items():
                kept = (
                    [{column: row.get(column) for column in rows[0]} for row in after[table]] if rows else []
                )
                assert _normalised(kept) == _normalised(rows), f"{service}.{table} changed in the upgrade"
        with platform.contexts["review"].db.session() as uow:
            assert timeline.verify(uow).ok  # the hash chain and its head came through whole
        admin = issuer_from_settings(settings).issue(subject="ops", name="王芳", role=ADMIN, ttl_s=600)
        with TestClient(platform.app) as client:
            listed = client.get(
                "/intake/submissions", params={"limit": 1000}, headers={"Authorization": f"Bearer {admin}"}
            )
            assert listed.status_code == 200
            assert len(listed.json()) == len(snapshot["rows"]["intake"]["submissions"]) > 0
    finally:
        platform.stop()


def _normalised(rows: list[dict]) -> list[dict]:
    # Timestamps come back from SQLite without an offset and from PostgreSQL with one: compare them in UTC.
    from datetime import datetime

    def value(v):
        if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] == "T":
            try:
                parsed = datetime.fromisoformat(v)
            except ValueError:
                return v
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        return v

    return [{k: value(v) for k, v in row.items()} for row in rows]


def test_a_process_refuses_an_older_schema_and_names_the_command(tmp_path):
    settings = Settings(data_dir=tmp_path, migrate_on_start=False)
    with pytest.raises(SchemaNotCurrent, match=r"python -m services\.review migrate"):
        open_database(settings, "review")
    db = Database(settings.database_url_for("review"), schema="review")
    try:
        with db.engine.begin() as conn:  # never migrated: not even the version table was made
            assert conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'table'")).scalar() == 0
    finally:
        db.dispose()


@pytest.mark.integration  # starts processes
def test_migrate_command_upgrades_and_then_processes_start(tmp_path):
    env = {"DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "services.notification", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert f"database at revision {head_revision('notification')}" in done.stdout
    db = open_database(Settings(data_dir=tmp_path, migrate_on_start=False), "notification")
    try:
        with db.session() as uow:
            assert uow.execute(select(text("count(*)")).select_from(text("deliveries"))).scalar() == 0
    finally:
        db.dispose()


def test_tables_made_before_migrations_are_adopted_and_kept(database_url):
    from services.notification.models import Liaison
    from tests.helpers import create_tables

    db = service_db(database_url, "notification")
    try:
        create_tables(db, metadata_of("notification"))  # what start-up did before migrations existed
        with db.transaction() as uow:
            uow.add(Liaison(unit_id="u1", unit_name="相山区信访局", name="李明", email="li.ming@example.org"))
        assert upgrade(db, "notification") == head_revision("notification")
        with db.session() as uow:
            assert uow.execute(select(Liaison.name)).scalars().all() == ["李明"]
        assert pending_changes(db, metadata_of("notification")) == []
    finally:
        db.dispose()
