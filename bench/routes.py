"""Routes benchmark: the embedded platform's CPU per request, route by route, from the HTTP floor to a submission.

    python -m bench.routes [--rate 40] [--seconds 15]

Issue #16 asks `make run` to take 200 submissions a second in one process. This shows what a request costs
before any of its own work: the same modest rate (well below saturation, so queueing plays no part) is offered
to routes that each add a layer, and the process's CPU over each run is divided by its requests:

- `GET /livez`: uvicorn, the root app and its middleware, no token, no database;
- `GET /intake/units/{id}`: plus a mounted service app with its middleware, the token's signature, one read;
- `GET /review/submissions/{id}`: the read the review queue makes of one item (two statements);
- `POST /intake/submissions`: one write transaction with its event, and the two services consuming that event
  (evidence and review) in the same process.

The process's own background work (relays' and jobs' polls) is measured idle first and taken off each row.
One process, so its CPU ms per request bounds its rate: 1000 / ms requests a second on one core at best, less
the GIL's share when threads compete. The requests carry an admin token signed with the run's own key pair.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.common import percentile, print_table, run_cli, staff_credentials
from bench.submit import RateResult, cpu_seconds, create_unit, offer, start_embedded

DRAIN_S = 30.0  # wait this long past the schedule for answers


def offer_route(
    base: str,
    method: str,
    path: str,
    body: dict | None,
    headers: dict[str, str],
    *,
    rate: float,
    seconds: float,
) -> RateResult:
    """bench.submit's open-loop schedule on one route: `rate` requests a second for `seconds`."""
    payload = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    count = max(int(rate * seconds), 1)
    return asyncio.run(
        offer(
            f"{base}{path}",
            headers,
            (lambda _index: payload) if payload is not None else None,
            rate=rate,
            count=count,
            drain_s=count / rate + DRAIN_S,
            method=method,
            expected=201 if method == "POST" else 200,
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Start the embedded platform, measure it idle, then each route; print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.routes", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rate", type=float, default=40.0, help="requests a second offered to each route (default 40)"
    )
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="how long each route is offered (default 15)"
    )
    parser.add_argument(
        "--idle-s", type=float, default=10.0, help="how long the idle process is measured (default 10)"
    )
    args = parser.parse_args(argv)
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)",
        flush=True,
    )
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="bench-routes-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        auth_env, headers = staff_credentials()
        base, pid = start_embedded(stack, work, auth_env)
        unit_id = create_unit(f"{base}/intake", headers)
        submission = {
            "unit_id": unit_id,
            "measure_code": "M1",
            "title": "召开专题会议",
            "description": "压测。",
        }
        first = offer_route(
            base, "POST", "/intake/submissions", submission, headers, rate=args.rate, seconds=0.1
        )
        if first.errors:
            raise RuntimeError(f"creating a submission failed: {first.errors}")
        item = httpx.get(
            f"{base}/intake/submissions", headers=headers, params={"unit_id": unit_id}, timeout=30
        )
        item.raise_for_status()
        submission_id = item.json()[0]["id"]
        time.sleep(2.0)  # the first submissions' events consumed before the idle window
        before = cpu_seconds([pid])
        time.sleep(args.idle_s)
        idle_per_s = (cpu_seconds([pid]) - before) / args.idle_s
        print(f"idle: {idle_per_s * 1000:.1f} ms of CPU a second", flush=True)
        routes = [
            ("GET", "/livez", None),
            ("GET", f"/intake/units/{unit_id}", None),
            ("GET", f"/review/submissions/{submission_id}", None),
            ("POST", "/intake/submissions", submission),
        ]
        results: list[tuple[str, RateResult, float]] = []  # route, what it answered, server CPU ms a request
        for method, path, body in routes:
            print(f"offering {method} {path} at {args.rate:g}/s for {args.seconds:g} s", flush=True)
            before, began = cpu_seconds([pid]), time.monotonic()
            result = offer_route(base, method, path, body, headers, rate=args.rate, seconds=args.seconds)
            time.sleep(1.0)  # what the request set off (events consumed) counts for it
            used = cpu_seconds([pid]) - before - idle_per_s * (time.monotonic() - began)
            name = f"{method} {path}".replace(unit_id, "{id}").replace(submission_id, "{id}")
            results.append((name, result, 1000 * used / result.sent))
    print_table(
        f"embedded (make run: one process, SQLite), {args.rate:g} requests a second offered to each route",
        ["route", "requests", "errors", "p50 ms", "p99 ms", "server CPU ms/req", "req/s on one core at most"],
        [
            [
                name,
                result.sent,
                ", ".join(f"{n}× {what}" for what, n in sorted(result.errors.items())) or "0",
                f"{percentile(result.latencies, 50) * 1000:.1f}",
                f"{percentile(result.latencies, 99) * 1000:.1f}",
                f"{cpu_ms:.2f}",
                f"{1000 / cpu_ms:.0f}" if cpu_ms > 0 else "–",
            ]
            for name, result, cpu_ms in results
        ],
    )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
