"""Delivery: retries with backoff while SMTP is down and nothing lost, permanent failures stop at once,
at most one e-mail per dedupe key across redeliveries and restarts, and the send-rate limit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from services.notification.compose import DELIVER_MAIL
from services.notification.delivery import DeliveryLoop, backoff_s
from services.notification.models import Delivery
from shared.contracts.intake import UnitRegistered
from shared.contracts.review import SubmissionReturned
from shared.mail.ratelimit import TokenBucket
from tests.helpers import wait_until
from tests.notification.conftest import run_loop


def returned(unit_id: str, n: int, *, submission_id: str | None = None) -> SubmissionReturned:
    """A return of a submission of the unit, numbered in its title."""
    return SubmissionReturned(
        submission_id=submission_id or str(uuid.uuid4()),
        unit_id=unit_id,
        measure_code="M5",
        title=f"宣传横幅{n}",
        version=1,
        reviewer="王芳",
        comment="请补充照片",
    )


def observed(world, event_type: str) -> list:
    """The notification.* events the world has published so far, of one type."""
    return [event for event in world.observed if event.type == event_type]


def test_smtp_down_for_a_while_then_up_every_mail_delivered_once(world, smtp):
    unit_id = world.add_unit()
    smtp.stop()
    for n in range(5):
        world.publish(returned(unit_id, n))
    # every e-mail is tried and deferred more than once while the server is down
    wait_until(
        lambda: (
            len(world.deliveries()) == 5
            and all(d.attempts >= 2 and d.status == "queued" for d in world.deliveries())
        ),
        timeout=30,
        what="every delivery to be retried while SMTP is down",
    )
    assert all("unreachable" in d.last_error for d in world.deliveries())
    smtp.start()
    wait_until(
        lambda: len(world.deliveries(status="sent")) == 5,
        timeout=30,
        what="all five to be sent once SMTP is back",
    )
    subjects = sorted(m.message["Subject"] for m in smtp.messages)
    assert subjects == sorted(f"【退回修改】相山区信访局：宣传横幅{n}" for n in range(5))
    wait_until(
        lambda: len(observed(world, "notification.delivered")) == 5, what="notification.delivered for each"
    )
    assert len(smtp.messages) == 5 and observed(world, "notification.failed") == []


def test_a_permanent_failure_is_failed_at_once_and_the_queue_flows_on(world, smtp):
    unit_id = world.add_unit()
    smtp.fail_next_with(550, "5.1.1 no such user", on="RCPT")
    world.publish(returned(unit_id, 1))
    [failed] = wait_until(lambda: world.deliveries(status="failed"), what="the delivery to fail")
    assert failed.attempts == 1 and "550" in failed.last_error
    [event] = wait_until(lambda: observed(world, "notification.failed"), what="notification.failed")
    assert event.payload["delivery_id"] == failed.id and "550" in event.payload["reason"]
    assert event.payload["unit_id"] == unit_id and event.payload["cause_type"] == "submission.returned"

    world.publish(returned(unit_id, 2))
    received = smtp.wait_for(
        2, timeout=30
    )  # the second mail, and the campaign office's notice of the failure
    assert "【退回修改】相山区信访局：宣传横幅2" in {m.message["Subject"] for m in received}
    returns = {"event_type": "submission.returned"}
    wait_until(lambda: world.deliveries(status="sent", **returns), what="the second delivery to be sent")
    # the loop has gone round many times since: the failed one was never tried again
    assert [(d.status, d.attempts) for d in world.deliveries(**returns)] == [("failed", 1), ("sent", 1)]


def test_a_temporary_refusal_is_retried(world, smtp):
    unit_id = world.add_unit()
    smtp.fail_next_with(451, "4.7.1 greylisted, try again", on="RCPT")
    world.publish(returned(unit_id, 1))
    [_received] = smtp.wait_for(1, timeout=30)
    [sent] = wait_until(lambda: world.deliveries(status="sent"), what="the delivery to be sent")
    assert sent.attempts == 2 and "451" in sent.last_error and len(smtp.messages) == 1


def test_while_the_server_is_down_one_probe_per_round_not_one_per_mail(make_world, smtp):
    world = make_world(run_jobs=False)
    unit_id = world.add_unit()
    for n in range(4):
        world.publish_and_wait(returned(unit_id, n))
    smtp.stop()
    assert run_loop(world) == 0
    assert sorted(d.attempts for d in world.deliveries()) == [0, 0, 0, 1]
    smtp.start()
    wait_until(
        lambda: run_loop(world) is not None and len(world.deliveries(status="sent")) == 4,
        what="the loop to send all four once the server is back",
    )
    assert len(smtp.messages) == 4


def test_the_send_rate_is_limited_per_server(make_world, smtp):
    world = make_world(run_jobs=False, smtp_max_per_minute=2)
    unit_id = world.add_unit()
    for n in range(3):
        world.publish_and_wait(returned(unit_id, n))
    now = [1000.0]
    loop = DeliveryLoop(world.ctx, bucket=TokenBucket(2, monotonic=lambda: now[0]))
    assert loop.run() == 1  # one token; the next comes in 30 s, longer than a round: stop, claim nothing
    assert sorted((d.status, d.attempts) for d in world.deliveries()) == [
        ("queued", 0),
        ("queued", 0),
        ("sent", 1),
    ]
    now[0] += 30
    assert loop.run() == 1
    now[0] += 60
    assert loop.run() == 1
    assert len(smtp.wait_for(3, timeout=30)) == 3


def test_temporary_failures_give_up_after_the_retry_window(make_world, smtp, clock):
    world = make_world(run_jobs=False, clock=clock, notify_retry_for_s=3600)
    world.publish_and_wait(returned(world.add_unit(), 1))
    smtp.stop()
    run_loop(world)
    [delivery] = world.deliveries(event_type="submission.returned")
    assert (delivery.status, delivery.attempts) == ("queued", 1)
    clock.advance(timedelta(hours=1))
    run_loop(world)
    [delivery] = world.deliveries(event_type="submission.returned")  # (the office's notice of it may follow)
    assert delivery.status == "failed" and delivery.last_error.startswith("gave up after 2 attempts")
    wait_until(lambda: observed(world, "notification.failed"), what="notification.failed")


def test_one_mail_per_dedupe_key_across_redeliveries_and_a_worker_restart(make_world, smtp, tmp_path):
    data_dir = tmp_path / "shared-data"
    first = make_world(data_dir=data_dir)
    unit_id = first.add_unit()
    event = first.publish(returned(unit_id, 1))
    smtp.wait_for(1, timeout=30)
    wait_until(lambda: first.deliveries(status="sent"), what="the first delivery to be sent")
    first.bus.stop()
    first.worker.stop()

    restarted = make_world(data_dir=data_dir)
    restarted.publish(event)  # redelivered after the restart
    restarted.publish(
        returned(unit_id, 1, submission_id=event.payload["submission_id"])
    )  # same notice, new event id
    restarted.publish(returned(unit_id, 2))  # a new notice, consumed after the two above
    wait_until(lambda: len(smtp.messages) == 2, what="the new notice's mail")
    wait_until(lambda: len(restarted.deliveries(status="sent")) == 2, what="both deliveries to be sent")
    assert sorted(m.message["Subject"] for m in smtp.messages) == [
        "【退回修改】相山区信访局：宣传横幅1",
        "【退回修改】相山区信访局：宣传横幅2",
    ]


def test_a_delivery_caught_mid_send_by_a_crash_waits_for_its_lease_then_is_sent_again(
    make_world, smtp, tmp_path
):
    data_dir = tmp_path / "shared-data"
    crashed = make_world(data_dir=data_dir, run_jobs=False)
    unit_id = crashed.add_unit()
    crashed.publish_and_wait(returned(unit_id, 1))
    lease_ends = datetime.now(UTC) + timedelta(minutes=10)
    with crashed.ctx.db.transaction() as uow:  # claimed, then the worker died before recording the outcome
        uow.execute(
            update(Delivery).values(
                status="sending", attempts=1, lease_owner="dead-worker", lease_expires_at=lease_ends
            )
        )
    crashed.bus.stop()

    restarted = make_world(data_dir=data_dir)
    restarted.publish(returned(unit_id, 2))
    [received] = smtp.wait_for(1, timeout=30)
    assert received.message["Subject"] == "【退回修改】相山区信访局：宣传横幅2"  # the live lease is respected
    wait_until(lambda: restarted.deliveries(status="sent"), what="the new delivery to be sent")
    assert sorted(d.status for d in restarted.deliveries()) == ["sending", "sent"]
    [stuck] = restarted.client.get("/deliveries", params={"status": "sending"}).json()
    assert stuck["subject"].endswith("宣传横幅1") and stuck["lease_owner"] == "dead-worker"

    with restarted.ctx.db.transaction() as uow:  # ... until the lease runs out
        uow.execute(
            update(Delivery).where(Delivery.id == stuck["id"]).values(lease_expires_at=datetime.now(UTC))
        )
    resent = smtp.wait_for(2, timeout=30)[1]
    assert (
        resent.message["Subject"].endswith("宣传横幅1")
        and resent.message["Message-ID"] == stuck["message_id"]
    )
    wait_until(lambda: len(restarted.deliveries(status="sent")) == 2, what="the resend to be recorded")
    assert restarted.client.get(f"/deliveries/{stuck['id']}").json()["resends"] == 1


def test_backoff_grows_exponentially_up_to_the_cap_with_jitter():
    top = [backoff_s(n, base_s=2, max_s=60, rand=lambda low, high: high) for n in range(1, 8)]
    assert top == [2, 4, 8, 16, 32, 60, 60]
    bottom = [backoff_s(n, base_s=2, max_s=60, rand=lambda low, high: low) for n in range(1, 4)]
    assert bottom == [1, 2, 4]


def test_token_bucket_refills_at_its_rate():
    now = [0.0]
    bucket = TokenBucket(60, burst=2, monotonic=lambda: now[0])
    assert [bucket.try_take() for _ in range(3)] == [True, True, False]
    assert bucket.wait_s() == 1.0
    now[0] += 0.5
    assert bucket.try_take() is False
    now[0] += 0.5
    assert bucket.try_take() is True
    bucket.give_back()
    assert bucket.try_take() is True and bucket.try_take() is False
    now[0] += 100
    assert [bucket.try_take() for _ in range(3)] == [True, True, False]  # never more than the burst


def test_a_failed_mail_is_told_to_the_office_once_per_liaison_and_day(make_world, smtp, clock):
    world = make_world(clock=clock)
    unit_id = world.add_unit(
        email="li.ming@example.org\r\nBcc: x@example.org"
    )  # every mail to it fails for good
    for n in (1, 2):  # two mails to the same liaison fail on one day
        world.publish(returned(unit_id, n))
        wait_until(lambda n=n: len(world.deliveries(status="failed")) == n, what=f"mail {n} to fail")
    [office] = wait_until(
        lambda: world.deliveries(event_type="notification.failed", status="sent"),
        what="the campaign office to be told",
    )
    assert "campaign-office@example.org" in office.recipient and office.unit_id is None
    assert office.subject.startswith("【邮件未送达】相山区信访局：李明")
    assert (
        "invalid address" in office.body_text and "/notification/deliveries?status=failed" in office.body_text
    )
    wait_until(lambda: len(observed(world, "notification.failed")) == 2, what="both failures published")
    wait_until(
        lambda: all(world.consumed(e) for e in observed(world, "notification.failed")), what="both handled"
    )
    assert len(world.deliveries(event_type="notification.failed")) == 1  # not one per failure

    clock.advance(timedelta(days=1))  # the next day the office hears of this liaison again
    world.publish(returned(unit_id, 3))
    wait_until(
        lambda: len(world.deliveries(event_type="notification.failed")) == 2, what="the next day's notice"
    )


def test_the_delivery_loop_runs_for_a_commit_that_queued_mail_not_for_every_event(make_world, smtp):
    world = make_world(notify_poll_s=600.0)  # after its first round the loop runs only when woken
    unit_id = world.add_unit()
    wakes: list[str] = []
    wake = world.ctx.job_wakers[DELIVER_MAIL]
    world.ctx.job_wakers[DELIVER_MAIL] = lambda: (wakes.append("deliver-mail"), wake())
    other = str(uuid.uuid4())
    world.publish_and_wait(
        UnitRegistered(
            unit_id=other, code="U-other", name="烈山区信访局", level="county", unit_path=f"/{other}/"
        )
    )
    assert wakes == []  # remembered a unit, queued nothing: no claim query
    world.publish(returned(unit_id, 1))
    wait_until(
        lambda: len(world.deliveries(status="sent")) == 1,
        timeout=30,
        what="the queued mail to be sent at once",
    )
    assert wakes == ["deliver-mail"]
    assert [m.message["Subject"] for m in smtp.messages][-1] == "【退回修改】相山区信访局：宣传横幅1"
