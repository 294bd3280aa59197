"""Batches: a round claims the due deliveries in one transaction, sends them over one SMTP session and records
the outcomes together. What a refused message, the rate limit, a down server and a crash do to a batch, and
two loops on one PostgreSQL queue (SKIP LOCKED)."""

from __future__ import annotations

import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import func, select, update

from services.notification.delivery import DeliveryLoop, Outcome
from services.notification.models import Delivery
from shared.clock import FixedClock
from shared.mail.ratelimit import TokenBucket
from tests.helpers import wait_until
from tests.notification.conftest import run_loop
from tests.notification.test_delivery import observed, returned


def queue(world, count: int) -> str:
    """Queue `count` e-mails to one unit's liaison (consumed, not sent); returns the unit."""
    unit_id = world.add_unit()
    for n in range(count):
        world.publish_and_wait(returned(unit_id, n))
    return unit_id


def states(world) -> list[tuple[str, int]]:
    """(status, attempts) of every delivery but the campaign office's notices of failed ones, sorted."""
    return sorted((d.status, d.attempts) for d in world.deliveries() if d.event_type != "notification.failed")


def test_one_round_sends_the_batch_and_a_refused_mail_fails_alone(make_world, smtp):
    world = make_world(run_jobs=False)
    queue(world, 5)
    smtp.fail_next_with(550, "5.1.1 no such user", on="RCPT")  # the batch's first e-mail
    assert run_loop(world) == 4
    assert states(world) == [("failed", 1)] + [("sent", 1)] * 4
    wait_until(
        lambda: (
            len(observed(world, "notification.delivered")) == 4
            and len(observed(world, "notification.failed")) == 1
        ),
        what="an event for each outcome",
    )
    assert len(smtp.messages) == 4


def test_a_batch_is_only_as_large_as_the_tokens_of_one_round(make_world, smtp):
    world = make_world(run_jobs=False)
    queue(world, 5)
    now = [1000.0]
    loop = DeliveryLoop(world.ctx, bucket=TokenBucket(60, burst=3, monotonic=lambda: now[0]))
    assert loop.run() == 3
    assert states(world) == [("queued", 0)] * 2 + [("sent", 1)] * 3  # the other two were never claimed
    now[0] += 2
    assert loop.run() == 2
    assert len(smtp.wait_for(5)) == 5


def test_while_the_server_is_down_a_round_probes_with_one_mail_and_gives_the_rest_back(make_world, smtp):
    world = make_world(run_jobs=False)
    queue(world, 4)
    smtp.stop()
    loop = DeliveryLoop.from_settings(world.ctx)
    assert loop.run() == 0
    assert states(world) == [("queued", 0)] * 3 + [
        ("queued", 1)
    ]  # claimed as a batch; the untried rows went back
    assert loop.run() == 0
    assert (
        states(world) == [("queued", 0)] * 2 + [("queued", 1)] * 2
    )  # still down: one row claimed, not the batch
    smtp.start()
    wait_until(
        lambda: loop.run() is not None and len(world.deliveries(status="sent")) == 4,
        what="the loop to send all four once the server is back",
    )
    assert len(smtp.messages) == 4


def test_a_crash_between_claim_and_record_is_sent_again_after_the_lease_with_the_same_message_id(
    make_world, smtp, tmp_path
):
    data_dir = tmp_path / "shared-data"
    expired_before = REGISTRY.get_sample_value("cep_mail_leases_expired_total") or 0.0
    crashed = make_world(data_dir=data_dir, run_jobs=False, notify_lease_s=1.0)
    queue(crashed, 3)
    claimed = DeliveryLoop.from_settings(crashed.ctx).claim(2)  # the worker dies before it records anything
    crashed.bus.stop()

    restarted = make_world(data_dir=data_dir, notify_lease_s=1.0)
    received = smtp.wait_for(
        3, timeout=30
    )  # the unclaimed one at once, the two claimed once their lease expired
    wait_until(lambda: len(restarted.deliveries(status="sent")) == 3, what="all three recorded as sent")
    assert len(received) == 3 and sorted(states(restarted)) == [("sent", 1), ("sent", 2), ("sent", 2)]
    resent = {d.id: d for d in restarted.deliveries() if d.resends}
    assert sorted(resent) == sorted(c.id for c in claimed) and all(d.resends == 1 for d in resent.values())
    by_subject = {m.message["Subject"]: m.message["Message-ID"] for m in received}
    for delivery in restarted.deliveries():
        assert by_subject[delivery.subject] == delivery.message_id  # the Message-ID was fixed at queueing
    log = {d["id"]: d for d in restarted.client.get("/deliveries").json()}
    assert {log[c.id]["resends"] for c in claimed} == {1}
    assert (
        REGISTRY.get_sample_value("cep_mail_leases_expired_total") == expired_before + 2
    )  # the alertable count


def test_a_live_lease_is_not_taken_over(make_world, smtp):
    world = make_world(run_jobs=False, notify_lease_s=600.0)
    queue(world, 2)
    first, second = DeliveryLoop.from_settings(world.ctx), DeliveryLoop.from_settings(world.ctx)
    assert len(first.claim(1)) == 1
    taken = second.claim(10)
    assert len(taken) == 1 and sorted(states(world)) == [("sending", 1), ("sending", 1)]
    assert {d.lease_owner for d in world.deliveries()} == {first.owner, second.owner}


def test_each_outcome_is_recorded_on_its_own(make_world, smtp):
    world = make_world(run_jobs=False)
    queue(world, 3)
    loop = DeliveryLoop.from_settings(world.ctx)
    batch = loop.claim(3)
    unrecordable = replace(batch[1], created_at=None)  # recording its deferral raises half-way through
    loop.record(
        [
            Outcome(batch[0], "sent"),
            Outcome(unrecordable, "deferred", "451 try later"),
            Outcome(batch[2], "sent"),
        ]
    )
    by_id = {d.id: d.status for d in world.deliveries()}
    assert by_id[batch[0].id] == "sent" and by_id[batch[2].id] == "sent"
    assert by_id[batch[1].id] == "sending"


def test_a_claim_on_postgresql_skips_rows_another_worker_is_claiming(make_world, smtp, postgres_url):
    first = make_world(run_jobs=False, database_url=postgres_url)
    second = make_world(run_jobs=False, database_url=postgres_url)
    queue(first, 4)
    # a claim under way holds two rows (its transaction ends first, so a claim that waits is freed on failure)
    with ThreadPoolExecutor(1) as pool, first.ctx.db.transaction() as uow:
        held = uow.scalars(select(Delivery.id).order_by(Delivery.created_at).limit(2).with_for_update()).all()
        claimed = pool.submit(DeliveryLoop.from_settings(second.ctx).claim, 10).result(
            timeout=10
        )  # no waiting
    assert len(claimed) == 2 and not {c.id for c in claimed} & set(held)
    assert states(first) == [("queued", 0)] * 2 + [("sending", 1)] * 2


def test_two_loops_draining_one_postgresql_queue_send_every_mail_once(make_world, smtp, postgres_url):
    first = make_world(run_jobs=False, database_url=postgres_url)
    second = make_world(run_jobs=False, database_url=postgres_url)
    queue(first, 24)

    def drain(world) -> int:
        """Run small batches until nothing is queued; how many this loop sent."""
        loop, sent = DeliveryLoop(world.ctx, batch=3), 0
        for _ in range(200):
            sent += loop.run()
            with world.ctx.db.session() as uow:
                if not uow.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.status == "queued")
                ):
                    return sent
        raise AssertionError("the queue did not drain")

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(drain, [first, second]))
    assert sum(counts) == 24
    subjects = [m.message["Subject"] for m in smtp.wait_for(24)]
    assert len(subjects) == 24 and len(set(subjects)) == 24
    assert states(first) == [("sent", 1)] * 24


class _Watched:
    """The world's real mailer, with `before_send(message)` called before each message of a session."""

    def __init__(self, mailer, before_send) -> None:
        self._mailer, self._before_send = mailer, before_send

    def __getattr__(self, name):
        return getattr(self._mailer, name)

    @contextmanager
    def session(self):
        with self._mailer.session() as real:
            watched = self

            class _Session:
                def send(self, message) -> None:
                    watched._before_send(message)
                    real.send(message)

            yield _Session()


def test_each_mail_is_recorded_sent_before_the_next_is_sent(make_world, smtp):
    """A worker killed mid-batch then repeats at most the message in flight, not the batch sent before it."""
    world = make_world(run_jobs=False)
    queue(world, 3)
    seen: list[list[str]] = []
    world.ctx.mailer = _Watched(
        world.ctx.mailer, lambda message: seen.append(sorted(d.status for d in world.deliveries()))
    )
    assert run_loop(world) == 3
    assert seen == [
        ["sending", "sending", "sending"],
        ["sending", "sending", "sent"],
        ["sending", "sent", "sent"],
    ]


def test_a_batch_whose_lease_is_nearly_over_gives_its_untried_mails_back(make_world, smtp):
    """A slow server eats the lease: the loop stops before a send could outlast it, so no other worker, taking
    the rows over when the lease ends, sends one this loop is still sending."""
    clock = FixedClock(datetime(2020, 3, 20, 2, 0, tzinfo=UTC))
    world = make_world(run_jobs=False, clock=clock, notify_lease_s=60.0, smtp_timeout_s=5.0)
    queue(world, 4)
    world.ctx.mailer = _Watched(world.ctx.mailer, lambda message: clock.advance(timedelta(seconds=20)))
    assert run_loop(world) == 2  # sends start at 0 s and 20 s; one started at 40 s might take 25 s: past 60 s
    assert states(world) == [("queued", 0), ("queued", 0), ("sent", 1), ("sent", 1)]
    assert len(smtp.wait_for(2)) == 2


def test_on_sqlite_a_lease_of_a_process_of_this_host_that_no_longer_runs_is_taken_back_at_the_first_claim(
    make_world, smtp
):
    world = make_world(run_jobs=False, notify_lease_s=600.0)
    queue(world, 3)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        host = socket.gethostname()
        owners = [f"{host}:{dead.pid}:killed", f"{host}:{alive.pid}:running", f"elsewhere:{dead.pid}:other"]
        until = world.ctx.clock.now() + timedelta(seconds=600)
        with (
            world.ctx.db.transaction() as uow
        ):  # three leases that have not run out, as a kill -9 leaves them
            for delivery, owner in zip(world.deliveries(), owners, strict=True):
                uow.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery.id)
                    .values(status="sending", attempts=1, lease_owner=owner, lease_expires_at=until)
                )
        assert run_loop(world) == 1
        after = {d.lease_owner or "sent": d for d in world.deliveries()}
        assert after["sent"].status == "sent" and after["sent"].resends == 1  # the dead process's mail
        assert {after[owners[1]].status, after[owners[2]].status} == {"sending"}  # a live one, another host's
        assert len(smtp.messages) == 1
    finally:
        alive.kill()
        alive.wait()
