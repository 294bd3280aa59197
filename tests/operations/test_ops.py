"""Operator tools on the embedded platform, through `python -m deploy.ops` and the admin routes: parked messages
listed with their error, replayed and purged (audited, with a reason), outbox errors, consumer lag, failed
e-mails requeued and sent."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from deploy import ops
from deploy.embedded import build_platform
from services.notification.models import Delivery
from shared.auth import REVIEWER, issuer_from_settings
from shared.events import Envelope
from shared.settings import Settings
from tests.flows.steps import admin_token
from tests.helpers import wait_until


@pytest.fixture
def platform(tmp_path):
    """An embedded platform with short retries and an admin session."""
    built = build_platform(
        Settings(data_dir=tmp_path, bus_retry_delays_ms=(20, 40), outbox_poll_s=0.1, notify_poll_s=0.2)
    )
    with TestClient(built.app) as client:
        client.headers["Authorization"] = f"Bearer {admin_token(built.contexts['intake'])}"
        built.client = client
        yield built


def cli(platform, *argv: str) -> tuple[int, object]:
    """Run the operator CLI against the platform; its exit code and printed JSON."""
    out = io.StringIO()
    code = ops.main(list(argv), client=platform.client, out=out)
    return code, json.loads(out.getvalue()) if out.getvalue() else None


def park_one(platform) -> Envelope:
    """A submission.submitted event review's handler can never accept (its payload is empty): it ends up parked."""
    bad = Envelope(type="submission.submitted", producer="intake", payload={})
    platform.bus.publish(bad)
    wait_until(
        lambda: any(m.message_id == bad.event_id for m in platform.bus.parked_messages("review")),
        what="the bad event to be parked",
    )
    return bad


def test_parked_messages_listed_peeked_replayed_and_purged_with_a_reason(platform):
    bad = park_one(platform)
    code, listed = cli(platform, "parked", "list", "review")
    assert code == 0 and [m["message_id"] for m in listed] == [bad.event_id]
    # a payload that does not match its contract is parked at once: retrying cannot help
    assert listed[0]["type"] == "submission.submitted" and listed[0]["attempts"] == 1
    assert "malformed payload" in listed[0]["error"]
    code, peeked = cli(platform, "parked", "peek", "review", bad.event_id)
    assert code == 0 and json.loads(peeked["body"])["event_id"] == bad.event_id

    code, replayed = cli(platform, "parked", "replay", "review", bad.event_id, "--reason", "schema fixed")
    assert code == 0 and replayed == {"replayed": 1}
    wait_until(
        lambda: len(platform.bus.parked_messages("review")) == 1,
        what="the replayed event to run again and be parked again",
    )

    assert cli(platform, "parked", "purge", "review", bad.event_id)[0] == 1  # no reason, nothing dropped
    assert len(platform.bus.parked_messages("review")) == 1
    code, purged = cli(platform, "parked", "purge", "review", bad.event_id, "--reason", "测试数据，无需处理")
    assert code == 0 and purged == {"purged": [bad.event_id]}
    assert platform.bus.parked_messages("review") == []

    entries = platform.client.get("/review/audit-log", params={"resource_type": "parking_lot"}).json()
    assert [e["action"] for e in entries] == ["ops.parked_purged", "ops.parked_replayed"]
    assert entries[0]["detail"]["reason"] == "测试数据，无需处理"
    assert entries[0]["detail"]["messages"][0]["message_id"] == bad.event_id


def test_only_admins_reach_the_operator_routes(platform):
    reviewer = issuer_from_settings(platform.contexts["intake"].settings).issue(
        subject="r1", name="赵强", role=REVIEWER, ttl_s=60
    )
    response = platform.client.get("/review/ops/parked", headers={"Authorization": f"Bearer {reviewer}"})
    assert response.status_code == 403
    assert (
        platform.client.post("/review/ops/parked/purge", json={}).status_code == 422
    )  # a purge needs a reason


def test_outbox_rows_with_errors_and_consumer_lag(platform):
    intake = platform.contexts["intake"]
    bad = Envelope(type="submission.submitted", producer="intake", payload={})  # its consumers will park it
    with intake.db.transaction() as uow:
        intake.outbox.add(uow, bad)

    def failed() -> list:
        return [
            row for row in cli(platform, "outbox", "intake")[1]["intake"] if row["event_id"] == bad.event_id
        ]

    [row] = wait_until(failed, what="the relay to record that the event was parked")
    assert row["type"] == "submission.submitted" and "parked" in row["last_error"]
    code, lag = cli(platform, "lag")
    assert code == 0
    assert {entry["consumer"]: entry["parked"] for entry in lag} == {
        "intake": 0,
        "evidence_storage": 1,
        "review": 1,
        "notification": 0,
    }  # the consumers of the event


def test_failed_email_requeued_and_sent(platform):
    notification = platform.contexts["notification"]
    now = datetime.now(UTC)
    with notification.db.transaction() as uow:
        uow.execute(
            insert(Delivery).values(
                id=str(uuid.uuid4()),
                dedupe_key="ops-test",
                event_id=str(uuid.uuid4()),
                event_type="submission.approved",
                unit_id=None,
                recipient="王芳 <wang.fang@example.org>",
                subject="【测试】重发",
                body_text="正文",
                body_html="<p>正文</p>",
                status="failed",
                attempts=5,
                last_error="550 mailbox unavailable",
                next_attempt_at=now - timedelta(hours=1),
                created_at=now - timedelta(hours=2),
            )
        )
    code, result = cli(platform, "requeue", "--reason", "邮箱已修复")
    assert code == 0 and len(result["requeued"]) == 1

    def status() -> str:
        with notification.db.session() as uow:
            return uow.scalar(select(Delivery.status).where(Delivery.dedupe_key == "ops-test")) == "sent"

    wait_until(status, what="the requeued e-mail to be sent")
    entries = platform.client.get("/notification/audit-log", params={"action": "delivery.requeued"}).json()
    assert entries[0]["detail"] == {"delivery_ids": result["requeued"], "reason": "邮箱已修复"}
