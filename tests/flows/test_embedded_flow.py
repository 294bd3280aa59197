"""The thinnest real flow through all four services in one process."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from services.evidence_storage.models import Evidence
from shared.events import Envelope
from tests.flows.steps import create_unit, submit, upload, wait_evidence_ready, wait_review_item
from tests.helpers import JPEG_BYTES, PDF_BYTES, PNG_BYTES, mail_parts, mp4_bytes, read_eml, wait_until


def test_unit_submission_upload_approve_email(platform, client):
    unit = create_unit(client)
    submission = submit(client, unit["id"])
    wait_evidence_ready(client, submission["id"])

    response = upload(client, submission["id"], JPEG_BYTES, "会议照片.jpg")
    assert response.status_code == 201, response.text
    evidence = response.json()
    assert evidence["media_type"] == "image/jpeg"
    assert evidence["sha256"] == hashlib.sha256(JPEG_BYTES).hexdigest()
    assert evidence["size"] == len(JPEG_BYTES)
    assert evidence["filename"] == "会议照片.jpg"

    item = wait_review_item(client, submission["id"], evidence=1)
    assert item["state"] == "pending" and item["evidence"][0]["sha256"] == evidence["sha256"]

    decided = client.post(
        f"/review/submissions/{submission['id']}/approve",
        json={"reviewer": "王芳", "score": 95, "version": 1},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "approved"

    mailer = platform.contexts["notification"].mailer
    files = wait_until(mailer.messages, what="the approval e-mail")
    message = read_eml(files[0])
    assert message["Subject"] == "【审核通过】相山区信访局：召开专题会议传达部署"
    assert unit["liaison_email"] in message["To"] and "李明" in message["To"]
    text, html = mail_parts(message)
    assert "已审核通过" in text and "得分 95" in text and "已审核通过" in html

    wait_until(
        lambda: client.get(f"/intake/submissions/{submission['id']}").json()["state"] == "approved",
        what="intake to mirror the approval",
    )
    wait_until(
        lambda: client.get(f"/evidence/evidence/{evidence['id']}").json()["locked"],
        what="evidence to be locked",
    )
    assert client.delete(f"/evidence/evidence/{evidence['id']}").status_code == 409
    download = client.get(f"/evidence/evidence/{evidence['id']}/content")
    assert download.status_code == 200 and download.content == JPEG_BYTES


def test_return_requires_comment_and_reject_requires_reason(client):
    unit = create_unit(client)
    submission = submit(client, unit["id"])
    wait_review_item(client, submission["id"])
    assert (
        client.post(f"/review/submissions/{submission['id']}/return", json={"reviewer": "王芳"}).status_code
        == 422
    )
    assert (
        client.post(
            f"/review/submissions/{submission['id']}/return", json={"reviewer": "王芳", "comment": ""}
        ).status_code
        == 422
    )
    assert (
        client.post(f"/review/submissions/{submission['id']}/reject", json={"reviewer": "王芳"}).status_code
        == 422
    )
    returned = client.post(
        f"/review/submissions/{submission['id']}/return",
        json={"reviewer": "王芳", "comment": "照片不清晰，请补充横幅照片"},
    )
    assert returned.status_code == 200 and returned.json()["comment"] == "照片不清晰，请补充横幅照片"
    again = client.post(f"/review/submissions/{submission['id']}/approve", json={"reviewer": "赵强"})
    assert again.status_code == 409
    assert again.json()["code"] == "already_decided"


def test_returned_mail_carries_comment(platform, client):
    unit = create_unit(client, name="杜集区信访局")
    submission = submit(client, unit["id"], title="宣传横幅")
    wait_review_item(client, submission["id"])
    client.post(
        f"/review/submissions/{submission['id']}/return",
        json={"reviewer": "王芳", "comment": "<b>请补充</b>现场照片"},
    )
    message = read_eml(
        wait_until(platform.contexts["notification"].mailer.messages, what="the return e-mail")[0]
    )
    assert message["Subject"].startswith("【退回修改】杜集区信访局")
    text, html = mail_parts(message)
    assert "审核意见：<b>请补充</b>现场照片" in text
    assert "&lt;b&gt;请补充&lt;/b&gt;" in html  # user text is escaped in HTML


def test_allowed_types_are_sniffed_from_bytes(client):
    unit = create_unit(client)
    submission = submit(client, unit["id"])
    wait_evidence_ready(client, submission["id"])
    for data, name, expected in (
        (PNG_BYTES, "a.bin", "image/png"),
        (mp4_bytes(), "clip", "video/mp4"),
        (PDF_BYTES, "r.pdf", "application/pdf"),
    ):
        response = upload(client, submission["id"], data, name, content_type="text/plain")
        assert response.status_code == 201, response.text
        assert response.json()["media_type"] == expected


def test_text_named_jpg_is_refused_and_nothing_is_kept(platform, client):
    unit = create_unit(client)
    submission = submit(client, unit["id"])
    wait_evidence_ready(client, submission["id"])
    response = upload(
        client,
        submission["id"],
        b"just some text, not a photo\n" * 50,
        "photo.jpg",
        content_type="image/jpeg",
    )
    assert response.status_code == 415
    detail = response.json()
    assert detail["code"] == "unsupported_media_type" and "不支持的文件类型" in detail["message"]
    ctx = platform.contexts["evidence_storage"]
    assert ctx.blobs.count_objects() == 0
    with ctx.db.session() as uow:
        assert uow.scalar(select(func.count()).select_from(Evidence)) == 0
    empty = upload(client, submission["id"], b"", "empty.jpg")
    assert empty.status_code == 400 and empty.json()["code"] == "empty_file"
    assert ctx.blobs.count_objects() == 0


def test_unknown_ids_give_404_and_malformed_json_422(client):
    assert (
        client.post(
            "/intake/submissions", json={"unit_id": "no-such-unit", "measure_code": "M1", "title": "x"}
        ).status_code
        == 404
    )
    assert client.get("/intake/units/nope").status_code == 404
    assert client.get("/intake/submissions/nope").status_code == 404
    assert upload(client, "no-such-submission", JPEG_BYTES, "a.jpg").status_code == 404
    assert client.get("/evidence/evidence/nope").status_code == 404
    assert client.post("/review/submissions/nope/approve", json={"reviewer": "王芳"}).status_code == 404
    assert client.get("/notification/deliveries/nope").status_code == 404
    bad = client.post(
        "/intake/units", content=b'{"code": "X1", "name": ', headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 422
    assert (
        client.post(
            "/intake/units",
            json={"code": "bad code!", "name": "x", "liaison": {"name": "a", "email": "not-an-email"}},
        ).status_code
        == 422
    )


def test_same_event_twice_gives_one_email(platform, client):
    unit = create_unit(client)
    submission = submit(client, unit["id"])
    item = wait_review_item(client, submission["id"])
    mailer = platform.contexts["notification"].mailer
    wait_until(lambda: platform.contexts["notification"].db.health()["ok"])
    event = Envelope(
        type="submission.approved",
        producer="review",
        payload={
            "submission_id": submission["id"],
            "unit_id": unit["id"],
            "measure_code": "M1",
            "title": item["title"],
            "version": 1,
            "reviewer": "王芳",
            "score": 90,
        },
    )
    wait_until(lambda: _liaison_known(platform, unit["id"]), what="notification to learn the liaison")
    platform.bus.publish(event)
    platform.bus.publish(event)
    wait_until(mailer.messages, what="the e-mail")
    deliveries = wait_until(
        lambda: [
            d
            for d in client.get("/notification/deliveries", params={"unit_id": unit["id"]}).json()
            if d["status"] == "sent"
        ]
    )
    # a second, equivalent event (new id, same submission version) is also deduplicated by key
    platform.bus.publish(Envelope(type=event.type, producer="review", payload=event.payload))
    platform.bus.publish(
        Envelope(
            type="liaison.designated",
            producer="intake",
            payload={
                "unit_id": "marker",
                "unit_code": "m",
                "unit_name": "m",
                "liaison_name": "m",
                "liaison_email": "m@example.org",
            },
        )
    )
    wait_until(lambda: _liaison_known(platform, "marker"), what="later events to be consumed")
    assert len(mailer.messages()) == 1
    assert len(deliveries) == 1 and deliveries[0]["attempts"] == 1


def test_poison_event_is_parked_and_the_queue_keeps_flowing(platform, client):
    # a payload no version of the contract accepts (no unit, a version that is not a number) fails every time
    poison = Envelope(
        type="submission.approved",
        producer="review",
        payload={
            "submission_id": "s-x",
            "measure_code": "M1",
            "title": "t",
            "version": "first",
            "reviewer": "r",
        },
    )
    platform.bus.publish(poison)
    unit = create_unit(client)
    submission = submit(client, unit["id"])
    wait_review_item(client, submission["id"])
    client.post(
        f"/review/submissions/{submission['id']}/reject", json={"reviewer": "王芳", "reason": "与宣传月无关"}
    )
    message = read_eml(
        wait_until(platform.contexts["notification"].mailer.messages, what="the rejection e-mail")[0]
    )
    assert message["Subject"].startswith("【未予通过】")
    parked = wait_until(lambda: platform.bus.parked("notification"), what="the poison event to be parked")
    assert [e.event_id for e in parked] == [poison.event_id]


def test_healthz_reports_each_adapter(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    adapters = response.json()["adapters"]
    assert set(adapters) >= {
        "database.intake",
        "database.evidence_storage",
        "database.review",
        "database.notification",
        "bus",
        "blob_store",
        "mailer",
    }
    assert all(part["ok"] for part in adapters.values())
    for prefix in ("/intake", "/evidence", "/review", "/notification"):
        assert client.get(f"{prefix}/docs").status_code == 200
        assert client.get(f"{prefix}/openapi.json").json()["paths"]


def _liaison_known(platform, unit_id: str) -> bool:
    from services.notification.models import Liaison

    with platform.contexts["notification"].db.session() as uow:
        return uow.get(Liaison, unit_id) is not None
