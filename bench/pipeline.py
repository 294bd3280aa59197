"""Pipeline benchmark: N submissions through the distributed platform until their e-mails arrive.

    python -m bench.pipeline [--n 200] [--concurrency 8] [--outbox-poll-s 0.5] [--poll-ms 50] [--raw-n N]
    python -m bench.pipeline --rate 5,10,20 [--seconds 20]     (open loop: fixed offered rates)
    python -m bench.pipeline --replicas 2 [--n 100]           (scale-out: 1 replica vs 2, side by side)

Starts the whole platform as separate OS processes (deploy/processes.py: an API and a worker per service) on
RabbitMQ (a unique exchange and queue prefix for this run), PostgreSQL (a fresh database created for this run
and dropped afterwards), S3 on moto's standalone server and SMTP on the recording aiosmtpd server of
tests/servers.py. The client sends an admin token signed with the run's own key pair (AUTH_* in the services'
environment), so no user accounts are needed. One unit is registered; then a pool of threads, for each of N
submissions: creates it at intake, polls review until its queue shows it, and approves it. A submission's
latency runs from the create call to the arrival of its approval e-mail at the SMTP server (matched by the
title in the subject). Throughput is N over the time from the first create call to the last e-mail.

With --rate the load is open loop instead: for each offered rate R (submissions per second) the start times are
fixed in advance (one every 1/R s for --seconds), each submission is driven on its own thread from its scheduled
time, and its latency runs from that scheduled time (so a platform that falls behind cannot hide its queue).
Per rate: p50/p99 of create → e-mail, the achieved rate, and the CPU milliseconds per submission of every
process while that rate ran.

Also printed: where the time between commit and e-mail goes (from the services' outbox and delivery
timestamps), events published and consumed per submission, and the CPU each process used while the
submissions ran (the machine has 2 cores; other work on it shows as "everything else").

Beside it, in the same run, raw pika on the same broker: N persistent messages published with publisher
confirms to a fresh quorum queue (the platform's queue type) and consumed with manual acks, three times (the
median is shown), as a yardstick; at least 5,000 messages, so connection set-up does not dominate the ratio.

With --replicas N the platform runs twice, each time on a fresh database and fresh queues: once with one
process per API and worker, once with N worker processes per service and two processes per API (the client
sends its requests round-robin over the two). The table puts the runs side by side: throughput, CPU per
submission, and whether the replicas ran safely together: e-mails sent twice (the same recipients and subject
more than once at the SMTP server), events handled twice (an event recorded twice in one consumer's inbox) and
redeliveries the inboxes absorbed (log lines of a duplicate ignored). The raw pika yardstick is skipped then.

Everything is removed afterwards, also on Ctrl-C or error: processes, queues, exchange, database, bucket (the
process logs are kept, and their folder named, when the platform itself failed).
Needs RabbitMQ at 127.0.0.1:5672 and PostgreSQL at 127.0.0.1:5432 (TEST_RABBITMQ_URL / TEST_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import CpuMeter, percentile, print_table, run_cli, staff_credentials
from deploy.processes import SERVICES, Cluster, cluster_env

RETRY_DELAYS_MS = (1000, 5000, 30000)
RAW_TRIALS = 3  # the raw run is short; its median trial is reported
UNIT_NAME = "相山区信访局"
APPROVED = "审核通过"  # in the subject of the approval e-mail


@dataclass
class Timing:
    """When one submission passed each step (time.monotonic())."""

    title: str
    started: float
    queued: float = 0.0
    approved: float = 0.0
    polls: int = 0
    mailed: float | None = None


class MailClock:
    """Stamps each e-mail's arrival at the SMTP server, keyed by subject, on a background thread."""

    def __init__(self, smtp) -> None:
        self._smtp = smtp
        self.arrivals: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mail-clock", daemon=True)

    def __enter__(self) -> MailClock:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        seen = 0
        while not self._stop.is_set():
            try:
                messages = self._smtp.wait_for(seen + 1, timeout=0.2)
            except AssertionError:  # nothing new within the timeout
                continue
            now = time.monotonic()
            for received in messages[seen:]:
                self.arrivals.setdefault(str(received.message["Subject"]), now)
            seen = len(messages)

    def approval_of(self, title: str) -> float | None:
        """When the approval e-mail about the submission with this (unique) title arrived, if it did."""
        found = [
            at for subject, at in list(self.arrivals.items()) if APPROVED in subject and title in subject
        ]
        return min(found) if found else None

    def wait_for_approvals(self, titles: list[str], timeout: float) -> None:
        """Wait until the approval e-mail of every title has arrived."""
        deadline = time.monotonic() + timeout
        waiting = list(titles)
        while waiting:
            waiting = [title for title in waiting if self.approval_of(title) is None]
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(
                    f"{len(waiting)} of {len(titles)} approval e-mails did not arrive within {timeout:.0f}s"
                )
            time.sleep(0.05)


class Driver:
    """The client side: per-thread HTTP clients driving intake and review."""

    def __init__(
        self,
        routes: dict[str, list[str]],
        headers: dict[str, str],
        poll_s: float,
        timeout: float,
        stop: threading.Event,
    ) -> None:
        self.routes, self.poll_s, self.timeout, self.stop = routes, poll_s, timeout, stop
        self._headers = headers
        self._local = threading.local()
        self._turn = itertools.count()

    def url(self, service: str) -> str:
        """The next replica of a service's API, round-robin (one replica: always that one)."""
        replicas = self.routes[service]
        return replicas[next(self._turn) % len(replicas)]

    @property
    def client(self) -> httpx.Client:
        """This thread's HTTP client, sending the admin's bearer token."""
        if not hasattr(self._local, "client"):
            self._local.client = httpx.Client(timeout=30, headers=self._headers)
        return self._local.client

    def create_unit(self) -> dict:
        """Register the one unit all submissions belong to (an invented liaison at example.org)."""
        code = f"B{uuid.uuid4().hex[:8]}"
        response = self.client.post(
            f"{self.url('intake')}/units",
            json={
                "code": code,
                "name": UNIT_NAME,
                "level": "county",
                "liaison": {"name": "李明", "email": f"liaison-{code.lower()}@example.org"},
            },
        )
        response.raise_for_status()
        return response.json()

    def run_one(self, unit_id: str, title: str) -> Timing:
        """Create one submission, wait until review shows it, approve it."""
        timing = Timing(title=title, started=time.monotonic())
        created = self.client.post(
            f"{self.url('intake')}/submissions",
            json={
                "unit_id": unit_id,
                "measure_code": "M1",
                "title": title,
                "description": "压测：召开专题会议。",
            },
        )
        created.raise_for_status()
        submission_id = created.json()["id"]
        deadline = time.monotonic() + self.timeout
        while (
            shown := self.client.get(f"{self.url('review')}/submissions/{submission_id}")
        ).status_code != 200:
            if shown.status_code != 404:
                raise RuntimeError(f"review answered {shown.status_code}: {shown.text[:300]}")
            if self.stop.is_set() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"review did not show submission {submission_id} within {self.timeout:.0f}s"
                )
            timing.polls += 1
            time.sleep(self.poll_s)
        timing.queued = time.monotonic()
        approved = self.client.post(
            f"{self.url('review')}/submissions/{submission_id}/approve",
            json={"reviewer": "王芳", "score": 90},
        )
        approved.raise_for_status()
        timing.approved = time.monotonic()
        return timing


def run_platform(
    cluster: Cluster,
    smtp,
    headers: dict[str, str],
    *,
    n: int,
    concurrency: int,
    poll_s: float,
    timeout: float,
) -> tuple[list[Timing], float, CpuMeter]:
    """Drive n submissions; returns their timings, the wall time from first create to last e-mail and CPU use."""
    stop = threading.Event()
    driver = Driver(cluster.replica_routes, headers, poll_s, timeout, stop)
    unit = driver.create_unit()
    titles = [f"压测报送第{i:04d}号" for i in range(n)]
    timings: list[Timing] = []
    cpu = CpuMeter(
        {
            **{name: proc.pid for name, proc in cluster.processes.items()},
            "this script (client, SMTP, moto)": os.getpid(),
        },
        {"PostgreSQL (all backends)": "postgres", "RabbitMQ": "beam.smp"},
    )
    with MailClock(smtp) as mail:
        cpu.start()
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="driver")
        try:
            started = time.monotonic()
            futures = [pool.submit(driver.run_one, unit["id"], title) for title in titles]
            for future in as_completed(futures):
                timings.append(future.result())
            mail.wait_for_approvals(titles, timeout)
            cpu.stop()
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        for timing in timings:
            timing.mailed = mail.approval_of(timing.title)
    return timings, max(t.mailed for t in timings) - started, cpu


@dataclass
class RateRun:
    """What one offered rate gave: the timings of its submissions, its wall time and the CPU it used."""

    rate: float
    timings: list[Timing]
    wall: float
    cpu: CpuMeter
    failures: int


def run_open_loop(
    cluster: Cluster,
    smtp,
    headers: dict[str, str],
    *,
    rates: list[float],
    seconds: float,
    poll_s: float,
    timeout: float,
) -> list[RateRun]:
    """For each offered rate, start submissions on a fixed schedule and time each from its scheduled start."""
    stop = threading.Event()
    driver = Driver(cluster.replica_routes, headers, poll_s, timeout, stop)
    unit = driver.create_unit()
    results = []
    processes = {
        **{name: proc.pid for name, proc in cluster.processes.items()},
        "this script (client, SMTP, moto)": os.getpid(),
    }
    with MailClock(smtp) as mail:
        for rate in rates:
            count = max(1, int(rate * seconds))
            titles = [f"开环{rate:g}报送第{i:04d}号" for i in range(count)]
            print(
                f"offering {rate:g} submissions/s for {count / rate:.0f} s ({count} submissions)", flush=True
            )
            cpu = CpuMeter(
                processes, {"PostgreSQL (all backends)": "postgres", "RabbitMQ": "beam.smp"}
            ).start()
            # Enough threads that a slow platform never delays a scheduled start (each thread waits on its own).
            pool = ThreadPoolExecutor(
                max_workers=min(256, max(16, int(rate * 10))), thread_name_prefix="open-loop"
            )
            started = time.monotonic() + 0.1
            futures = []

            def drive(title: str, scheduled: float) -> Timing:
                time.sleep(max(0.0, scheduled - time.monotonic()))
                timing = driver.run_one(unit["id"], title)
                timing.started = scheduled
                return timing

            try:
                futures = [pool.submit(drive, title, started + i / rate) for i, title in enumerate(titles)]
                timings, failures = [], 0
                for future in as_completed(futures):
                    try:
                        timings.append(future.result())
                    except Exception as exc:  # counted and shown; the other submissions still count
                        failures += 1
                        print(f"  a submission failed: {exc}", file=sys.stderr)
                mail.wait_for_approvals([t.title for t in timings], timeout)
                cpu.stop()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            for timing in timings:
                timing.mailed = mail.approval_of(timing.title)
            wall = max(t.mailed for t in timings) - started if timings else 0.0
            results.append(RateRun(rate, timings, wall, cpu, failures))
    stop.set()
    return results


def report_open_loop(runs: list[RateRun], raw: dict[str, float], args) -> None:
    """Print latency and throughput per offered rate, then CPU per submission per process at each rate."""
    ms = lambda values, p: f"{percentile(values, p) * 1000:,.0f}" if values else "-"  # noqa: E731
    rows = []
    for run in runs:
        latency = [t.mailed - t.started for t in run.timings]
        to_queue = [t.queued - t.started for t in run.timings]
        rows.append(
            [
                f"{run.rate:g}",
                len(run.timings) + run.failures,
                ms(latency, 50),
                ms(latency, 99),
                ms(latency, 100),
                ms(to_queue, 50),
                ms(to_queue, 99),
                f"{len(run.timings) / run.wall:,.1f}" if run.wall else "-",
                run.failures,
                f"{100 * run.cpu.machine_busy:.0f}%",
            ]
        )
    print_table(
        "Platform, open loop: create → review queue → approve → e-mail at SMTP, latency from the scheduled start "
        f"(OUTBOX_POLL_S={args.outbox_poll_s}, review polled every {args.poll_ms} ms)",
        [
            "offered subm/s",
            "submissions",
            "p50 ms",
            "p99 ms",
            "max ms",
            "to queue p50",
            "to queue p99",
            "achieved subm/s",
            "failed",
            "machine busy",
        ],
        rows,
    )
    names = sorted(
        {name for run in runs for name in run.cpu.used},
        key=lambda name: -sum(r.cpu.used.get(name, 0) for r in runs),
    )
    cpu_rows = [
        [name, *[f"{run.cpu.used.get(name, 0.0) / max(1, len(run.timings)) * 1000:,.1f}" for run in runs]]
        for name in names
    ]
    cpu_rows.append(
        [
            "all of the platform's processes and servers",
            *[
                f"{sum(v for k, v in run.cpu.used.items() if not k.startswith('this script')) / max(1, len(run.timings)) * 1000:,.1f}"
                for run in runs
            ],
        ]
    )
    print_table(
        "CPU ms per submission, per process, at each offered rate",
        ["process", *[f"{r.rate:g}/s" for r in runs]],
        cpu_rows,
    )
    print_table(
        "Raw pika yardstick (same broker)",
        ["path", "messages", "seconds", "messages/s"],
        [
            [
                "publish (confirmed), median of 3",
                args.raw_n,
                f"{raw['publish_s']:,.2f}",
                f"{args.raw_n / raw['publish_s']:,.0f}",
            ],
            [
                "publish → consume (acked), median of 3",
                args.raw_n,
                f"{raw['total_s']:,.2f}",
                f"{args.raw_n / raw['total_s']:,.0f}",
            ],
        ],
    )


def run_raw_pika(url: str, queue: str, *, n: int, prefetch: int, body_size: int) -> dict[str, float]:
    """Publish n persistent confirmed messages to a fresh quorum queue while a consumer acks them one by one."""
    import pika

    body = (b'{"type":"bench.raw","payload":"' + b"x" * body_size)[: body_size - 2] + b'"}'
    params = pika.URLParameters(url)
    publisher = pika.BlockingConnection(params)
    consumer_conn = pika.BlockingConnection(params)
    try:
        channel = publisher.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        consumer = consumer_conn.channel()
        consumer.basic_qos(prefetch_count=prefetch)
        done = {"count": 0, "last": 0.0}

        def on_message(ch, method, properties, payload) -> None:
            ch.basic_ack(delivery_tag=method.delivery_tag)
            done["count"] += 1
            done["last"] = time.monotonic()

        consumer.basic_consume(queue, on_message, auto_ack=False)
        failure: list[BaseException] = []

        def consume() -> None:
            try:
                deadline = time.monotonic() + 300
                while done["count"] < n and time.monotonic() < deadline:
                    consumer_conn.process_data_events(time_limit=0.05)
            except BaseException as exc:  # reported by the caller
                failure.append(exc)

        thread = threading.Thread(target=consume, name="raw-consumer", daemon=True)
        thread.start()
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        started = time.monotonic()
        for _ in range(n):
            channel.basic_publish("", queue, body, properties, mandatory=True)
        published = time.monotonic()
        thread.join()
        if failure:
            raise failure[0]
        if done["count"] < n:
            raise RuntimeError(f"raw pika: only {done['count']} of {n} messages consumed")
        return {"publish_s": published - started, "total_s": done["last"] - started}
    finally:
        for conn in (consumer_conn, publisher):
            if conn.is_open:
                conn.close()


def count_events(database_url: str) -> dict[str, tuple[int, int]]:
    """Per service: events it published (outbox rows) and events it consumed (inbox rows)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    counts = {}
    try:
        with engine.connect() as conn:
            for service in SERVICES:
                out = conn.execute(text(f'SELECT count(*) FROM "{service}".outbox')).scalar_one()
                inbox = conn.execute(text(f'SELECT count(*) FROM "{service}".inbox')).scalar_one()
                counts[service] = (out, inbox)
    finally:
        engine.dispose()
    return counts


STAGES_SQL = """
SELECT EXTRACT(EPOCH FROM (o.published_at - o.created_at)) AS relay,
       EXTRACT(EPOCH FROM (d.created_at - o.published_at)) AS consume,
       EXTRACT(EPOCH FROM (d.sent_at - d.created_at)) AS send
FROM review.outbox o JOIN notification.deliveries d ON d.event_id = o.event_id
WHERE o.type = 'submission.approved' AND d.sent_at IS NOT NULL
"""
SUBMIT_SQL = """
SELECT EXTRACT(EPOCH FROM (o.published_at - o.created_at)) FROM intake.outbox o WHERE o.type = 'submission.submitted'
"""


def stage_lags(database_url: str) -> list[list[str]]:
    """Where the time between commit and e-mail goes, from the services' own tables (empty if they changed shape)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            approvals = conn.execute(text(STAGES_SQL)).all()
            submits = [row[0] for row in conn.execute(text(SUBMIT_SQL)).all()]
    except Exception as exc:
        print(f"(stage breakdown unavailable: {type(exc).__name__})")
        return []
    finally:
        engine.dispose()
    ms = lambda values, p: f"{percentile([float(v) for v in values], p) * 1000:,.0f}" if values else "-"  # noqa: E731
    rows = [
        ["intake outbox: submit committed → published", submits],
        ["review outbox: approve committed → published", [r.relay for r in approvals]],
        ["notification: published → delivery queued", [r.consume for r in approvals]],
        ["notification: delivery queued → sent", [r.send for r in approvals]],
    ]
    return [[name, ms(values, 50), ms(values, 95), ms(values, 99), ms(values, 100)] for name, values in rows]


def report(
    timings: list[Timing],
    wall: float,
    raw: dict[str, float],
    events: dict[str, tuple[int, int]],
    stages: list[list[str]],
    mails: int,
    args,
) -> None:
    """Print the figures."""
    n = len(timings)
    latency = [t.mailed - t.started for t in timings]
    to_queue = [t.queued - t.started for t in timings]
    to_mail = [t.mailed - t.approved for t in timings]
    ms = lambda values, p: f"{percentile(values, p) * 1000:,.0f}"  # noqa: E731
    print_table(
        f"Platform: {n} submissions, create → review queue → approve → e-mail at SMTP "
        f"({args.concurrency} client threads, OUTBOX_POLL_S={args.outbox_poll_s}, review polled every {args.poll_ms} ms)",
        ["measure", "p50 ms", "p95 ms", "p99 ms", "max ms"],
        [
            [
                "end to end (create → e-mail)",
                ms(latency, 50),
                ms(latency, 95),
                ms(latency, 99),
                ms(latency, 100),
            ],
            [
                "create → shown in review queue",
                ms(to_queue, 50),
                ms(to_queue, 95),
                ms(to_queue, 99),
                ms(to_queue, 100),
            ],
            [
                "approve returned → e-mail",
                ms(to_mail, 50),
                ms(to_mail, 95),
                ms(to_mail, 99),
                ms(to_mail, 100),
            ],
        ],
    )
    if stages:
        print_table(
            "Where the time goes (from the services' outbox and delivery timestamps)",
            ["stage", "p50 ms", "p95 ms", "p99 ms", "max ms"],
            stages,
        )
    published = sum(out for out, _ in events.values())
    consumed = sum(inbox for _, inbox in events.values())
    raw_rate = args.raw_n / raw["total_s"]
    platform_rate = n / wall
    print_table(
        "Throughput",
        ["path", "items", "seconds", "items/s", "note"],
        [
            [
                "platform, end to end",
                n,
                f"{wall:,.2f}",
                f"{platform_rate:,.1f}",
                f"{published / n:.1f} events published, {consumed / n:.1f} consumed, {mails / n:.1f} e-mails per submission",
            ],
            [
                "raw pika publish (confirmed), median of 3",
                args.raw_n,
                f"{raw['publish_s']:,.2f}",
                f"{args.raw_n / raw['publish_s']:,.0f}",
                "persistent, one confirm per message",
            ],
            [
                "raw pika publish → consume (acked), median of 3",
                args.raw_n,
                f"{raw['total_s']:,.2f}",
                f"{raw_rate:,.0f}",
                f"quorum queue, prefetch {args.prefetch}",
            ],
        ],
    )
    print_table(
        "Ratio",
        ["comparison", "ratio"],
        [
            ["platform submissions/s ÷ raw pika messages/s", f"{platform_rate / raw_rate:.4f}"],
            ["platform events published/s ÷ raw pika messages/s", f"{published / wall / raw_rate:.4f}"],
        ],
    )
    print(
        "\nPer service (events published via outbox, events consumed via inbox): "
        + ", ".join(f"{s} {o}/{i}" for s, (o, i) in events.items())
        + f"\nReview was asked {sum(t.polls for t in timings) / n:.1f} times per submission before it showed it (404s)."
        + "\nThe client sends an admin token minted with the run's own key pair (no user accounts needed).",
        flush=True,
    )


def report_cpu(cpu: CpuMeter, *, n: int) -> None:
    """Print who used the machine's CPU while the submissions ran."""
    known = sum(cpu.used.values())
    rows = [
        [name, f"{seconds:,.1f}", f"{seconds / n * 1000:,.1f}", f"{100 * seconds / cpu.machine_seconds:.0f}"]
        for name, seconds in sorted(cpu.used.items(), key=lambda item: -item[1])
    ]
    other = max(cpu.machine_seconds - known, 0.0)
    rows.append(
        [
            "everything else on the machine",
            f"{other:,.1f}",
            f"{other / n * 1000:,.1f}",
            f"{100 * other / cpu.machine_seconds:.0f}",
        ]
    )
    print_table(
        f"CPU while the submissions ran: the machine ({os.cpu_count()} cores) was {100 * cpu.machine_busy:.0f}% busy",
        ["process", "CPU s", "CPU ms per submission", "% of used"],
        rows,
    )
    print(
        "'everything else' is work this run did not start (e.g. other test runs on the machine) plus processes that\n"
        "came and went; when it is large, the platform's figures above are lower than the platform can do."
    )


def safety_figures(smtp, database_url: str, logs: list[str]) -> dict[str, int]:
    """Whether replicas ran safely together: e-mails sent twice, events handled twice, redeliveries absorbed."""
    from sqlalchemy import create_engine, text

    sent = Counter((tuple(sorted(m.rcpt_tos)), str(m.message["Subject"])) for m in smtp.messages)
    engine = create_engine(database_url)
    twice = 0
    try:
        with engine.connect() as conn:
            for service in SERVICES:
                twice += conn.execute(
                    text(
                        f'SELECT count(*) FROM (SELECT consumer, event_id FROM "{service}".inbox '
                        "GROUP BY consumer, event_id HAVING count(*) > 1) AS d"
                    )
                ).scalar_one()
    finally:
        engine.dispose()
    absorbed = sum(
        len(re.findall(r"duplicate event \S+ ignored|processed concurrently elsewhere", log)) for log in logs
    )
    return {
        "mails_twice": sum(count - 1 for count in sent.values()),
        "events_twice": twice,
        "absorbed": absorbed,
    }


@dataclass
class RunResult:
    """What one platform run measured (open loop: the per-rate runs instead of timings, wall and cpu)."""

    label: str
    processes: int
    timings: list[Timing]
    wall: float
    cpu: CpuMeter | None
    events: dict[str, tuple[int, int]]
    stages: list[list[str]]
    mails: int
    safety: dict[str, int]
    rate_runs: list[RateRun] | None = None


def run_platform_once(
    args, *, label: str, workers: int, apis: int, raw: bool, rates: list[float] | None = None
) -> tuple[RunResult, dict[str, float] | None]:
    """One run on fresh queues, database, bucket and SMTP server; the raw pika yardstick afterwards if asked."""
    from tests.servers import moto_s3_server, smtp_server
    from tests.services import RABBITMQ_URL, delete_rabbitmq_objects, fresh_postgres_database, unique

    run = unique("bench.")
    exchange, prefix = f"{run}.events", f"{run}."
    from shared.bus.rabbitmq import queue_names

    queues = [name for s in SERVICES for name in queue_names(f"{prefix}{s}", RETRY_DELAYS_MS)] + [
        f"{prefix}raw"
    ]
    with ExitStack() as stack:
        stack.callback(delete_rabbitmq_objects, RABBITMQ_URL, queues=queues, exchanges=[exchange])
        database_url = stack.enter_context(fresh_postgres_database())
        s3 = stack.enter_context(moto_s3_server())
        stack.callback(s3.remove_bucket)
        smtp = stack.enter_context(smtp_server())
        work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
        keep_logs = []  # set when the platform failed, so its logs can be read
        stack.callback(lambda: keep_logs or shutil.rmtree(work, ignore_errors=True))
        auth_env, headers = staff_credentials()
        env = cluster_env(
            {
                **auth_env,
                "BUS_BACKEND": "rabbitmq",
                "RABBITMQ_URL": RABBITMQ_URL,
                "BUS_EXCHANGE": exchange,
                "BUS_QUEUE_PREFIX": prefix,
                "BUS_RETRY_DELAYS_MS": ",".join(map(str, RETRY_DELAYS_MS)),
                "BUS_PREFETCH": str(args.prefetch),
                "DATABASE_URL": database_url,
                "BLOB_BACKEND": "s3",
                "S3_ENDPOINT": s3.endpoint,
                "S3_ACCESS_KEY": s3.access_key,
                "S3_SECRET_KEY": s3.secret_key,
                "S3_BUCKET": s3.bucket,
                "S3_REGION": s3.region,
                "MAIL_BACKEND": "smtp",
                "SMTP_HOST": smtp.host,
                "SMTP_PORT": str(smtp.port),
                "OUTBOX_POLL_S": str(args.outbox_poll_s),
                "DATA_DIR": str(work / "var"),
            }
        )
        cluster = Cluster(env=env, log_dir=work, api_replicas=apis, worker_replicas=workers)
        stack.callback(cluster.stop)
        processes = len(SERVICES) * (apis + workers)
        print(
            f"[{label}] run {run}: starting {processes} processes ({apis} per API, {workers} per worker; logs in {work})",
            flush=True,
        )
        cluster.start(timeout=180)
        print(
            f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)",
            flush=True,
        )
        timings, wall, cpu, rate_runs = [], 0.0, None, None
        try:
            if rates:
                rate_runs = run_open_loop(
                    cluster,
                    smtp,
                    headers,
                    rates=rates,
                    seconds=args.seconds,
                    poll_s=args.poll_ms / 1000,
                    timeout=args.timeout,
                )
            else:
                print(f"[{label}] driving {args.n} submissions with {args.concurrency} threads", flush=True)
                timings, wall, cpu = run_platform(
                    cluster,
                    smtp,
                    headers,
                    n=args.n,
                    concurrency=args.concurrency,
                    poll_s=args.poll_ms / 1000,
                    timeout=args.timeout,
                )
        except Exception:
            cluster.stop()
            keep_logs.append(True)
            print(f"the platform failed; its process logs are kept in {work}", file=sys.stderr)
            raise
        time.sleep(1.0)  # let late duplicates (if any) reach the SMTP server before counting
        events, stages, mails = count_events(database_url), stage_lags(database_url), len(smtp.messages)
        cluster.stop()
        safety = safety_figures(smtp, database_url, [cluster.log(name) for name in cluster.processes])
        result = RunResult(label, processes, timings, wall, cpu, events, stages, mails, safety, rate_runs)
        raw_figures = None
        if raw:  # the raw yardstick gets the machine to itself
            print(f"raw pika: {RAW_TRIALS} × {args.raw_n} messages", flush=True)
            trials = sorted(
                (
                    run_raw_pika(
                        RABBITMQ_URL,
                        f"{prefix}raw",
                        n=args.raw_n,
                        prefetch=args.prefetch,
                        body_size=args.raw_body_bytes,
                    )
                    for _ in range(RAW_TRIALS)
                ),
                key=lambda t: t["total_s"],
            )
            raw_figures = trials[len(trials) // 2]
    return result, raw_figures


def report_replicas(results: list[RunResult], *, n: int) -> None:
    """The runs side by side: throughput, CPU per submission, and the safety figures."""
    ms = lambda values, p: f"{percentile(values, p) * 1000:,.0f}"  # noqa: E731

    def cpu_ms(result: RunResult, platform: bool) -> str:
        servers = {"PostgreSQL (all backends)", "RabbitMQ"}
        used = sum(
            seconds
            for name, seconds in result.cpu.used.items()
            if (name in servers) != platform and not name.startswith("this script")
        )
        return f"{used / n * 1000:,.1f}"

    rows = [
        ["processes (APIs + workers)", *(r.processes for r in results)],
        ["throughput, submissions/s", *(f"{n / r.wall:,.2f}" for r in results)],
        ["end to end p50 ms", *(ms([t.mailed - t.started for t in r.timings], 50) for r in results)],
        ["end to end p95 ms", *(ms([t.mailed - t.started for t in r.timings], 95) for r in results)],
        ["CPU ms per submission, platform processes", *(cpu_ms(r, True) for r in results)],
        ["CPU ms per submission, PostgreSQL + RabbitMQ", *(cpu_ms(r, False) for r in results)],
        ["machine busy %", *(f"{100 * r.cpu.machine_busy:.0f}" for r in results)],
        ["e-mails at the SMTP server", *(r.mails for r in results)],
        ["e-mails sent twice", *(r.safety["mails_twice"] for r in results)],
        ["events handled twice", *(r.safety["events_twice"] for r in results)],
        ["redeliveries absorbed by the inbox", *(r.safety["absorbed"] for r in results)],
    ]
    print_table(
        f"Scale-out: {n} submissions each, create → review queue → approve → e-mail "
        f"(the machine has {os.cpu_count()} cores, shared with whatever else runs on it)",
        ["measure", *(r.label for r in results)],
        rows,
    )
    print(
        "Replicas share one database and one broker: the outbox relay claims rows with SKIP LOCKED, the queue hands\n"
        "each message to one consumer, and the inbox (primary key consumer + event id) refuses a second commit.",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Start the platform, drive it, run the raw pika yardstick (or a second, scaled-out run), print, clean up."""
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--n", type=int, default=200, help="submissions (and raw pika messages unless --raw-n) (default 200)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="client threads driving the submissions (default 8)"
    )
    parser.add_argument(
        "--outbox-poll-s",
        type=float,
        default=0.5,
        help="OUTBOX_POLL_S of every service (default 0.5, the platform's default)",
    )
    parser.add_argument(
        "--poll-ms",
        type=int,
        default=50,
        help="how often a client thread asks review whether the submission arrived (default 50)",
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        default=16,
        help="BUS_PREFETCH for the platform and the raw consumer (default 16)",
    )
    parser.add_argument(
        "--raw-n", type=int, default=None, help="raw pika messages (default: --n, at least 5,000)"
    )
    parser.add_argument(
        "--rate", default=None, help="open loop: offered rates in submissions/s, e.g. 5,10,20"
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="open loop: how long each rate is offered (default 20)"
    )
    parser.add_argument(
        "--raw-body-bytes",
        type=int,
        default=800,
        help="raw pika message size, about one event envelope (default 800)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="give up waiting for the platform after this many seconds (default 300)",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="also run with N worker processes per service and two per API, and print both runs side by side",
    )
    args = parser.parse_args(argv)
    args.raw_n = args.raw_n or max(args.n, 5000)
    rates = [float(r) for r in args.rate.split(",") if r.strip()] if args.rate else None
    if args.replicas is not None and args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if args.replicas is not None and rates:
        parser.error("--replicas compares closed-loop runs: leave out --rate")

    from tests.services import POSTGRES_URL, RABBITMQ_URL, port_open

    for name, url, port in (("RabbitMQ", RABBITMQ_URL, 5672), ("PostgreSQL", POSTGRES_URL, 5432)):
        if not port_open(url, port):
            print(f"{name} is not reachable at {url}; start it (see README) and run again.", file=sys.stderr)
            return 2

    if args.replicas is not None:
        results = [
            run_platform_once(args, label="1 replica", workers=1, apis=1, raw=False)[0],
            run_platform_once(
                args, label=f"{args.replicas} workers, 2 APIs", workers=args.replicas, apis=2, raw=False
            )[0],
        ]
        report_replicas(results, n=args.n)
    else:
        result, raw = run_platform_once(args, label="platform", workers=1, apis=1, raw=True, rates=rates)
        if rates:
            report_open_loop(result.rate_runs, raw, args)
            if result.stages:
                print_table(
                    "Where the time goes, all rates (from the services' outbox and delivery timestamps)",
                    ["stage", "p50 ms", "p95 ms", "p99 ms", "max ms"],
                    result.stages,
                )
        else:
            report(result.timings, result.wall, raw, result.events, result.stages, result.mails, args)
            report_cpu(result.cpu, n=args.n)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
