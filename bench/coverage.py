"""Coverage-matrix benchmark: a campaign of 5,000 units and 200,000 submissions on PostgreSQL.

    python -m bench.coverage [--units 5000] [--submissions 200000] [--runs 50] [--http-runs 20] [--seed 1]

Creates a fresh PostgreSQL database for the run (dropped afterwards, also on Ctrl-C), opens intake on it
(its own bootstrap: tables, indexes), loads a generated definition (a city, 10 districts, 10 streets
each, the rest communities spread over the streets; 7 measures, 6 topics) through the same use case
as the API and CLI, then bulk-loads the submissions with COPY, not through the API: 40 per unit on
average, of every kind and state, with 0-3 topics each, then VACUUM ANALYZE. Timed, each over --runs
runs after one warm-up:

  - the coverage use case (read from the coverage projection, which the COPY bypasses, so it is rebuilt
    first, as `python -m services.intake.cli rebuild-coverage` would) for the whole campaign, one district's
    subtree and one street's subtree; the compact shape and the rollup for the whole campaign;
  - GET /campaigns/{id}/coverage in process (TestClient, JSON encoding included) for the whole campaign in
    both shapes, its rollup, and one district (what the console loads for a large campaign), as an admin
    with a token minted from the run's own key;
  - the deadline watcher's first pass (an alert per unit, its event in the outbox) and a second pass.

Needs PostgreSQL at 127.0.0.1:5432 (TEST_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bench.common import percentile, print_table, run_cli

MEASURES = [f"M{n}" for n in range(1, 8)]
TOPICS = [f"T{n}" for n in range(1, 7)]
STATES = (
    ["approved"] * 40
    + ["submitted"] * 25
    + ["returned"] * 10
    + ["rejected"] * 5
    + ["withdrawn"] * 5
    + ["draft"] * 15
)
KINDS = ["measure"] * 90 + ["summary_report"] * 5 + ["good_practice"] * 5
AS_OF = datetime(2020, 4, 3, 4, tzinfo=UTC)  # two days before the summary deadline


def definition(units: int) -> str:
    """A campaign with `units` units: city → 10 districts → 10 streets each → communities."""
    tree = [{"code": "C", "name": "基准市", "level": "city", "participates": False}]
    districts = [f"D{d}" for d in range(10)]
    streets = [f"{d}S{s}" for d in districts for s in range(10)]
    tree += [{"code": d, "name": f"第{d}区", "level": "county", "parent": "C"} for d in districts]
    tree += [{"code": s, "name": f"{s}街道", "level": "township", "parent": s.split("S")[0]} for s in streets]
    for n in range(units - len(tree)):
        tree.append(
            {
                "code": f"V{n}",
                "name": f"第{n}社区",
                "level": "village",
                "parent": streets[n % len(streets)],
                **({"liaison": {"name": f"联络员{n}", "email": f"v{n}@example.org"}} if n % 3 else {}),
            }
        )
    data = {
        "code": "bench-coverage",
        "name": "覆盖情况基准活动",
        "organiser": "基准办公室",
        "windows": {"publicity": {"start": "2020-03-09", "end": "2020-03-31"}},
        "deadlines": [
            {"code": "liaison", "name": "联络员", "due": "2020-03-12", "requires": ["liaison"]},
            {
                "code": "summary",
                "name": "总结",
                "due": "2020-04-05",
                "requires": ["summary_report", "measures"],
            },
        ],
        "measures": [{"code": m, "name": f"措施{m}"} for m in MEASURES],
        "topics": [{"code": t, "name": f"重点{t}"} for t in TOPICS],
        "units": tree,
    }
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def bulk_load(ctx, campaign_id: str, count: int, rng: random.Random) -> None:
    """COPY `count` submissions (and their topics) straight into intake's tables."""
    from sqlalchemy import select, text

    from services.intake.models import Unit

    with ctx.db.session() as uow:
        units = uow.execute(
            select(Unit.id, Unit.unit_path).where(
                Unit.campaign_id == campaign_id, Unit.participates.is_(True)
            )
        ).all()
    now = datetime(2020, 3, 20, tzinfo=UTC).isoformat()
    subs, topics = io.StringIO(), io.StringIO()
    for n in range(count):
        unit_id, path = units[n % len(units)] if n < len(units) else rng.choice(units)
        kind = rng.choice(KINDS)
        state = rng.choice(STATES)
        chosen = rng.sample(TOPICS, rng.randint(0, 3))
        sid = f"b{n:035d}"
        measure = rng.choice(MEASURES) if kind == "measure" else ""
        subs.write(
            "\t".join(
                [
                    sid,
                    campaign_id,
                    unit_id,
                    path,
                    kind,
                    measure,
                    f"材料{n}",
                    "",
                    "",
                    "0",
                    json.dumps(chosen),
                    "f",
                    "f",
                    state,
                    "1",
                    now,
                    now,
                    now,
                ]
            )
            + "\n"
        )
        handed_in = "t" if state in ("submitted", "under_review", "approved") else "f"
        for topic in chosen:
            topics.write(f"{sid}\t{topic}\t{campaign_id}\t{unit_id}\t{handed_in}\n")
    columns = (
        "id, campaign_id, unit_id, unit_path, kind, measure_code, title, description, place, participants, topics, "
        "outside_window, late, state, version, submitted_at, created_at, updated_at"
    )
    with ctx.db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor:
            with cursor.copy(f'COPY "{ctx.db.schema}".submissions ({columns}) FROM STDIN') as copy:
                copy.write(subs.getvalue())
            with cursor.copy(
                f'COPY "{ctx.db.schema}".submission_topics (submission_id, topic_code, campaign_id, unit_id, handed_in) FROM STDIN'
            ) as copy:
                copy.write(topics.getvalue())
        raw.commit()
    with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'VACUUM ANALYZE "{ctx.db.schema}".submissions'))
        conn.execute(text(f'VACUUM ANALYZE "{ctx.db.schema}".submission_topics'))
        conn.execute(text(f'VACUUM ANALYZE "{ctx.db.schema}".units'))


def rebuild_projection(ctx) -> None:
    """Build the coverage projection from the COPYed submissions (what `cli rebuild-coverage` does), then ANALYZE it."""
    from sqlalchemy import text

    from services.intake import projection

    with ctx.db.transaction() as uow:
        projection.rebuild(uow)
    with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'VACUUM ANALYZE "{ctx.db.schema}".coverage_units'))


def timed(fn, runs: int) -> list[float]:
    """Seconds per call of fn over runs calls, after one warm-up call."""
    fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    """Build the data set, time the queries, print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--submissions", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--http-runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.units < 200:
        parser.error("--units must be at least 200 (the city, districts and streets alone are 111)")

    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from services.intake import campaigns, coverage, deadlines
    from services.intake import definition as intake_definition
    from services.intake.api import create_app
    from services.intake.bootstrap import bootstrap
    from services.intake.models import Unit
    from shared.auth import ADMIN, issuer_from_settings
    from shared.clock import FixedClock
    from shared.runtime import freeze_startup_objects
    from shared.settings import Settings
    from tests.services import POSTGRES_URL, fresh_postgres_database, port_open

    if not port_open(POSTGRES_URL, 5432):
        print(f"PostgreSQL is not reachable at {POSTGRES_URL}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-coverage-") as work, fresh_postgres_database() as url:
        ctx = bootstrap(Settings(data_dir=Path(work), database_url=url), clock=FixedClock(AS_OF))
        try:
            start = time.perf_counter()
            loaded = campaigns.load_definition(definition(args.units), ctx=ctx)
            load_s = time.perf_counter() - start
            start = time.perf_counter()
            bulk_load(ctx, loaded.campaign_id, args.submissions, rng)
            copy_s = time.perf_counter() - start
            start = time.perf_counter()
            rebuild_projection(ctx)
            rebuild_s = time.perf_counter() - start
            # Measured as an API process serves: what it built at start frozen out of the collector's way
            # (shared/runtime.freeze_startup_objects), the definition parsed later, by its first request.
            intake_definition._PARSED.clear()
            freeze_startup_objects()
            with ctx.db.session() as uow:
                district = uow.scalar(
                    select(Unit.id).where(Unit.campaign_id == loaded.campaign_id, Unit.code == "D3")
                )
                street = uow.scalar(
                    select(Unit.id).where(Unit.campaign_id == loaded.campaign_id, Unit.code == "D3S4")
                )
                sizes = {
                    uid: uow.scalar(
                        select(func.count())
                        .select_from(Unit)
                        .where(Unit.unit_path.startswith(uow.get(Unit, uid).unit_path))
                    )
                    for uid in (district, street)
                }
            cases = [
                ("whole campaign", None, args.units - 1),
                ("one district's subtree", district, sizes[district]),
                ("one street's subtree", street, sizes[street]),
            ]
            rows = []
            for name, unit_id, size in cases:
                values = timed(
                    lambda unit_id=unit_id: coverage.coverage(loaded.campaign_id, unit_id=unit_id, ctx=ctx),
                    args.runs,
                )
                rows.append(
                    [
                        f"coverage use case, {name}",
                        size,
                        args.runs,
                        ms(values, 50),
                        ms(values, 95),
                        ms(values, 100),
                        "-",
                    ]
                )
            for name, run in (
                (
                    "coverage use case, whole campaign, compact",
                    lambda: coverage.coverage(loaded.campaign_id, ctx=ctx, shape="compact"),
                ),
                (
                    "rollup use case (levels and districts), whole campaign",
                    lambda: coverage.rollup(loaded.campaign_id, ctx=ctx),
                ),
            ):
                values = timed(run, args.runs)
                rows.append(
                    [name, args.units - 1, args.runs, ms(values, 50), ms(values, 95), ms(values, 100), "-"]
                )
            with TestClient(create_app(ctx)) as client:
                token = issuer_from_settings(ctx.settings).issue(
                    subject="bench", name="基准", role=ADMIN, ttl_s=3600
                )
                client.headers["Authorization"] = f"Bearer {token}"
                path = f"/campaigns/{loaded.campaign_id}/coverage"
                for name, url, params, size in (
                    ("GET …/coverage in process (JSON), whole campaign", path, {}, args.units - 1),
                    (
                        "GET …/coverage?format=compact, whole campaign",
                        path,
                        {"format": "compact"},
                        args.units - 1,
                    ),
                    ("GET …/coverage/rollup, whole campaign", f"{path}/rollup", {}, args.units - 1),
                    (
                        "GET …/coverage?unit_id=<district> (what the console loads)",
                        path,
                        {"unit_id": district},
                        sizes[district],
                    ),
                ):
                    body = client.get(url, params=params).raise_for_status().content
                    values = timed(
                        lambda url=url, params=params: client.get(url, params=params).raise_for_status(),
                        args.http_runs,
                    )
                    rows.append(
                        [
                            name,
                            size,
                            args.http_runs,
                            ms(values, 50),
                            ms(values, 95),
                            ms(values, 100),
                            f"{len(body) / 1024:,.0f}",
                        ]
                    )
            start = time.perf_counter()
            fired = deadlines.watch_deadlines(ctx=ctx)
            first_s = time.perf_counter() - start
            start = time.perf_counter()
            again = deadlines.watch_deadlines(ctx=ctx)
            second_s = time.perf_counter() - start
        finally:
            ctx.db.dispose()
    print_table(
        f"Coverage matrix on PostgreSQL: {args.units:,} units, {args.submissions:,} submissions, 7 measures, 6 topics",
        ["query", "units in view", "runs", "p50 ms", "p95 ms", "max ms", "body KiB"],
        rows,
    )
    print_table(
        "Set-up and the deadline watcher",
        ["step", "seconds", "note"],
        [
            [
                "load the definition (use case: units, liaisons, events)",
                f"{load_s:,.2f}",
                f"{args.units:,} units",
            ],
            [
                "COPY submissions and topics, VACUUM ANALYZE",
                f"{copy_s:,.2f}",
                f"{args.submissions:,} submissions",
            ],
            [
                "rebuild the coverage projection from them (cli rebuild-coverage)",
                f"{rebuild_s:,.2f}",
                "cells and topic counters",
            ],
            [
                "deadline watcher, first pass",
                f"{first_s:,.2f}",
                f"{fired:,} alerts written with their events",
            ],
            ["deadline watcher, second pass", f"{second_s:,.2f}", f"{again:,} alerts (each fires once)"],
        ],
    )
    print(
        f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)",
        flush=True,
    )
    return 0


def ms(values: list[float], pct: float) -> str:
    """A percentile of seconds, as milliseconds."""
    return f"{percentile(values, pct) * 1000:,.1f}"


if __name__ == "__main__":
    sys.exit(run_cli(main))
