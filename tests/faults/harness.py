"""The fault harness: the distributed platform as separate processes on a dedicated RabbitMQ node, PostgreSQL, S3
(moto) and SMTP (aiosmtpd) behind proxies that can refuse or black-hole, a load of submissions (create, upload a
photo, approve) driven like a patient client, faults injected mid-flow, and an audit of what was lost.

Used by tests/faults (small loads, assertions) and `python -m bench.faults` (larger loads, a table).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from deploy.processes import SERVICES, Cluster, cluster_env
from tests.faults.proxy import FaultProxy
from tests.faults.rabbit_node import RabbitNode

APPROVED = "审核通过"
RETRY_DELAYS_MS = (200, 1000)
LEASE_S = 8.0
COMPLETE_LEASE_S = 15  # an upload completion's lease (EVIDENCE_COMPLETE_LEASE_S), short for the kill test
SMTP_TIMEOUT_S = 4.0
ORPHAN_GRACE_S = 3.0
CLIENT_PATIENCE_S = 120.0
ROLE_ORDER = [f"{service}-{role}" for service in SERVICES for role in ("api", "worker")]


def photo(n: int) -> bytes:
    """A small JPEG, different for every n (so no two uploads are exact duplicates)."""
    import io

    from PIL import Image

    image = Image.new("RGB", (48, 48), ((n * 37) % 256, (n * 91) % 256, (n * 13) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


class FaultCluster(Cluster):
    """deploy.processes.Cluster (a health port per worker) with logs kept across restarts, and kill -9."""

    def _spawn(self, name: str, args: list[str], extra_env: Mapping[str, str] | None = None) -> None:
        env = self._env_of.setdefault(name, {**self.env, **(extra_env or {})})
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{args[0]}", *args[1:]],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill9(self, name: str) -> None:
        """SIGKILL a process (and its group): no clean-up of any kind."""
        proc = self.processes[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def respawn(self, name: str) -> None:
        """Start a killed process again with its arguments."""
        args = self.processes[name].args[2:]
        self._spawn(name, [args[0].removeprefix("services."), *args[1:]])


@dataclass
class Flow:
    """One submission through the platform, as the client saw it."""

    title: str
    submission_id: str = ""
    evidence_ids: list[str] = field(default_factory=list)
    approved: bool = False
    false_404: int = 0
    retries: int = 0
    error: str | None = None


@dataclass
class Audit:
    """What the end-of-run audit found (all zero means nothing was lost, stuck or left behind)."""

    approved: int = 0
    lost: int = 0  # approval e-mails that never arrived
    duplicated: int = 0  # extra copies of a mail (same Message-ID)
    duplicated_other_id: int = 0  # the same notice under two Message-IDs (must never happen)
    expired_leases: int = 0
    unpublished: int = 0  # outbox rows never published
    unconsumed: int = 0  # events published but missing from a subscribed consumer's inbox
    queued: int = 0  # messages left on main queues
    orphaned: int = 0  # objects without a row
    multipart: int = 0  # unfinished multipart uploads
    inconsistent: int = 0  # intake not approved, or evidence not locked, for an approved submission
    parked: int = 0
    resends: int = 0  # deliveries sent again after their lease expired (a worker died holding them)
    false_404: int = 0
    failed_flows: int = 0
    missing: list[str] = field(default_factory=list)  # consumer, type and id of each unconsumed event

    @property
    def stuck(self) -> int:
        """Everything that did not finish: leases, outbox, inboxes, queues."""
        return self.expired_leases + self.unpublished + self.unconsumed + self.queued

    @property
    def clean(self) -> bool:
        """Nothing lost, stuck, orphaned or inconsistent; duplicates only under one Message-ID."""
        return not (
            self.lost
            or self.stuck
            or self.orphaned
            or self.multipart
            or self.inconsistent
            or self.duplicated_other_id
            or self.false_404
            or self.failed_flows
        )


class FaultWorld:
    """Everything a fault scenario needs, started once and shared by the scenarios of a run."""

    def __init__(self, workdir: Path, *, postgres_url: str) -> None:
        self.workdir = workdir
        self._postgres_url = postgres_url
        self._stack = ExitStack()
        self.prefix = f"fault{uuid.uuid4().hex[:8]}."
        self.exchange = f"{self.prefix}events"

    # -- start and stop ----------------------------------------------------------------------------

    def __enter__(self) -> FaultWorld:
        from shared.auth import ADMIN, generate_key_pair, issuer_from_settings
        from shared.settings import Settings
        from tests.servers import moto_s3_server, smtp_server

        stack = self._stack
        try:
            self.s3 = stack.enter_context(moto_s3_server())
            self.smtp = stack.enter_context(smtp_server())
            self.s3_proxy, self.smtp_proxy = (
                FaultProxy(self.s3.endpoint),
                FaultProxy(f"{self.smtp.host}:{self.smtp.port}"),
            )
            self.s3_proxy.set("pass")
            self.smtp_proxy.set("pass")
            stack.callback(self.s3_proxy.close)
            stack.callback(self.smtp_proxy.close)
            stack.callback(self.s3.remove_bucket)
            self.rabbit = RabbitNode()
            stack.callback(self.rabbit.remove)
            self.rabbit.start()
            private_key, public_key = generate_key_pair()
            issuer = issuer_from_settings(Settings(auth_private_key=private_key, auth_public_key=public_key))
            self.headers = {
                "Authorization": f"Bearer {issuer.issue(subject='fault-admin', name='王芳', role=ADMIN, ttl_s=6 * 3600)}"
            }
            self.env = cluster_env(
                {
                    "AUTH_PRIVATE_KEY": private_key,
                    "AUTH_PUBLIC_KEY": public_key,
                    "BUS_BACKEND": "rabbitmq",
                    "RABBITMQ_URL": self.rabbit.url,
                    "BUS_EXCHANGE": self.exchange,
                    "BUS_QUEUE_PREFIX": self.prefix,
                    "BUS_RETRY_DELAYS_MS": ",".join(map(str, RETRY_DELAYS_MS)),
                    "DATABASE_URL": self._postgres_url,
                    "BLOB_BACKEND": "s3",
                    "S3_ENDPOINT": self.s3_proxy.endpoint,
                    "S3_ACCESS_KEY": self.s3.access_key,
                    "S3_SECRET_KEY": self.s3.secret_key,
                    "S3_BUCKET": self.s3.bucket,
                    "S3_CONNECT_TIMEOUT_S": "1",
                    "S3_READ_TIMEOUT_S": "3",
                    "S3_RETRIES": "1",
                    "MAIL_BACKEND": "smtp",
                    "SMTP_HOST": "127.0.0.1",
                    "SMTP_PORT": str(self.smtp_proxy.port),
                    "SMTP_TIMEOUT_S": str(SMTP_TIMEOUT_S),
                    "NOTIFY_LEASE_S": str(LEASE_S),
                    "EVIDENCE_COMPLETE_LEASE_S": str(COMPLETE_LEASE_S),
                    "NOTIFY_POLL_S": "0.5",
                    "NOTIFY_BACKOFF_BASE_S": "0.5",
                    "NOTIFY_BACKOFF_MAX_S": "3",
                    "EVIDENCE_ORPHAN_GRACE_S": str(ORPHAN_GRACE_S),
                    "EVIDENCE_SWEEP_INTERVAL_S": "2",
                    "EVIDENCE_INTEGRITY_POLL_S": "0.5",
                    "HEALTH_PROBE_TIMEOUT_S": "2",
                    "OUTBOX_POLL_S": "0.2",
                    "DATA_DIR": str(self.workdir / "var"),
                }
            )
            self.cluster = FaultCluster(env=self.env, log_dir=self.workdir)
            stack.callback(self.cluster.stop)
            self.cluster.start(timeout=120)
            self.client = httpx.Client(timeout=30, headers=self.headers)
            stack.callback(self.client.close)
            self.db = create_engine(
                self._postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
                if self._postgres_url.startswith("postgresql://")
                else self._postgres_url
            )
            stack.callback(self.db.dispose)
            for name, port in self.cluster.health_ports.items():
                self.wait(
                    lambda port=port: self._get(f"http://127.0.0.1:{port}/readyz") == 200, 60, f"{name} ready"
                )
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @property
    def routes(self) -> dict[str, str]:
        """Base URL of each API."""
        return self.cluster.routes

    # -- the client --------------------------------------------------------------------------------

    @staticmethod
    def _get(url: str) -> int | None:
        try:
            return httpx.get(url, timeout=5).status_code
        except httpx.HTTPError:
            return None

    @staticmethod
    def wait(predicate: Callable[[], object], timeout: float, what: str) -> float:
        """Poll until predicate() is truthy; returns the seconds it took; raises TimeoutError at the deadline."""
        started = time.monotonic()
        while not predicate():
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.2)
        return time.monotonic() - started

    def call(self, flow: Flow, method: str, url: str, *, ok: tuple[int, ...], **kwargs) -> httpx.Response:
        """A patient client: retries refused connections, timeouts and 5xx (honouring Retry-After) until CLIENT_PATIENCE_S."""
        deadline, delay = time.monotonic() + CLIENT_PATIENCE_S, 0.3
        while True:
            try:
                response = self.client.request(method, url, **kwargs)
                if response.status_code in ok:
                    return response
                if response.status_code == 404 and "/evidence" in url and flow.submission_id in url:
                    flow.false_404 += 1
                elif response.status_code < 500:
                    raise AssertionError(f"{method} {url} -> {response.status_code}: {response.text[:300]}")
                wait = float(response.headers.get("Retry-After", delay))
            except httpx.TransportError:
                wait = delay
            flow.retries += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} {url} did not succeed within {CLIENT_PATIENCE_S:.0f}s")
            time.sleep(wait)
            delay = min(delay * 2, 3.0)

    def new_unit(self) -> dict:
        """A unit with a liaison who receives the approval mails."""
        code = f"F{uuid.uuid4().hex[:8]}"
        body = {
            "code": code,
            "name": "相山区信访局",
            "level": "county",
            "liaison": {"name": "李明", "email": f"liaison-{code.lower()}@example.org"},
        }
        return self.call(Flow("unit"), "POST", f"{self.routes['intake']}/units", json=body, ok=(201,)).json()

    def new_submission(self, flow: Flow, unit: dict, title: str) -> tuple[str, dict[str, str]]:
        """Create a submission of measure M1 for the unit; its id and the upload grant header (if intake gave one)."""
        created = self.call(
            flow,
            "POST",
            f"{self.routes['intake']}/submissions",
            ok=(201,),
            json={"unit_id": unit["id"], "measure_code": "M1", "title": title, "description": "故障演练"},
        ).json()
        grant = {"X-Upload-Grant": created["upload_grant"]} if created.get("upload_grant") else {}
        return created["id"], grant

    def run_flow(self, unit: dict, flow: Flow, n: int) -> Flow:
        """Create, upload one photo (with the upload grant), wait for the review queue, approve."""
        routes = self.routes
        try:
            flow.submission_id, grant = self.new_submission(flow, unit, flow.title)
            stored = self.call(
                flow,
                "POST",
                f"{routes['evidence']}/submissions/{flow.submission_id}/evidence",
                ok=(201,),
                params={"filename": f"现场{n}.jpg"},
                content=photo(n),
                headers={"Content-Type": "image/jpeg", **grant},
            ).json()
            flow.evidence_ids.append(stored["id"])
            item = f"{routes['review']}/submissions/{flow.submission_id}"

            def queued() -> bool:
                try:
                    response = self.client.get(item)
                except httpx.TransportError:
                    flow.retries += 1
                    return False
                return response.status_code == 200 and bool(response.json()["evidence"])

            self.wait(queued, CLIENT_PATIENCE_S, f"review to show {flow.title}")
            decided = self.call(flow, "POST", f"{item}/approve", ok=(200, 409), json={"score": 90})
            flow.approved = (
                decided.status_code == 200 or self.client.get(item).json().get("state") == "approved"
            )
        except Exception as exc:
            flow.error = f"{type(exc).__name__}: {exc}"[:300]
        return flow

    def run_load(
        self,
        count: int,
        *,
        label: str,
        fault: Callable[[], None] | None = None,
        concurrency: int = 3,
        fault_after: int | None = None,
    ) -> list[Flow]:
        """At least `count` flows for a new unit, `concurrency` at a time; `fault` runs on its own thread once
        `fault_after` flows have started (default a third), and new flows keep starting until it has finished."""
        unit = self.new_unit()
        flows: list[Flow] = []
        fault_after = fault_after if fault_after is not None else max(1, count // 3)
        fault_done = threading.Event()
        fault_thread: threading.Thread | None = None

        def inject() -> None:
            try:
                fault()
            finally:
                fault_done.set()

        with ThreadPoolExecutor(concurrency) as pool:
            futures = []
            while len(flows) < count or (fault_thread is not None and not fault_done.is_set()):
                if len(flows) >= 20 * count:
                    break  # a fault that never ends must not make the load endless
                while sum(not future.done() for future in futures) >= concurrency:
                    time.sleep(0.05)
                flow = Flow(f"{label}-{len(flows)}-{uuid.uuid4().hex[:6]}")
                futures.append(pool.submit(self.run_flow, unit, flow, len(flows)))
                flows.append(flow)
                if fault is not None and fault_thread is None and len(flows) >= fault_after:
                    fault_thread = threading.Thread(target=inject, name="fault", daemon=True)
                    fault_thread.start()
            for future in futures:
                future.result()
        if fault_thread is not None:
            fault_thread.join()
        return flows

    # -- faults ------------------------------------------------------------------------------------

    def kill_and_restart(self, name: str, *, down_s: float = 1.0) -> None:
        """kill -9 one process, leave it dead for a moment, start it again."""
        self.cluster.kill9(name)
        time.sleep(down_s)
        self.cluster.respawn(name)

    def sending_rows(self) -> int:
        """Deliveries currently claimed by a worker."""
        with self.db.connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM notification.deliveries WHERE status = 'sending'")
            ).scalar_one()

    # -- the audit ---------------------------------------------------------------------------------

    def audit(self, flows: list[Flow], *, settle_s: float = 150.0) -> tuple[Audit, float]:
        """Wait (bounded) until the platform has settled, then count what is missing; returns (audit, seconds waited)."""
        approved = [flow for flow in flows if flow.approved]
        started = time.monotonic()
        deadline = started + settle_s
        result = self._count(flows, approved)
        while not result.clean and time.monotonic() < deadline:
            time.sleep(1.0)
            result = self._count(flows, approved)
        return result, time.monotonic() - started

    def _count(self, flows: list[Flow], approved: list[Flow]) -> Audit:
        result = Audit(
            approved=len(approved),
            false_404=sum(f.false_404 for f in flows),
            failed_flows=sum(1 for f in flows if f.error or not f.approved),
        )
        mails = [m for m in list(self.smtp.messages) if APPROVED in str(m.message["Subject"])]
        by_title: dict[str, set[str]] = {}
        copies = Counter(str(m.message["Message-ID"]) for m in mails)
        for mail in mails:
            subject = str(mail.message["Subject"])
            for flow in approved:
                if flow.title in subject:
                    by_title.setdefault(flow.title, set()).add(str(mail.message["Message-ID"]))
        result.lost = sum(1 for flow in approved if flow.title not in by_title)
        result.duplicated = sum(n - 1 for n in copies.values() if n > 1)
        result.duplicated_other_id = sum(len(ids) - 1 for ids in by_title.values() if len(ids) > 1)
        with self.db.connect() as conn:
            result.expired_leases = conn.execute(
                text(
                    "SELECT count(*) FROM notification.deliveries WHERE status = 'sending' AND lease_expires_at < now()"
                )
            ).scalar_one()
            result.resends = conn.execute(
                text("SELECT coalesce(sum(resends), 0) FROM notification.deliveries")
            ).scalar_one()
            result.unpublished = sum(
                conn.execute(text(f"SELECT count(*) FROM {s}.outbox WHERE published_at IS NULL")).scalar_one()
                for s in SERVICES
            )
            result.missing = self._unconsumed(conn)
            result.unconsumed = len(result.missing)
            result.inconsistent = self._inconsistent(conn, approved)
        result.queued, result.parked = self._queue_depths()
        orphans = self.integrity_check()
        result.orphaned = sum(1 for p in orphans["problems"] if p["problem"] == "orphan")
        result.multipart = len(self.s3.pending_uploads()) if self._bucket_exists() else 0
        return result

    def integrity_check(self) -> dict[str, Any]:
        """Request a full integrity check and wait (bounded) until the evidence worker has run it."""
        evidence = self.routes["evidence"]
        queued = self.call(Flow("audit"), "POST", f"{evidence}/integrity-checks", ok=(201, 202)).json()
        check, deadline = queued, time.monotonic() + 120
        while check.get("state") not in (None, "done", "failed") and time.monotonic() < deadline:
            time.sleep(0.5)
            check = self.call(
                Flow("audit"), "GET", f"{evidence}/integrity-checks/{queued['id']}", ok=(200,)
            ).json()
        if check.get("state") not in (None, "done"):
            raise TimeoutError(
                f"integrity check {queued['id']} ended {check.get('state')}: {check.get('error')}"
            )
        return check

    def _bucket_exists(self) -> bool:
        return self.s3.client().bucket_exists(bucket_name=self.s3.bucket)

    def _unconsumed(self, conn) -> list[str]:
        """Events some service published that a subscribed consumer has not processed, as "consumer type id"."""
        from services.evidence_storage.subscriptions import SUBSCRIPTIONS as EVIDENCE
        from services.intake.subscriptions import SUBSCRIPTIONS as INTAKE
        from services.notification.subscriptions import SUBSCRIPTIONS as NOTIFICATION
        from services.review.subscriptions import SUBSCRIPTIONS as REVIEW
        from shared.runtime import wanted_subscriptions
        from shared.settings import Settings

        subscriptions = {
            name: wanted_subscriptions(subs, Settings())
            for name, subs in {  # what each consumer binds
                "intake": INTAKE,
                "evidence_storage": EVIDENCE,
                "review": REVIEW,
                "notification": NOTIFICATION,
            }.items()
        }
        published = [
            row for s in SERVICES for row in conn.execute(text(f"SELECT event_id, type FROM {s}.outbox"))
        ]
        missing: list[str] = []
        for consumer, types in subscriptions.items():
            seen = set(conn.execute(text(f"SELECT event_id FROM {consumer}.inbox")).scalars())
            missing += [
                f"{consumer} {event_type} {event_id}"
                for event_id, event_type in published
                if event_type in types and event_id not in seen
            ]
        return missing

    def _inconsistent(self, conn, approved: list[Flow]) -> int:
        """Approved submissions that intake does not show approved, or whose evidence is not locked."""
        if not approved:
            return 0
        ids = [flow.submission_id for flow in approved]
        states = dict(
            conn.execute(
                text("SELECT id, state FROM intake.submissions WHERE id = ANY(:ids)"), {"ids": ids}
            ).all()
        )
        locked = dict(
            conn.execute(
                text(
                    "SELECT submission_id, bool_and(locked) FROM evidence_storage.evidence "
                    "WHERE submission_id = ANY(:ids) GROUP BY submission_id"
                ),
                {"ids": ids},
            ).all()
        )
        return sum(1 for i in ids if states.get(i) != "approved" or not locked.get(i))

    def _queue_depths(self) -> tuple[int, int]:
        """Messages ready on the main queues, and in the parking lots."""
        import pika

        ready = parked = 0
        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.rabbit.url))
        except Exception:
            return 1, 0
        try:
            channel = connection.channel()
            for service in SERVICES:
                ready += channel.queue_declare(f"{self.prefix}{service}", passive=True).method.message_count
                parked += channel.queue_declare(
                    f"{self.prefix}{service}.parking", passive=True
                ).method.message_count
        finally:
            connection.close()
        return ready, parked

    def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Publish bytes straight to the platform's exchange (a poison message)."""
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.rabbit.url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                self.exchange,
                routing_key,
                body,
                pika.BasicProperties(delivery_mode=2, message_id=hashlib.md5(body).hexdigest()),
            )
        finally:
            connection.close()

    def worker_ready(self, name: str) -> int | None:
        """The status of a worker's /readyz on its health port (None when it does not answer)."""
        return self._get(f"http://127.0.0.1:{self.cluster.health_ports[name]}/readyz")

    def api_ready(self, service: str) -> int | None:
        """The status of an API's /readyz."""
        return self._get(f"{self.routes[{'evidence_storage': 'evidence'}.get(service, service)]}/readyz")


@dataclass
class Scenario:
    """A named fault, injected on its own thread while the load runs; heal() runs after it (if any)."""

    name: str
    fault: str
    inject: Callable[[FaultWorld], None]
    concurrency: int = 3
    before: Callable[[FaultWorld], None] | None = None


@dataclass
class Outcome:
    """One scenario's row: load, fault, lost, duplicated, stuck, orphaned, recovery seconds."""

    scenario: str
    fault: str
    load: int
    audit: Audit
    recovery_s: float
    flows: list[Flow]


def run_scenario(world: FaultWorld, scenario: Scenario, load: int) -> Outcome:
    """Run the load with the fault injected mid-flow, then audit; recovery is the time from the load's end to a clean audit."""
    if scenario.before is not None:
        scenario.before(world)
    flows = world.run_load(
        load, label=scenario.name, fault=lambda: scenario.inject(world), concurrency=scenario.concurrency
    )
    audit, waited = world.audit(flows)
    return Outcome(scenario.name, scenario.fault, len(flows), audit, waited, flows)


# -- the scenarios -------------------------------------------------------------------------------------


def _kill_each_process(world: FaultWorld) -> None:
    for name in ROLE_ORDER:
        world.kill_and_restart(name, down_s=0.5)
        time.sleep(2.5)


def _kill_notification_worker_after_claim(world: FaultWorld) -> None:
    world.smtp_proxy.set("blackhole")  # the worker's batch waits on a silent server: claimed, not sent
    try:
        world.wait(lambda: world.sending_rows() > 0, 90, "the notification worker to claim a batch")
        world.cluster.kill9("notification-worker")
    finally:
        world.smtp_proxy.set("pass")
    world.cluster.respawn("notification-worker")


def _broker_stop_start(world: FaultWorld) -> None:
    world.rabbit.stop()
    world.wait(lambda: world.worker_ready("notification-worker") == 503, 30, "a worker's /readyz to say down")
    world.wait(lambda: world.api_ready("intake") == 503, 30, "an API's /readyz to say down")
    time.sleep(3)
    world.rabbit.start()


def _smtp_outages(world: FaultWorld) -> None:
    world.smtp_proxy.set("refuse")
    time.sleep(6)
    world.smtp_proxy.set("blackhole")
    time.sleep(8)
    world.smtp_proxy.set("pass")


def _s3_outages(world: FaultWorld) -> None:
    world.s3_proxy.set("refuse")
    time.sleep(4)
    world.s3_proxy.set("blackhole")
    time.sleep(8)
    world.s3_proxy.set("pass")


POISON_KEYS = ("submission.submitted", "submission.approved", "liaison.designated", "evidence.stored")


def _poison(world: FaultWorld) -> None:
    from shared.events import Envelope

    for key in POISON_KEYS:
        world.publish_raw(key, b"\xff not an envelope")  # unparseable
        wrong_type = Envelope(type=f"{key}.exploded", producer="fault-test", payload={})
        world.publish_raw(key, wrong_type.to_json())  # routed by a bound key, of a type no consumer knows
        malformed = Envelope(type=key, producer="fault-test", payload={"submission_id": 42})
        world.publish_raw(key, malformed.to_json())  # a known type whose payload breaks its contract


def poison_count() -> int:
    """How many poison messages _poison parks: three kinds for each consumer bound to each key."""
    from services.evidence_storage.subscriptions import SUBSCRIPTIONS as EVIDENCE
    from services.intake.subscriptions import SUBSCRIPTIONS as INTAKE
    from services.notification.subscriptions import SUBSCRIPTIONS as NOTIFICATION
    from services.review.subscriptions import SUBSCRIPTIONS as REVIEW
    from shared.runtime import wanted_subscriptions
    from shared.settings import Settings

    bound = [wanted_subscriptions(subs, Settings()) for subs in (INTAKE, EVIDENCE, REVIEW, NOTIFICATION)]
    return sum(3 for key in POISON_KEYS for subs in bound if key in subs)


SCENARIOS = {
    "kill-each": Scenario(
        "kill-each", "kill -9 of every API and worker, one after another", _kill_each_process
    ),
    "kill-mailer": Scenario(
        "kill-mailer",
        "kill -9 of the notification worker right after it claimed a batch",
        _kill_notification_worker_after_claim,
    ),
    "broker": Scenario("broker", "dedicated RabbitMQ node stopped and started", _broker_stop_start),
    "smtp": Scenario("smtp", "SMTP refused 6 s, then black hole 8 s", _smtp_outages),
    "s3": Scenario("s3", "S3 refused 4 s, then black hole 8 s", _s3_outages),
    "poison": Scenario("poison", "poison messages of each kind on the exchange", _poison),
}
