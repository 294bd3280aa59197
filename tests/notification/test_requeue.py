"""An operator's requeue (`python -m deploy.ops requeue`, POST /ops/deliveries/requeue): what it may take back from
a running worker, the retry window it gives, and where a corrected liaison address sends a failed mail."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import text, update

from services.notification.delivery import DeliveryLoop
from services.notification.models import Delivery
from shared.contracts.intake import LiaisonDesignated
from tests.helpers import wait_until
from tests.notification.conftest import run_loop
from tests.notification.test_delivery import returned
from tests.notification.test_delivery_batch import queue

REASON = {"reason": "运维处理积压邮件"}


def requeue(world, **body) -> list[str]:
    """The ids the admin route put back in the queue."""
    answer = world.client.post("/ops/deliveries/requeue", json={**REASON, **body})
    assert answer.status_code == 200, answer.text
    return answer.json()["requeued"]


def test_a_mail_under_a_live_lease_is_not_requeued_however_long_it_waited_before_its_claim(
    make_world, smtp, clock
):
    # A backlog: the mails became due 20 minutes before a worker claimed them, and it is sending them now.
    world = make_world(run_jobs=False, clock=clock, notify_lease_s=600)
    queue(world, 2)
    clock.advance(timedelta(minutes=20))
    claimed = DeliveryLoop.from_settings(world.ctx).claim(10)
    assert len(claimed) == 2
    assert requeue(world, stuck_minutes=15) == []  # the runbook's command for DeliveriesStuck
    assert requeue(world, delivery_ids=[c.id for c in claimed]) == []
    assert {d.status for d in world.deliveries()} == {"sending"}

    clock.advance(timedelta(minutes=11))  # the lease ended a minute ago; claimed 11 minutes ago
    assert requeue(world, stuck_minutes=15) == []
    clock.advance(timedelta(minutes=5))  # claimed 16 minutes ago, its lease long over: stuck
    assert sorted(requeue(world, stuck_minutes=15)) == sorted(c.id for c in claimed)
    rows = world.deliveries()
    assert {(d.status, d.resends, d.lease_owner, d.lease_expires_at) for d in rows} == {
        ("queued", 1, None, None)
    }


def test_on_postgresql_a_row_a_worker_claims_while_the_requeue_runs_stays_with_the_worker(
    make_world, smtp, clock, postgres_url
):
    world = make_world(run_jobs=False, clock=clock, database_url=postgres_url, notify_lease_s=600)
    queue(world, 1)
    [claimed] = DeliveryLoop.from_settings(world.ctx).claim(10)
    clock.advance(timedelta(minutes=30))  # its worker died: stuck, as far as the requeue's SELECT can see
    with ThreadPoolExecutor(1) as pool:
        with world.ctx.db.transaction() as uow:  # meanwhile another worker takes it back and claims it again
            uow.execute(
                update(Delivery)
                .where(Delivery.id == claimed.id)
                .values(lease_owner="other-worker", lease_expires_at=clock.now() + timedelta(minutes=10))
            )
            requeued = pool.submit(requeue, world, stuck_minutes=15)
            wait_until(lambda: _waiting_for_a_lock(world), what="the requeue's UPDATE to wait for the claim")
        assert requeued.result(timeout=30) == []
    [row] = world.deliveries(id=claimed.id)
    assert (row.status, row.lease_owner) == ("sending", "other-worker")


def _waiting_for_a_lock(world) -> bool:
    with world.ctx.db.session() as uow:
        return bool(
            uow.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


def test_a_requeued_mail_gets_a_new_retry_window(make_world, smtp, clock):
    world = make_world(run_jobs=False, clock=clock, notify_retry_for_s=3600)
    world.publish_and_wait(returned(world.add_unit(), 1))
    smtp.stop()  # the mail server is down for longer than the retry window
    run_loop(world)
    clock.advance(timedelta(hours=2))
    run_loop(world)
    [delivery] = world.deliveries(event_type="submission.returned")
    assert delivery.status == "failed" and delivery.last_error.startswith("gave up")

    smtp.start()
    smtp.fail_next_with(451, "4.7.1 greylisted, try again later")
    assert requeue(world) == [delivery.id]
    run_loop(world)  # the server is back but defers the first try: a retry, not a second give-up
    [delivery] = world.deliveries(event_type="submission.returned")
    assert delivery.status == "queued" and "(451, '4.7.1 greylisted" in delivery.last_error
    clock.advance(timedelta(minutes=5))
    run_loop(world)
    [delivery] = world.deliveries(event_type="submission.returned")
    assert delivery.status == "sent"
    assert "【退回修改】相山区信访局：宣传横幅1" in [m.message["Subject"] for m in smtp.messages]


def test_after_the_liaison_address_is_corrected_a_requeued_mail_goes_to_the_new_address(make_world, smtp):
    world = make_world(run_jobs=False)
    unit_id = world.add_unit(email="li.ming@exmaple.org")  # mistyped
    world.publish_and_wait(returned(unit_id, 1))
    smtp.fail_next_with(550, "5.1.1 no such user")
    run_loop(world)
    [failed] = world.deliveries(event_type="submission.returned")
    assert failed.status == "failed"

    world.publish_and_wait(
        LiaisonDesignated(
            unit_id=unit_id,
            unit_code=f"U{unit_id[:8]}",
            unit_name="相山区信访局",
            liaison_name="李明",
            liaison_email="li.ming@example.org",
        )
    )
    assert requeue(world) == [failed.id]
    run_loop(world)
    [sent] = world.deliveries(id=failed.id)
    assert (sent.status, sent.recipient) == ("sent", "李明 <li.ming@example.org>")
    to = [m.message["To"] for m in smtp.messages if m.message["Subject"] == failed.subject]
    assert to == ["李明 <li.ming@example.org>"]


def test_a_mail_to_another_address_of_the_office_domain_failing_tells_the_office(make_world, smtp):
    # The office is office@…; a liaison's district-office@… must not be taken for the office's own address.
    world = make_world(run_jobs=False, notify_office_email="office@example.org")
    unit_id = world.add_unit(email="district-office@example.org")
    world.publish_and_wait(returned(unit_id, 1))
    smtp.fail_next_with(550, "5.1.1 no such user")
    run_loop(world)
    # the office's notice of the failure is queued when notification.failed is consumed
    wait_until(lambda: world.deliveries(event_type="notification.failed"), what="the office's notice")
    [notice] = world.deliveries(event_type="notification.failed")
    assert notice.recipient.endswith("<office@example.org>")
