"""Claim, comment, decisions and downloads through the whole embedded platform: intake mirrors the claim,
and the review timeline holds every step in order, verifiably."""

from __future__ import annotations

import io

from services.intake import identity
from services.review import cli
from shared.auth import REVIEWER, UNIT, issuer_from_settings
from tests.flows.conftest import client, platform  # noqa: F401  (the embedded platform fixtures)
from tests.flows.steps import create_unit, submit, upload, wait_evidence_ready, wait_review_item
from tests.helpers import JPEG_BYTES, wait_until


def test_submit_claim_comment_return_resubmit_approve_download(platform, client):  # noqa: F811
    intake = platform.contexts["intake"]
    issuer = issuer_from_settings(intake.settings)
    reviewer = {
        "Authorization": f"Bearer {issuer.issue(subject='r1', name='赵强', role=REVIEWER, ttl_s=600)}"
    }
    unit = create_unit(client)
    with intake.db.session() as uow:
        path = identity.unit_path_of(uow, unit["id"])
    liaison = {
        "Authorization": f"Bearer {issuer.issue(subject='l1', name='李明', role=UNIT, ttl_s=600, unit_id=unit['id'], unit_path=path)}"
    }
    submission = submit(client, unit["id"])
    sid = submission["id"]
    wait_evidence_ready(client, sid)
    photo = upload(client, sid, JPEG_BYTES, "会议.jpg").json()
    wait_review_item(client, sid, evidence=1)

    def intake_state() -> str:
        return client.get(f"/intake/submissions/{sid}").json()["state"]

    claimed = client.post(f"/review/submissions/{sid}/claim", json={"version": 1}, headers=reviewer)
    assert claimed.status_code == 200, claimed.text
    wait_until(
        lambda: intake_state() == "under_review", what="intake to show the claimed version under review"
    )
    assert (
        client.post(f"/intake/submissions/{sid}/withdraw").status_code == 409
    )  # a claimed version is being reviewed
    assert client.post(f"/review/submissions/{sid}/release", headers=reviewer).status_code == 200
    wait_until(lambda: intake_state() == "submitted", what="intake to show the released version as submitted")
    assert client.post(f"/review/submissions/{sid}/claim", headers=reviewer).status_code == 200
    wait_until(lambda: intake_state() == "under_review", what="the second claim to reach intake")
    assert (
        client.post(
            f"/review/submissions/{sid}/comments", json={"body": "这张照片是哪天拍的？"}, headers=liaison
        ).status_code
        == 201
    )
    returned = client.post(
        f"/review/submissions/{sid}/return", json={"comment": "请补充拍摄日期"}, headers=reviewer
    )
    assert returned.status_code == 200, returned.text
    wait_until(lambda: intake_state() == "returned", what="intake to mirror the return from under_review")
    resubmitted = client.post(
        f"/intake/submissions/{sid}/resubmit",
        json={"description": "3月9日上午召开专题会议。"},
        headers=liaison,
    )
    assert resubmitted.status_code == 200, resubmitted.text
    wait_until(
        lambda: client.get(f"/review/submissions/{sid}").json()["version"] == 2, what="version 2 in the queue"
    )
    approved = client.post(
        f"/review/submissions/{sid}/approve", json={"version": 2, "score": 95}, headers=reviewer
    )
    assert approved.status_code == 200, approved.text
    wait_until(lambda: intake_state() == "approved", what="intake to mirror the approval")
    assert client.get(f"/evidence/evidence/{photo['id']}/content", headers=liaison).status_code == 200

    def kinds() -> list[str]:
        return [r["kind"] for r in client.get(f"/review/submissions/{sid}/timeline", headers=liaison).json()]

    wait_until(lambda: "evidence.download" in kinds(), what="the download on the timeline")
    assert kinds() == [
        "submission.submitted",
        "evidence.stored",
        "submission.claimed",
        "submission.released",
        "submission.claimed",
        "comment.added",
        "submission.returned",
        "submission.submitted",
        "submission.approved",
        "evidence.download",
    ]
    records = client.get(f"/review/units/{unit['id']}/timeline").json()
    assert {r["submission_id"] for r in records if r["submission_id"]} == {sid}
    assert [r["actor"] for r in records if r["kind"] in ("comment.added", "evidence.download")] == [
        "李明",
        "李明",
    ]
    assert client.get("/review/timeline/verify").json()["ok"] is True
    out = io.StringIO()
    assert (
        cli.main(
            ["verify-timeline"], settings=platform.contexts["review"].settings, out=out, err=io.StringIO()
        )
        == 0
    )
    assert "校验通过" in out.getvalue()
