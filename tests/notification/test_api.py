"""The delivery log API: per unit and per event, queued, sent, failed (with the reason), attempts."""

from __future__ import annotations

import uuid

from shared.contracts.review import SubmissionApproved
from tests.helpers import wait_until
from tests.notification.conftest import run_loop


def approved(unit_id: str, title: str) -> SubmissionApproved:
    """An approval of a fresh submission of the unit."""
    return SubmissionApproved(
        submission_id=str(uuid.uuid4()),
        unit_id=unit_id,
        measure_code="M1",
        title=title,
        version=1,
        reviewer="王芳",
        score=90,
    )


def test_delivery_log_per_unit_and_per_event(make_world, smtp):
    world = make_world(run_jobs=False)
    client = world.client
    unit_a, unit_b = world.add_unit("相山区信访局"), world.add_unit("杜集区信访局")
    refused = world.publish_and_wait(approved(unit_a, "专题会议"))
    sent = world.publish_and_wait(approved(unit_a, "宣传横幅"))
    smtp.fail_next_with(550, "5.1.1 mailbox unavailable", on="RCPT")
    run_loop(world)
    # the campaign office hears of the failure; send that notice before the server goes away
    wait_until(lambda: world.deliveries(event_type="notification.failed"), what="the office's notice")
    run_loop(world)
    smtp.stop()
    waiting = world.publish_and_wait(approved(unit_b, "宣传展板"))
    run_loop(world)

    log_a = client.get("/deliveries", params={"unit_id": unit_a}).json()
    by_event = {entry["event_id"]: entry for entry in log_a}
    assert set(by_event) == {refused.event_id, sent.event_id}
    failed = by_event[refused.event_id]
    assert (failed["status"], failed["attempts"], failed["sent_at"]) == ("failed", 1, None)
    assert "550" in failed["last_error"] and "mailbox unavailable" in failed["last_error"]
    assert (by_event[sent.event_id]["status"], by_event[sent.event_id]["attempts"]) == ("sent", 1)
    assert by_event[sent.event_id]["subject"] == "【审核通过】相山区信访局：宣传横幅"

    [queued] = client.get("/deliveries", params={"event_id": waiting.event_id}).json()
    assert (queued["status"], queued["attempts"], queued["unit_id"]) == ("queued", 1, unit_b)
    assert "unreachable" in queued["last_error"] and queued["next_attempt_at"] > queued["created_at"]
    assert client.get(f"/deliveries/{queued['id']}").json() == queued

    assert [e["event_id"] for e in client.get("/deliveries", params={"status": "failed"}).json()] == [
        refused.event_id
    ]
    assert len(client.get("/deliveries", params={"event_type": "submission.approved"}).json()) == 3
    assert client.get("/deliveries/summary", params={"unit_id": unit_a}).json() == {
        "unit_id": unit_a,
        "queued": 0,
        "sending": 0,
        "sent": 1,
        "failed": 1,
        "waiting_for_digest": 0,
    }
    # (the campaign office's notice of the failure may be queued too: count unit B's only)
    assert client.get("/deliveries/summary", params={"unit_id": unit_b}).json()["queued"] == 1


def test_delivery_log_refuses_bad_queries(world):
    assert world.client.get("/deliveries/no-such-delivery").status_code == 404
    assert (
        world.client.get("/deliveries/no-such-delivery").json()["message_en"]
        == "delivery not found: no-such-delivery"
    )
    assert world.client.get("/deliveries", params={"status": "lost"}).status_code == 422
    assert world.client.get("/deliveries", params={"limit": 0}).status_code == 422
