"""Daily digests, driven by a fixed clock: a unit that chose the digest gets one e-mail a day with every
notice; reviewers get one a day listing the new submissions."""

from __future__ import annotations

import uuid
from datetime import timedelta

from services.notification.digest import assemble_due
from shared.contracts.evidence import EvidenceRejected
from shared.contracts.intake import SubmissionSubmitted
from shared.contracts.review import SubmissionApproved, SubmissionReturned, SupervisionOpened
from tests.helpers import mail_parts
from tests.notification.conftest import PUBLIC, run_loop


def returned(unit_id: str, title: str = "悬挂宣传横幅") -> SubmissionReturned:
    """A return of a fresh submission of the unit, with a comment that needs escaping."""
    return SubmissionReturned(
        submission_id=str(uuid.uuid4()),
        unit_id=unit_id,
        measure_code="M5",
        title=title,
        version=1,
        reviewer="王芳",
        comment="请补充<现场>照片",
    )


def test_a_unit_on_digest_gets_one_mail_a_day_with_every_notice(make_world, smtp, clock):
    world = make_world(
        clock=clock, run_jobs=False
    )  # the clock starts at 08:00 in Asia/Shanghai; digests at 18:00
    on_digest = world.add_unit("相山区信访局", email="li.ming@example.org")
    per_event = world.add_unit("杜集区信访局", email="zhou.jie@example.org")
    put = world.client.put(f"/units/{on_digest}/preferences", json={"digest": True})
    assert put.status_code == 200 and put.json()["digest"] is True

    first = world.publish_and_wait(returned(on_digest))
    clock.advance(timedelta(hours=2))
    world.publish_and_wait(
        SupervisionOpened(
            supervision_id="sv-1", unit_id=on_digest, level="blue", method="phone", reason="进度滞后"
        )
    )
    clock.advance(timedelta(minutes=1))
    world.publish_and_wait(
        EvidenceRejected(
            submission_id=str(uuid.uuid4()),
            unit_id=on_digest,
            filename="a.txt",
            reason_code="unsupported_media_type",
            reason="不支持的文件类型",
        )
    )
    world.publish_and_wait(returned(per_event, "宣传展板"))
    run_loop(world)
    [immediate] = smtp.wait_for(1, timeout=30)
    assert immediate.rcpt_tos == ["zhou.jie@example.org"]  # the other unit is told at once
    summary = world.client.get("/deliveries/summary", params={"unit_id": on_digest}).json()
    assert summary["waiting_for_digest"] == 3 and summary["queued"] == summary["sent"] == 0

    assert assemble_due(ctx=world.ctx) == 0  # 10:00: too early
    clock.advance(timedelta(hours=7, minutes=59))  # 18:00 in Beijing
    assert assemble_due(ctx=world.ctx) == 1
    assert assemble_due(ctx=world.ctx) == 0  # once a day
    run_loop(world)
    digest = smtp.wait_for(2, timeout=30)[1]
    assert digest.rcpt_tos == ["li.ming@example.org"]
    assert digest.message["Subject"] == "【每日汇总】相山区信访局：2020年3月12日共3条通知"
    text, html = mail_parts(digest.message)
    assert text.count("李明同志：") == 1 and text.count("此邮件由系统自动发送") == 1
    for line in (
        "1. 【退回修改】相山区信访局：悬挂宣传横幅（2020年3月12日 08:00）",
        "2. 【督办通知】相山区信访局：蓝色电话督办",
        "3. 【佐证资料未接收】相山区信访局：a.txt",
        "审核意见：请补充<现场>照片",
        f"本单位报送情况：{PUBLIC}/console/tasks",
    ):
        assert line in text
    assert "请补充&lt;现场&gt;照片" in html and "<现场>" not in html

    [logged] = world.client.get("/deliveries", params={"event_id": first.event_id}).json()
    assert (
        logged["event_type"] == "digest.digest"
        and logged["status"] == "sent"
        and logged["unit_id"] == on_digest
    )
    assert world.client.get("/digest-items", params={"unit_id": on_digest, "pending": True}).json() == []

    clock.advance(timedelta(hours=1))  # 19:00: after today's digest, so it waits for tomorrow's
    world.publish_and_wait(returned(on_digest, "宣传橱窗"))
    assert assemble_due(ctx=world.ctx) == 0
    clock.advance(timedelta(hours=23))
    assert assemble_due(ctx=world.ctx) == 1
    run_loop(world)
    assert (
        smtp.wait_for(3, timeout=30)[2].message["Subject"]
        == "【每日汇总】相山区信访局：2020年3月13日共1条通知"
    )


def test_back_to_one_mail_per_event(make_world, smtp, clock):
    world = make_world(clock=clock)
    unit_id = world.add_unit()
    assert world.client.put(f"/units/{unit_id}/preferences", json={"digest": True}).json()["digest"] is True
    assert world.client.put(f"/units/{unit_id}/preferences", json={"digest": False}).json()["digest"] is False
    world.publish(returned(unit_id))
    assert smtp.wait_for(1, timeout=30)[0].message["Subject"] == "【退回修改】相山区信访局：悬挂宣传横幅"


def test_reviewers_get_a_daily_digest_of_new_submissions(make_world, smtp, clock):
    reviewers = ("wang.fang@example.org", "zhao.qiang@example.org")
    world = make_world(clock=clock, run_jobs=False, reviewer_emails=reviewers)
    unit_id = world.add_unit("相山区信访局")
    first = SubmissionSubmitted(
        submission_id=str(uuid.uuid4()),
        unit_id=unit_id,
        measure_code="M1",
        title="召开专题会议传达部署",
        version=1,
    )
    event = world.publish_and_wait(first)
    clock.advance(timedelta(minutes=1))
    world.publish_and_wait(
        SubmissionSubmitted(**{**first.model_dump(), "version": 2})
    )  # resubmitted: a new item
    world.publish_and_wait(SubmissionSubmitted(**first.model_dump()))  # the same version again: not twice
    world.publish_and_wait(event)
    clock.advance(timedelta(minutes=1))
    world.publish_and_wait(
        SubmissionSubmitted(
            submission_id=str(uuid.uuid4()),
            unit_id=unit_id,
            measure_code="",
            kind="summary_report",
            title="宣传月活动总结",
            version=1,
        )
    )
    clock.advance(timedelta(hours=10))
    assert assemble_due(ctx=world.ctx) == 2  # one per reviewer
    run_loop(world)
    received = smtp.wait_for(2, timeout=30)
    assert sorted(m.rcpt_tos[0] for m in received) == list(reviewers)
    for mail in received:
        assert mail.message["Subject"] == "【待审核汇总】2020年3月12日新收到3份报送材料"
        text, html = mail_parts(mail.message)
        assert text.startswith("各位审核人员：")
        assert "1. 相山区信访局：召开专题会议传达部署（M1，第1版）" in text
        assert "2. 相山区信访局：召开专题会议传达部署（M1，第2版）" in text
        assert "3. 相山区信访局：宣传月活动总结（活动总结，第1版）" in text
        assert f'href="{PUBLIC}/console/queue#{first.submission_id}"' in html
        assert f"审核队列：{PUBLIC}/console/queue" in text
    assert all(d.unit_id is None for d in world.deliveries())  # nothing went to the liaison


def test_the_digest_hour_is_read_in_the_configured_time_zone(make_world, smtp, clock):
    world = make_world(clock=clock, run_jobs=False, notify_timezone="UTC", notify_digest_hour=18)
    unit_id = world.add_unit()
    world.client.put(f"/units/{unit_id}/preferences", json={"digest": True})
    world.publish_and_wait(
        SubmissionApproved(
            submission_id=str(uuid.uuid4()),
            unit_id=unit_id,
            measure_code="M1",
            title="专题会议",
            version=1,
            reviewer="王芳",
        )
    )
    clock.advance(timedelta(hours=17, minutes=59))
    assert assemble_due(ctx=world.ctx) == 0  # 17:59 UTC (01:59 the next day in Beijing)
    clock.advance(timedelta(minutes=1))
    assert assemble_due(ctx=world.ctx) == 1


def test_preferences_need_a_known_unit_and_a_boolean(world):
    unit_id = world.add_unit()
    assert world.client.get(f"/units/{unit_id}/preferences").json() == {
        "unit_id": unit_id,
        "digest": False,
        "updated_at": None,
    }
    missing = world.client.put("/units/no-such-unit/preferences", json={"digest": True})
    assert missing.status_code == 404
    detail = missing.json()
    assert (
        detail["code"] == "not_found"
        and "单位不存在" in detail["message"]
        and "unit not found" in detail["message_en"]
    )
    assert world.client.get("/units/no-such-unit/preferences").status_code == 404
    assert world.client.put(f"/units/{unit_id}/preferences", json={"digest": "sometimes"}).status_code == 422
    assert (
        world.client.put(f"/units/{unit_id}/preferences", json={"digest": True, "extra": 1}).status_code
        == 422
    )
    assert world.client.get(f"/units/{unit_id}/preferences").json()["digest"] is False
