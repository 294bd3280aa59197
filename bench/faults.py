"""Fault benchmark: the scenarios of tests/faults with larger loads, as a table.

    python -m bench.faults [--load 30] [--concurrency 4] [--scenarios kill-mailer,kill-each,broker,smtp,s3,poison]

Starts the distributed platform as separate OS processes (an API and a worker per service) on a RabbitMQ node of
its own (started here, as the rabbitmq user; never the shared node on 5672), a fresh PostgreSQL database, S3 on
moto and SMTP on aiosmtpd, the last two behind TCP proxies that can refuse or black-hole. For each scenario, a new
unit's submissions (create, upload a photo with the upload grant, approve) run with the fault injected on its own
thread once a third of them have started (new ones keep starting until the fault is over, so the load is at
least --load); then the audit waits (at most 150 s) until nothing is missing and counts:

  lost        approval e-mails that never arrived
  duplicated  extra copies of an e-mail (each under the same Message-ID; another ID would be counted apart)
  stuck       deliveries `sending` with an expired lease + outbox rows never published + events a subscribed
              consumer never processed + messages left on main queues
  orphaned    S3 objects no evidence row refers to + unfinished multipart uploads
  recovery s  seconds from the last client call to the audit finding nothing missing
  false 404   uploads answered 404 for a submission that exists; retries: client calls repeated (5xx, refused)
  resends     deliveries sent again because the worker holding their lease died (cumulative over the run)

Needs PostgreSQL at 127.0.0.1:5432 (TEST_POSTGRES_URL), rabbitmq-server installed, and root.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import print_table


def main(argv: list[str] | None = None) -> int:
    """Start the world, run each scenario, print the table, clean up."""
    from tests.faults.harness import SCENARIOS, FaultWorld, run_scenario
    from tests.faults.rabbit_node import available
    from tests.services import POSTGRES_URL, fresh_postgres_database, port_open

    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--load", type=int, default=30, help="submissions per scenario (default 30)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated (default {','.join(SCENARIOS)})"
    )
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    reason = available()
    if reason or not port_open(POSTGRES_URL, 5432):
        print(reason or f"PostgreSQL is not reachable at {POSTGRES_URL}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    rows = []
    try:
        with fresh_postgres_database() as url, FaultWorld(work, postgres_url=url) as world:
            print(
                f"platform up (logs in {work}); {len(names)} scenario(s) of {args.load} submissions",
                flush=True,
            )
            for name in names:
                scenario = SCENARIOS[name]
                scenario.concurrency = args.concurrency
                outcome = run_scenario(world, scenario, args.load)
                audit = outcome.audit
                rows.append(
                    [
                        name,
                        scenario.fault,
                        outcome.load,
                        audit.lost + audit.failed_flows,
                        audit.duplicated,
                        audit.stuck,
                        audit.orphaned + audit.multipart,
                        f"{outcome.recovery_s:.1f}",
                        audit.false_404,
                        sum(f.retries for f in outcome.flows),
                        audit.resends,
                        audit.parked,
                    ]
                )
                print(f"  {name}: {rows[-1][3:]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(
        "Faults mid-flow (each row: one scenario on the running platform)",
        [
            "scenario",
            "fault",
            "load",
            "lost",
            "duplicated",
            "stuck",
            "orphaned",
            "recovery s",
            "false 404",
            "client retries",
            "resends (total)",
            "parked (total)",
        ],
        rows,
    )
    print(
        "lost counts approval e-mails missing plus submissions the client could not finish; 'parked (total)' is "
        "cumulative over the run (the poison scenario parks three messages per consumer of each key it hits)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
