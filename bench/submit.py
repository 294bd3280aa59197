"""Submit benchmark: `POST /intake/submissions` at fixed offered rates, open loop, embedded and distributed.

    python -m bench.submit [--mode both|embedded|distributed] [--rates 10,100,200] [--seconds 5] [--workers 1]
                           [--database postgresql|sqlite]

An open-loop generator: for each offered rate R the send times are fixed in advance (one every 1/R s for
--seconds, at least --min-requests requests), each request goes out at its time on a free keep-alive
connection (a new one is opened when all are busy), and its latency is measured from its scheduled time, not
from when it was sent, so a server that falls behind cannot hide its queue. Printed per rate: p50/p99/max
latency, the achieved rate (responses per second over the run), errors, and connections used. The client is a
minimal asyncio HTTP/1.1 client (a few µs of CPU per request, so it does not compete with the server for the
machine's cores the way a full HTTP library would).

Embedded: `python -m deploy.embedded` (what `make run` starts: all four services in one process, SQLite
files, folder stores, in-process bus) on a temporary DATA_DIR. Distributed: the intake API
(`python -m services.intake api`, --workers uvicorn processes via API_WORKERS) and the intake worker (outbox
relay to RabbitMQ on a unique exchange) on a fresh PostgreSQL database, or with --database sqlite on the SQLite
file the embedded mode uses (the API processes then share its write lock). Both create one unit first; each
submission is handed in for review (state submitted, event in the outbox), as a liaison's would be. The
requests carry an admin token signed with the run's own key pair.

Everything started is removed afterwards (processes, database, queues, exchange, temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from bench.common import ServiceProcess, percentile, print_table, run_cli, staff_credentials
from deploy.processes import cluster_env, free_port, terminate, wait_healthy

MAX_CONNECTIONS = 1000
RETRY_DELAYS_MS = (1000, 5000, 30000)  # the distributed worker's, named so its retry queues can be removed
DATABASES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}  # --database: its name in the tables


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads the whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, head: bytes, body: bytes) -> int:
        """Send one request; return the response's status code after reading its body."""
        self.writer.write(head + body)
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while (size := int((await self.reader.readline()).strip(), 16)) > 0:
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        elif length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        """Close the socket."""
        self.writer.close()


@dataclass
class RateResult:
    """What one offered rate gave."""

    rate: float
    sent: int
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0
    connections: int = 0
    server_cpu_s: float = 0.0

    @property
    def achieved(self) -> float:
        """Successful responses per second, from the first scheduled send to the last response."""
        return len(self.latencies) / self.wall if self.wall else 0.0


async def offer(
    url: str,
    headers: dict[str, str],
    make_body,
    *,
    rate: float,
    count: int,
    drain_s: float,
    method: str = "POST",
    expected: int = 201,
) -> RateResult:
    """Send `count` requests at `rate` per second on a fixed schedule; latency from each scheduled time.
    make_body(index) gives each request's JSON body (None: requests without one); answers other than `expected`
    count as errors."""
    parsed = urlparse(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    idle: list[Connection] = []
    result = RateResult(rate=rate, sent=count)
    opened = 0

    async def one(scheduled: float, index: int) -> None:
        nonlocal opened
        body = make_body(index) if make_body else b""
        typed = "Content-Type: application/json\r\n" if make_body else ""
        head = (
            f"{method} {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n{typed}"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        ).encode()
        conn = idle.pop() if idle else None
        try:
            if conn is not None and conn.reader.at_eof():  # the server closed an idle keep-alive connection
                conn.close()
                conn = None
            reused = conn is not None
            if conn is None:
                opened += 1
                conn = Connection(*await asyncio.open_connection(parsed.hostname, parsed.port))
            try:
                status = await conn.request(head, body)
            except (IndexError, ConnectionError):
                if not reused:
                    raise
                conn.close()  # closed by the server between requests: once more on a new connection
                opened += 1
                conn = Connection(*await asyncio.open_connection(parsed.hostname, parsed.port))
                status = await conn.request(head, body)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
            if conn:
                conn.close()
            return
        idle.append(conn)
        if status == expected:
            result.latencies.append(time.monotonic() - scheduled)
        else:
            result.errors[str(status)] = result.errors.get(str(status), 0) + 1

    loop_start = time.monotonic() + 0.05
    tasks = []
    for i in range(count):
        scheduled = loop_start + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, i)))
    _done, pending = await asyncio.wait(tasks, timeout=drain_s)
    for task in pending:
        task.cancel()
    if pending:
        result.errors["unanswered"] = len(pending)
    result.wall = time.monotonic() - loop_start if not pending else drain_s + count / rate
    result.connections = opened
    for conn in idle:
        conn.close()
    return result


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds used so far by the processes and their children (uvicorn workers)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for each in [process, *process.children(recursive=True)]:
                times = each.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def measure(
    url: str,
    headers: dict[str, str],
    unit_id: str,
    *,
    rates: list[float],
    seconds: float,
    min_requests: int,
    drain_s: float,
    label: str,
    pids: list[int],
) -> list[RateResult]:
    """Run each offered rate after a short warm-up; return the results."""
    run = uuid.uuid4().hex[:6]

    def make_body(index: int) -> bytes:
        return json.dumps(
            {
                "unit_id": unit_id,
                "measure_code": "M1",
                "title": f"压测报送{run}-{index}",
                "description": "压测：召开专题会议。",
            },
            ensure_ascii=False,
        ).encode()

    results = []
    asyncio.run(offer(url, headers, make_body, rate=20, count=20, drain_s=drain_s))  # warm-up
    for rate in rates:
        count = max(min_requests, int(rate * seconds))
        print(f"{label}: {count} requests at {rate:g}/s", flush=True)
        before = cpu_seconds(pids)
        result = asyncio.run(
            offer(url, headers, make_body, rate=rate, count=count, drain_s=count / rate + drain_s)
        )
        time.sleep(1.0)  # let the relay and the consumers finish what these requests started
        result.server_cpu_s = cpu_seconds(pids) - before
        results.append(result)
    return results


def report(label: str, results: list[RateResult]) -> None:
    """Print one table for a mode."""
    ms = lambda values, p: f"{percentile(values, p) * 1000:,.1f}" if values else "-"  # noqa: E731
    rows = [
        [
            f"{r.rate:g}",
            r.sent,
            ms(r.latencies, 50),
            ms(r.latencies, 99),
            ms(r.latencies, 100),
            f"{r.achieved:,.1f}",
            ", ".join(f"{k}: {v}" for k, v in r.errors.items()) or "0",
            r.connections,
            f"{r.server_cpu_s / max(1, len(r.latencies)) * 1000:,.1f}",
        ]
        for r in results
    ]
    print_table(
        f"{label}: POST /submissions, open loop (latency from the scheduled send time)",
        [
            "offered req/s",
            "requests",
            "p50 ms",
            "p99 ms",
            "max ms",
            "achieved req/s",
            "errors",
            "connections",
            "server CPU ms/req",
        ],
        rows,
    )


def create_unit(base: str, headers: dict[str, str]) -> str:
    """Register the unit every submission belongs to."""
    code = f"S{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{base}/units",
        headers=headers,
        timeout=30,
        json={
            "code": code,
            "name": "相山区信访局",
            "level": "county",
            "liaison": {"name": "李明", "email": f"liaison-{code.lower()}@example.org"},
        },
    )
    response.raise_for_status()
    return response.json()["id"]


def start_embedded(stack: ExitStack, work: Path, auth_env: dict[str, str]) -> tuple[str, int]:
    """Start `python -m deploy.embedded` on a temporary DATA_DIR (stopped when stack closes); its URL and pid."""
    import subprocess

    port = free_port()
    env = cluster_env({**auth_env, "DATA_DIR": str(work / "embedded"), "PORT": str(port)})
    log_path = work / "embedded.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.embedded"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack.callback(terminate, proc)
    base = f"http://127.0.0.1:{port}"

    def alive() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"embedded platform exited:\n{log_path.read_text(errors='replace')[-3000:]}")

    wait_healthy(
        base,
        deadline=time.monotonic() + 90,
        check_alive=alive,
        describe=lambda: "embedded platform not healthy",
    )
    return base, proc.pid


def run_embedded(args, stack: ExitStack, work: Path) -> list[RateResult]:
    """Start the embedded platform and measure it."""
    auth_env, headers = staff_credentials()
    base, pid = start_embedded(stack, work, auth_env)
    unit_id = create_unit(f"{base}/intake", headers)
    return measure(
        f"{base}/intake/submissions",
        headers,
        unit_id,
        rates=args.rates,
        seconds=args.seconds,
        min_requests=args.min_requests,
        drain_s=args.drain_s,
        label="embedded",
        pids=[pid],
    )


def run_distributed(args, stack: ExitStack, work: Path) -> list[RateResult]:
    """Start intake's API and worker on a fresh PostgreSQL database and RabbitMQ, and measure the API."""
    from tests.services import (
        POSTGRES_URL,
        RABBITMQ_URL,
        delete_rabbitmq_objects,
        fresh_postgres_database,
        port_open,
        unique,
    )

    servers = [("RabbitMQ", RABBITMQ_URL, 5672)]
    if args.database == "postgresql":
        servers.append(("PostgreSQL", POSTGRES_URL, 5432))
    for name, url, port in servers:
        if not port_open(url, port):
            raise SystemExit(
                f"{name} is not reachable at {url}; start it (see README) or use --mode embedded"
            )
    from shared.bus.rabbitmq import queue_names

    run = unique("bench.submit.")
    exchange, prefix = f"{run}.events", f"{run}."
    # The worker declares intake's queue and its retry queues: removed with the exchange (the broker is shared).
    queues = queue_names(f"{prefix}intake", RETRY_DELAYS_MS)
    stack.callback(delete_rabbitmq_objects, RABBITMQ_URL, queues=queues, exchanges=[exchange])
    # SQLite: the settings' default URL, a file per service under DATA_DIR, as in the embedded mode
    database = (
        {"DATABASE_URL": stack.enter_context(fresh_postgres_database())}
        if args.database == "postgresql"
        else {}
    )
    auth_env, headers = staff_credentials()
    env = cluster_env(
        {
            **auth_env,
            "BUS_BACKEND": "rabbitmq",
            "RABBITMQ_URL": RABBITMQ_URL,
            "BUS_EXCHANGE": exchange,
            "BUS_QUEUE_PREFIX": prefix,
            "BUS_RETRY_DELAYS_MS": ",".join(map(str, RETRY_DELAYS_MS)),
            **database,
            "DATA_DIR": str(work / "distributed"),
            "API_WORKERS": str(args.workers),
        }
    )
    worker = ServiceProcess("intake", "worker", env, work / "intake-worker.log")
    api = ServiceProcess("intake", "api", env, work / "intake-api.log", port=free_port())
    stack.callback(worker.stop)
    stack.callback(api.stop)
    api.start(timeout=90)
    worker.start()
    unit_id = create_unit(api.url, headers)
    return measure(
        f"{api.url}/submissions",
        headers,
        unit_id,
        rates=args.rates,
        seconds=args.seconds,
        min_requests=args.min_requests,
        drain_s=args.drain_s,
        label=f"distributed ({DATABASES[args.database]}, {args.workers} API worker process{'es' if args.workers > 1 else ''})",
        pids=[api.proc.pid, worker.proc.pid],
    )


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the chosen modes, print the tables, clean up."""
    parser = argparse.ArgumentParser(prog="python -m bench.submit", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=["both", "embedded", "distributed"], default="both")
    parser.add_argument(
        "--rates", default="10,100,200", help="offered rates in requests per second (default 10,100,200)"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="how long each rate is offered (default 5)"
    )
    parser.add_argument(
        "--min-requests", type=int, default=100, help="at least this many requests per rate (default 100)"
    )
    parser.add_argument(
        "--drain-s",
        type=float,
        default=30.0,
        help="wait this long past the schedule for answers (default 30)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes of the distributed API (default 1)"
    )
    parser.add_argument(
        "--database",
        choices=list(DATABASES),
        default="postgresql",
        help="the distributed API's database (default postgresql; sqlite: the embedded mode's file)",
    )
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)",
        flush=True,
    )
    tables = []
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="bench-submit-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        if args.mode in ("both", "embedded"):
            with ExitStack() as inner:
                tables.append(("embedded (make run: one process, SQLite)", run_embedded(args, inner, work)))
        if args.mode in ("both", "distributed"):
            with ExitStack() as inner:
                tables.append(
                    (
                        f"distributed (intake API ×{args.workers} on {DATABASES[args.database]})",
                        run_distributed(args, inner, work),
                    )
                )
    for label, results in tables:
        report(label, results)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
