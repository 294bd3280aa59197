"""A campaign's rows in every service's tables, as data: written once at a revision, loaded into a database at it.

`python -m tests.operations.campaign_rows` plays the simulated Huaibei campaign (tests/flows/simulation.py) up to
its third review pass on an embedded platform and writes every row of the four services to
tests/operations/data/campaign-<revision>.json.gz. The migration test loads those rows into databases built at
that revision and upgrades them to the newest one.
"""

from __future__ import annotations

import base64
import gzip
import json
import sys
import tempfile
import warnings
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Date, DateTime, LargeBinary, MetaData, func, insert, select, text

from shared.db import Database

DATA = Path(__file__).resolve().parent / "data"
SERVICES = ("intake", "evidence_storage", "review", "notification")
SKIP = {"alembic_version"}


def snapshot_path(revision: str) -> Path:
    """Where the rows taken at a revision are kept."""
    return DATA / f"campaign-{revision}.json.gz"


def read_snapshot(revision: str) -> dict:
    """The rows taken at a revision: {"revisions": {service: revision}, "rows": {service: {table: [row]}}}."""
    with gzip.open(snapshot_path(revision), "rt", encoding="utf-8") as data:
        return json.load(data)


def _plain(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _reflect(metadata: MetaData, conn, db: Database) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*expression-based index")
        metadata.reflect(conn, schema=None if db.is_sqlite else db.schema)


def dump_rows(db: Database) -> dict[str, list[dict]]:
    """Every row of every table in a service's database, JSON-ready, ordered by the table's primary key."""
    metadata = MetaData()
    with db.engine.connect() as conn:
        conn = conn.execution_options(schema_translate_map=None)
        _reflect(metadata, conn, db)
        rows = {}
        for table in metadata.sorted_tables:
            if table.name in SKIP:
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            rows[table.name] = [
                {k: _plain(v) for k, v in row.items()}
                for row in conn.execute(select(table).order_by(*order)).mappings()
            ]
    return rows


def _typed(column, value):
    if value is None:
        return None
    if isinstance(column.type, DateTime):
        return datetime.fromisoformat(value)
    if isinstance(column.type, Date):
        return date.fromisoformat(value)
    if isinstance(column.type, LargeBinary):
        return base64.b64decode(value)
    return value


def load_rows(db: Database, rows: dict[str, list[dict]]) -> None:
    """Insert dumped rows into a service's database (tables as reflected there), keeping ids and sequences right."""
    metadata = MetaData()
    with db.engine.connect() as conn:
        conn = conn.execution_options(schema_translate_map=None)
        with conn.begin():
            _reflect(metadata, conn, db)
            for table in metadata.sorted_tables:
                if not rows.get(table.name):
                    continue
                typed = [
                    {name: _typed(table.c[name], value) for name, value in row.items()}
                    for row in rows[table.name]
                ]
                conn.execute(insert(table), _parents_first(table, typed))
                if not db.is_sqlite:
                    _advance_sequences(conn, table)


def _parents_first(table, rows: list[dict]) -> list[dict]:
    # A table pointing at itself (units.parent_id): insert each row after the row it points at.
    links = [
        (fk.parent.name, fk.column.name) for fk in table.foreign_keys if fk.column.table.name == table.name
    ]
    if not links:
        return rows
    ordered, placed, waiting = [], set(), rows
    while waiting:
        ready = [r for r in waiting if all(r[c] is None or (t, r[c]) in placed for c, t in links)]
        if not ready:
            raise ValueError(f"{table.name}: rows point at rows that are not there")
        ordered += ready
        placed |= {(t, r[t]) for r in ready for _, t in links}
        waiting = [r for r in waiting if not any(r is x for x in ready)]
    return ordered


def _advance_sequences(conn, table) -> None:
    # Rows came with their ids: move each serial column's sequence past them, as a pg_dump restore does.
    for column in table.primary_key.columns:
        sequence = conn.scalar(
            text("SELECT pg_get_serial_sequence(:t, :c)"),
            {"t": f'"{table.schema}"."{table.name}"', "c": column.name},
        )
        if sequence:
            top = conn.scalar(select(func.max(column)))
            conn.execute(text("SELECT setval(:s, :v)"), {"s": sequence, "v": top})


def main() -> None:
    """Play the campaign to its third review pass and write its rows at the current head revision."""
    from fastapi.testclient import TestClient

    from deploy.embedded import build_platform
    from shared.clock import FixedClock
    from shared.migrations import head_revision
    from shared.settings import Settings
    from tests.flows import simulation as sim

    revisions = {service: head_revision(service) for service in SERVICES}
    revision = "-".join(sorted(set(revisions.values())))
    cutoff = sim.at("03-23", "16:00")
    with tempfile.TemporaryDirectory() as work:
        settings = Settings(
            data_dir=Path(work),
            bus_retry_delays_ms=(50, 100),
            outbox_poll_s=0.1,
            supervision_rules_interval_s=0,
            deadline_watch_interval_s=86400,
        )
        clock = FixedClock(sim.at(sim.START, "09:00"))
        platform = build_platform(settings, clock=clock)
        with TestClient(platform.app) as client:
            play = sim.Simulation(platform, client, clock)
            play.move_to(sim.at(sim.START))
            play.load()
            for moment, _, _label, step in play.agenda():
                if moment > cutoff:
                    break
                play.move_to(moment)
                step()
                play.monitor.settle()
            rows = {service: dump_rows(ctx.db) for service, ctx in platform.contexts.items()}
    DATA.mkdir(parents=True, exist_ok=True)
    path = snapshot_path(revision)
    with gzip.open(path, "wt", encoding="utf-8") as out:
        json.dump({"revisions": revisions, "rows": rows}, out, ensure_ascii=False, sort_keys=True)
    counts = {service: sum(len(r) for r in tables.values()) for service, tables in rows.items()}
    print(f"wrote {path} ({path.stat().st_size} bytes): {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
