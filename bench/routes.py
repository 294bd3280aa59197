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
import http.client
import json
import os
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from bench.common import percentile, print_table, run_cli, staff_credentials
from bench.submit import cpu_seconds, create_unit, start_embedded

CLIENT_THREADS = 4


@dataclass
class RouteResult:
    """What one route cost at the offered rate."""

    name: str
    requests: int
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    cpu_ms: float = 0.0  # the process's CPU per request, its idle share taken off


def offer(
    base: str,
    method: str,
    path: str,
    body: dict | None,
    headers: dict[str, str],
    *,
    rate: float,
    seconds: float,
) -> RouteResult:
    """Send rate requests a second for seconds on keep-alive connections; latency from each scheduled time."""
    host = urlparse(base)
    total = max(int(rate * seconds), CLIENT_THREADS)
    result = RouteResult(f"{method} {path}", total)
    lock = threading.Lock()
    payload = json.dumps(body).encode() if body is not None else None
    sent_headers = {**headers, **({"Content-Type": "application/json"} if payload else {})}
    start = time.monotonic() + 0.2

    def client(first: int) -> None:
        conn = http.client.HTTPConnection(host.hostname or "127.0.0.1", host.port, timeout=60)
        try:
            for index in range(first, total, CLIENT_THREADS):
                due = start + index / rate
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                conn.request(method, path, body=payload, headers=sent_headers)
                response = conn.getresponse()
                response.read()
                took = (time.monotonic() - due) * 1000
                with lock:
                    result.statuses[response.status] = result.statuses.get(response.status, 0) + 1
                    result.latencies_ms.append(took)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


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
        first = offer(base, "POST", "/intake/submissions", submission, headers, rate=args.rate, seconds=0.1)
        if first.statuses != {201: first.requests}:
            raise RuntimeError(f"creating a submission answered {first.statuses}")
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
        results = []
        for method, path, body in routes:
            print(f"offering {method} {path} at {args.rate:g}/s for {args.seconds:g} s", flush=True)
            before, began = cpu_seconds([pid]), time.monotonic()
            result = offer(base, method, path, body, headers, rate=args.rate, seconds=args.seconds)
            time.sleep(1.0)  # what the request set off (events consumed) counts for it
            used = cpu_seconds([pid]) - before - idle_per_s * (time.monotonic() - began)
            result.cpu_ms = 1000 * used / result.requests
            results.append(result)
    print_table(
        f"embedded (make run: one process, SQLite), {args.rate:g} requests a second offered to each route",
        [
            "route",
            "requests",
            "answers",
            "p50 ms",
            "p99 ms",
            "server CPU ms/req",
            "req/s on one core at most",
        ],
        [
            [
                r.name.replace(unit_id, "{id}").replace(submission_id, "{id}"),
                r.requests,
                ", ".join(f"{n}×{status}" for status, n in sorted(r.statuses.items())),
                f"{percentile(r.latencies_ms, 50):.1f}",
                f"{percentile(r.latencies_ms, 99):.1f}",
                f"{r.cpu_ms:.2f}",
                f"{1000 / r.cpu_ms:.0f}" if r.cpu_ms > 0 else "–",
            ]
            for r in results
        ],
    )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
