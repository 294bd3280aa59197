"""Intake with the other three services in one process: a campaign from its definition to an approved resubmission.

Review decisions and stored evidence arrive as the events those services publish (their HTTP APIs
are exercised by tests/flows); what is checked here is intake's side and review's queue following versions.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from deploy.embedded import build_platform
from shared.clock import FixedClock
from shared.contracts import make_event
from shared.contracts.evidence import EvidenceStored
from shared.contracts.review import SubmissionApproved, SubmissionReturned
from shared.events import Envelope, new_id
from shared.settings import Settings
from tests.helpers import read_eml, wait_until
from tests.intake.support import BEFORE_CAMPAIGN, admin_header, huaibei_text


@pytest.fixture
def client(tmp_path):
    """The embedded platform on a clock standing before the campaign."""
    settings = Settings(data_dir=tmp_path, bus_retry_delays_ms=(50, 100), outbox_poll_s=0.1)
    platform = build_platform(settings, clock=FixedClock(BEFORE_CAMPAIGN))
    with TestClient(platform.app) as http:
        http.platform = platform
        http.headers.update(admin_header(platform.contexts["intake"]))
        yield http


def test_returned_submission_is_resubmitted_as_a_new_version_and_approved(client):
    platform = client.platform
    loaded = client.post(
        "/intake/campaigns", content=huaibei_text().encode(), headers={"Content-Type": "application/yaml"}
    )
    assert loaded.status_code == 201, loaded.text
    campaign_id = loaded.json()["campaign_id"]
    unit = next(u for u in client.get(f"/intake/campaigns/{campaign_id}/units").json() if u["code"] == "XSQ")

    created = client.post(
        "/intake/submissions",
        json={
            "unit_id": unit["id"],
            "measure_code": "M5",
            "title": "悬挂宣传横幅",
            "held_on": "2020-03-10",
            "place": "相山区人民广场",
            "participants": 12,
            "topics": ["T1", "T4"],
        },
    )
    assert created.status_code == 201, created.text
    submission = created.json()
    assert submission["campaign_id"] == campaign_id and submission["unit_path"] == unit["unit_path"]
    wait_until(
        lambda: review_item(platform, submission["id"]) == (1, "pending"), what="review to queue version 1"
    )

    # what evidence_storage and review announce, on the platform's bus
    platform.bus.publish(
        event(
            EvidenceStored(
                evidence_id=new_id(),
                submission_id=submission["id"],
                unit_id=unit["id"],
                object_key="k",
                media_type="image/jpeg",
                size=3,
                sha256="0" * 64,
                filename="横幅.jpg",
            )
        )
    )
    wait_until(lambda: intake(client, submission)["evidence"], what="intake to hear of the evidence")
    assert intake(client, submission)["evidence_status"] == {
        "required_count": 2,
        "accepted_kinds": ["photo", "video"],
        "count": 1,
        "satisfied": False,
    }
    decision = dict(
        submission_id=submission["id"],
        unit_id=unit["id"],
        measure_code="M5",
        title="悬挂宣传横幅",
        reviewer="王芳",
    )
    platform.bus.publish(event(SubmissionReturned(version=1, comment="请再补充一张照片", **decision)))
    wait_until(lambda: intake(client, submission)["state"] == "returned", what="intake to mirror the return")

    resubmitted = client.post(
        f"/intake/submissions/{submission['id']}/resubmit", json={"description": "已补充照片"}
    )
    assert resubmitted.status_code == 200 and resubmitted.json()["version"] == 2
    wait_until(
        lambda: review_item(platform, submission["id"]) == (2, "pending"), what="review to queue version 2"
    )
    platform.bus.publish(event(SubmissionApproved(version=2, score=95, **decision)))
    wait_until(
        lambda: intake(client, submission)["state"] == "approved", what="intake to mirror the approval"
    )

    versions = client.get(f"/intake/submissions/{submission['id']}/versions").json()
    assert [(v["version"], v["outcome"]) for v in versions] == [(1, "returned"), (2, "approved")]
    matrix = client.get(f"/intake/campaigns/{campaign_id}/coverage", params={"unit_id": unit["id"]}).json()
    assert matrix["units"][0]["cells"]["M5"] == {"state": "approved", "colour": "green", "count": 1}
    assert matrix["units"][0]["topics_covered"] == ["T1", "T4"]
    # the liaison named in the definition receives both decision e-mails
    mailer = platform.contexts["notification"].mailer

    def decision_mails() -> list[str]:
        mails = [read_eml(path) for path in mailer.messages()]
        return sorted(
            m["Subject"][:6]
            for m in mails
            if "悬挂宣传横幅" in m["Subject"] and "li.ming@example.org" in m["To"]
        )

    assert wait_until(
        lambda: len(decision_mails()) >= 2 and decision_mails(), what="both decision e-mails"
    ) == ["【审核通过】", "【退回修改】"]


def event(payload) -> Envelope:
    """An event as its producing service would publish it."""
    producer = "evidence_storage" if payload.EVENT_TYPE.startswith("evidence.") else "review"
    return make_event(payload, producer=producer)


def intake(client, submission: dict) -> dict:
    """The submission as intake shows it now."""
    return client.get(f"/intake/submissions/{submission['id']}").json()


def review_item(platform, submission_id: str) -> tuple[int, str] | None:
    """(version, state) of the submission in review's own queue table."""
    from services.review.models import ReviewItem

    with platform.contexts["review"].db.session() as uow:
        item = uow.get(ReviewItem, submission_id)
        return (item.version, item.state) if item else None
