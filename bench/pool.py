"""Connection-pool benchmark: what pinging a pooled PostgreSQL connection before every use costs.

    python -m bench.pool [--transactions 3000] [--rounds 3] [--idle-s 1.0]

In one process, on a fresh PostgreSQL database (dropped afterwards), runs --transactions short write
transactions (`Database.transaction()` with one `SELECT 1`, as a handler's smallest transaction) one after
the other, alternating `DATABASE_PING_IDLE_S=0` (a ping before every use, as SQLAlchemy's pool_pre_ping)
with --idle-s (a ping only for a connection unused for longer: none here, the connection is handed back
moments before), --rounds times each. Prints, per transaction, this process's CPU, PostgreSQL's CPU (all
backends) and the wall time, medians over the rounds.

Needs PostgreSQL at 127.0.0.1:5432 (TEST_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench.common import CpuMeter, print_table, run_cli


def measure(url: str, ping_idle_s: float, transactions: int) -> tuple[float, float, float]:
    """(client CPU ms, PostgreSQL CPU ms, wall ms) per transaction with this ping setting."""
    from sqlalchemy import text

    from shared.db import Database

    db = Database(url, schema="public", pool_size=1, pool_overflow=0, ping_idle_s=ping_idle_s)
    try:
        with db.transaction() as uow:  # connect outside the measured loop
            uow.execute(text("SELECT 1"))
        meter = CpuMeter({}, {"postgres": "postgres"}).start()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(transactions):
            with db.transaction() as uow:
                uow.execute(text("SELECT 1"))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        meter.stop()
    finally:
        db.dispose()
    per = 1000 / transactions
    return cpu * per, meter.used["postgres"] * per, wall * per


def main(argv: list[str] | None = None) -> int:
    """Alternate the two settings and print the medians."""
    parser = argparse.ArgumentParser(prog="python -m bench.pool", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--transactions", type=int, default=3000, help="transactions per round (default 3000)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per setting (default 3)")
    parser.add_argument(
        "--idle-s", type=float, default=1.0, help="DATABASE_PING_IDLE_S to compare with 0 (default 1.0)"
    )
    args = parser.parse_args(argv)
    from tests.services import fresh_postgres_database

    settings = (0.0, args.idle_s)
    figures: dict[float, list[tuple[float, float, float]]] = {s: [] for s in settings}
    with fresh_postgres_database() as url:
        for round_ in range(args.rounds):
            for setting in settings:
                figures[setting].append(measure(url, setting, args.transactions))
            print(f"  round {round_ + 1}/{args.rounds} done", flush=True)
    rows = []
    for setting in settings:
        client, server, wall = (statistics.median(f[i] for f in figures[setting]) for i in range(3))
        label = "0 (ping before every use)" if setting == 0 else f"{setting:g} (no ping: used moments ago)"
        rows.append([label, f"{client:.3f}", f"{server:.3f}", f"{wall:.3f}"])
    print_table(
        f"{args.transactions} transactions of one SELECT 1 each, one pooled connection, median of {args.rounds} rounds",
        ["DATABASE_PING_IDLE_S", "client CPU ms/txn", "PostgreSQL CPU ms/txn", "wall ms/txn"],
        rows,
    )
    print(
        f"Machine: {os.cpu_count()} cores, 1-minute load average {os.getloadavg()[0]:.1f} when the run ended."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
