"""deploy/postgres/service-role.sql on a real PostgreSQL: a service runs with a role that owns only its schema."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from tests.services import unique

ROOT = Path(__file__).resolve().parents[1]
SQL = ROOT / "deploy" / "postgres" / "service-role.sql"
pytestmark = pytest.mark.postgres


def run_role_sql(url: str, *, role: str, schema: str, password: str) -> None:
    """Run the SQL file with psql, as the compose init script does."""
    parsed = make_url(url)
    subprocess.run(
        [
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-h",
            parsed.host,
            "-p",
            str(parsed.port or 5432),
            "-U",
            parsed.username,
            "-d",
            parsed.database,
            "-v",
            f"role={role}",
            "-v",
            f"schema={schema}",
            "-v",
            f"password={password}",
            "-f",
            str(SQL),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def service_roles(postgres_url):
    """Two service roles made by the SQL file in a fresh database; dropped afterwards (roles are server-wide)."""
    if shutil.which("psql") is None:
        pytest.skip("psql (PostgreSQL's client) is not installed")
    roles = {"intake": unique("cep_intake_"), "review": unique("cep_review_")}
    try:
        for schema, role in roles.items():
            run_role_sql(postgres_url, role=role, schema=schema, password="pw-" + role)
            run_role_sql(postgres_url, role=role, schema=schema, password="pw-" + role)  # re-runnable
        yield postgres_url, roles
    finally:
        admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for role in roles.values():
                if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
                    conn.execute(text(f'DROP OWNED BY "{role}" CASCADE'))
                    conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_a_service_bootstraps_with_its_own_role_and_cannot_touch_another_schema(service_roles, tmp_path):
    from services.intake.bootstrap import bootstrap
    from shared.settings import Settings

    url, roles = service_roles
    as_intake = make_url(url).set(username=roles["intake"]).render_as_string(hide_password=False)
    ctx = bootstrap(
        Settings(data_dir=tmp_path, database_url=as_intake)
    )  # creates intake's tables in its schema
    try:
        with ctx.db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM intake.outbox")).scalar_one() == 0
            owners = (
                conn.execute(text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'intake'"))
                .scalars()
                .all()
            )
            assert owners == [roles["intake"]]
        engine = create_engine(as_intake)
        with engine.connect() as conn:
            for forbidden in (
                "CREATE TABLE review.sneaky (id int)",
                "CREATE SCHEMA elsewhere",
                "CREATE TABLE public.sneaky (id int)",
            ):
                with pytest.raises(ProgrammingError, match="permission denied"):
                    conn.execute(text(forbidden))
                conn.rollback()
        engine.dispose()
    finally:
        ctx.db.dispose()
