"""Each consumed event becomes one Chinese e-mail to the unit's liaison, received by a real SMTP server
and checked as MIME: subject, recipient, both parts, links, Chinese text intact."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from shared.contracts.evidence import EvidenceRejected
from shared.contracts.intake import (
    CampaignPublished,
    DeadlineApproaching,
    DeadlineInfo,
    DeadlineMissed,
    MeasureInfo,
    ReferenceMaterialInfo,
)
from shared.contracts.review import (
    CircularPublished,
    InspectionRecorded,
    SubmissionApproved,
    SubmissionRejected,
    SubmissionReturned,
    SupervisionClosed,
    SupervisionEscalated,
    SupervisionOpened,
)
from tests.helpers import mail_parts, wait_until
from tests.notification.conftest import PUBLIC

UNIT = "相山区信访局"
CAMPAIGN = str(uuid.uuid4())
SUBMISSION = str(uuid.uuid4())
DUE = datetime(2020, 4, 5, 10, 0, tzinfo=UTC)  # 18:00 in Beijing


def campaign(version: int = 1) -> CampaignPublished:
    """The seed's campaign as data (invented organiser details)."""
    return CampaignPublished(
        campaign_id=CAMPAIGN,
        code="wsxf-2020",
        name="网上信访宣传月",
        version=version,
        organiser="市信访局",
        publicity_start=date(2020, 3, 9),
        publicity_end=date(2099, 3, 31),
        measures=[MeasureInfo(code="M1", name="召开专题会议"), MeasureInfo(code="M5", name="悬挂宣传横幅")],
        deadlines=[DeadlineInfo(code="summary", name="活动总结报送", due_at=DUE)],
        reference_materials=[
            ReferenceMaterialInfo(code="A1", title="附件1：网上信访宣传标语参考资料", url="/files/a1.pdf"),
            ReferenceMaterialInfo(code="A2", title="附件2：网上信访宣传单参考资料之一"),
        ],
    )


def decision(model, **extra):
    """A decision on the table's submission, for the unit filled in later."""
    return model(
        submission_id=SUBMISSION,
        unit_id="{unit}",
        measure_code="M5",
        title="悬挂宣传横幅",
        version=1,
        reviewer="王芳",
        **extra,
    )


def supervision(model, level: str, **extra):
    """A supervision event of the table's case at a level, for the unit filled in later."""
    return model(
        supervision_id="sv-1",
        unit_id="{unit}",
        campaign_id=CAMPAIGN,
        level=level,
        method="interview",
        reason="宣传工作不重视，横幅未悬挂",
        rectify_by=DUE,
        **extra,
    )


CASES = {
    "campaign.published": (
        lambda: campaign(),
        "【活动通知】网上信访宣传月",
        [
            "市信访局发布了“网上信访宣传月”活动方案",
            "M5 悬挂宣传横幅",
            "活动总结报送：2020年4月5日 18:00前",
            f"活动方案：{PUBLIC}/console/campaigns/{CAMPAIGN}",
            f"附件1：网上信访宣传标语参考资料：{PUBLIC}/files/a1.pdf",
            f"附件2：网上信访宣传单参考资料之一：{PUBLIC}/console/campaigns/{CAMPAIGN}#materials",
        ],
        [f'href="{PUBLIC}/console/campaigns/{CAMPAIGN}"', f'href="{PUBLIC}/files/a1.pdf"'],
    ),
    "evidence.rejected": (
        lambda: EvidenceRejected(
            submission_id=SUBMISSION,
            unit_id="{unit}",
            filename="横幅.jpg",
            reason_code="unsupported_media_type",
            reason="不支持的文件类型",
        ),
        f"【佐证资料未接收】{UNIT}：横幅.jpg",
        [
            "贵单位上传的佐证资料“横幅.jpg”未被接收",
            "原因：不支持的文件类型",
            f"{PUBLIC}/console/submissions/{SUBMISSION}#upload",
        ],
        ["未被接收", f'href="{PUBLIC}/console/submissions/{SUBMISSION}#upload"'],
    ),
    "submission.approved": (
        lambda: decision(SubmissionApproved, score=95),
        f"【审核通过】{UNIT}：悬挂宣传横幅",
        ["已审核通过，得分 95", "审核人：王芳"],
        ["已审核通过", f'href="{PUBLIC}/console/submissions/{SUBMISSION}"'],
    ),
    "submission.returned": (
        lambda: decision(SubmissionReturned, comment="请补充横幅现场照片"),
        f"【退回修改】{UNIT}：悬挂宣传横幅",
        ["被退回修改", "审核意见：请补充横幅现场照片"],
        ["审核意见：请补充横幅现场照片"],
    ),
    "submission.rejected": (
        lambda: decision(SubmissionRejected, comment="与宣传月无关"),
        f"【未予通过】{UNIT}：悬挂宣传横幅",
        ["未予通过", "审核意见：与宣传月无关"],
        ["未予通过"],
    ),
    "deadline.approaching": (
        lambda: DeadlineApproaching(
            campaign_id=CAMPAIGN,
            deadline_code="summary",
            deadline_name="活动总结报送",
            due_at=DUE,
            unit_id="{unit}",
            missing=["活动总结（含视频或照片）", "M7 巡回宣讲"],
            lead="P3D",
        ),
        f"【截止提醒】{UNIT}：活动总结报送将于2020年4月5日 18:00截止",
        ["（还有3天）", "· 活动总结（含视频或照片）", "· M7 巡回宣讲", f"报送入口：{PUBLIC}/console/tasks"],
        ["<li>M7 巡回宣讲</li>", f'href="{PUBLIC}/console/tasks'],
    ),
    "deadline.missed": (
        lambda: DeadlineMissed(
            campaign_id=CAMPAIGN,
            deadline_code="summary",
            deadline_name="活动总结报送",
            due_at=DUE,
            unit_id="{unit}",
            missing=["活动总结（含视频或照片）"],
        ),
        f"【逾期提醒】{UNIT}：活动总结报送已逾期",
        ["已于2020年4月5日 18:00截止", "请尽快补报", "· 活动总结（含视频或照片）"],
        ["<li>活动总结（含视频或照片）</li>"],
    ),
    "supervision.opened": (
        lambda: supervision(SupervisionOpened, "yellow"),
        f"【督办通知】{UNIT}：黄色约谈督办",
        [
            "被列为黄色督办对象，督办方式：约谈督办",
            "督办事由：宣传工作不重视，横幅未悬挂",
            "整改期限：2020年4月5日 18:00前",
        ],
        [f'href="{PUBLIC}/console/supervisions/sv-1"'],
    ),
    "supervision.escalated": (
        lambda: supervision(SupervisionEscalated, "red"),
        f"【督办升级】{UNIT}：红色约谈督办",
        ["督办已升级为红色督办"],
        ["红色督办"],
    ),
    "supervision.closed": (
        lambda: supervision(SupervisionClosed, "red", outcome="已完成整改"),
        f"【督办办结】{UNIT}：红色约谈督办",
        ["红色督办已办结", "办结情况：已完成整改"],
        ["已办结"],
    ),
    "inspection.recorded": (
        lambda: InspectionRecorded(
            inspection_id="in-1",
            unit_id="{unit}",
            method="on_site",
            inspected_on=date(2020, 3, 23),
            inspector="钱进",
            measures_verified=["M1", "M2"],
            residents_asked=20,
            residents_aware=15,
            residents_able=9,
            staff_tested=6,
            staff_proficient=5,
            findings="宣传角资料齐全",
        ),
        f"【检查情况】{UNIT}：2020年3月23日实地检查",
        [
            "钱进于2020年3月23日对贵单位",
            "已核实的宣传措施：M1、M2",
            "抽查群众 20 人，知晓网上渠道 15 人，会使用 9 人",
            "检查发现：宣传角资料齐全",
        ],
        [f'href="{PUBLIC}/console/inspections/in-1"'],
    ),
    "circular.published": (
        lambda: CircularPublished(
            circular_id="c-1",
            campaign_id=CAMPAIGN,
            period="2020Q1",
            title="第一季度网上信访工作情况通报",
            docx_key="c/q1.docx",
            xlsx_key="c/q1.xlsx",
            snapshot_sha256="0" * 64,
        ),
        "【通报】第一季度网上信访工作情况通报",
        ["“第一季度网上信访工作情况通报”（2020Q1）已印发", f"{PUBLIC}/console/circulars/c-1"],
        [f'href="{PUBLIC}/console/circulars/c-1"'],
    ),
}


def with_unit(payload, unit_id: str):
    """The payload with the test's unit filled in where the table says {unit}."""
    return (
        payload.model_copy(update={"unit_id": unit_id})
        if getattr(payload, "unit_id", None) == "{unit}"
        else payload
    )


@pytest.mark.parametrize("event_type", list(CASES))
def test_event_becomes_one_chinese_mail(world, smtp, event_type):
    build, subject, text_snippets, html_snippets = CASES[event_type]
    unit_id = world.add_unit(UNIT, email="li.ming@example.org")
    event = world.publish(with_unit(build(), unit_id))
    assert event.type == event_type

    [received] = smtp.wait_for(1, timeout=30)
    message = received.message
    assert received.rcpt_tos == ["li.ming@example.org"]
    assert message["Subject"] == subject
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("李明", "li.ming@example.org")
    assert message.get_content_type() == "multipart/alternative"
    text, html = mail_parts(message)
    assert text.startswith("李明同志：") and "此邮件由系统自动发送" in text
    assert html.startswith("<!doctype html>") and "<p>李明同志：</p>" in html
    for snippet in text_snippets:
        assert snippet in text
    for snippet in html_snippets:
        assert snippet in html

    [delivery] = wait_until(lambda: world.deliveries(status="sent"), what="the delivery to be logged as sent")
    assert (delivery.event_id, delivery.event_type, delivery.unit_id, delivery.attempts) == (
        event.event_id,
        event_type,
        unit_id,
        1,
    )


def test_the_same_notice_twice_is_one_mail(world, smtp):
    unit_id = world.add_unit()
    first = world.publish(
        SupervisionOpened(
            supervision_id="sv-9", unit_id=unit_id, level="blue", method="phone", reason="进度滞后"
        )
    )
    world.publish(first)  # redelivery: the inbox drops it
    world.publish(
        SupervisionOpened(**first.payload)
    )  # the same notice under a new event id: the dedupe key drops it
    world.add_unit("marker")  # one queue, in order: once this is consumed, so are the three before it
    smtp.wait_for(1, timeout=30)
    wait_until(lambda: world.deliveries(status="sent"), what="the delivery to be sent")
    assert len(world.deliveries()) == 1 and len(smtp.messages) == 1


def test_escalation_is_told_once_per_level(world, smtp):
    unit_id = world.add_unit()
    for level in ("yellow", "red", "red"):
        world.publish_and_wait(
            SupervisionEscalated(
                supervision_id="sv-2", unit_id=unit_id, level=level, method="on_site", reason="整改不到位"
            )
        )
    smtp.wait_for(2, timeout=30)
    wait_until(lambda: len(world.deliveries(status="sent")) == 2, what="both escalations to be sent")
    assert sorted(m.message["Subject"] for m in smtp.messages) == [
        "【督办升级】相山区信访局：红色实地督办",
        "【督办升级】相山区信访局：黄色实地督办",
    ]


def test_campaign_goes_to_every_liaison_once_per_version_and_reaches_late_liaisons(world, smtp):
    units = {
        world.add_unit(name, email=f"{code}@example.org"): code
        for name, code in (("相山区信访局", "xs"), ("杜集区信访局", "dj"))
    }
    world.publish_and_wait(campaign())
    world.publish_and_wait(campaign())  # the same version published again: nobody is told twice
    smtp.wait_for(2, timeout=30)
    late = world.add_unit("烈山区信访局", email="ls@example.org")  # designated after publication
    smtp.wait_for(3, timeout=30)
    world.publish_and_wait(campaign(version=2))
    received = smtp.wait_for(6, timeout=30)
    wait_until(lambda: len(world.deliveries(status="sent")) == 6, what="six deliveries to be sent")

    by_address = {}
    for mail in received:
        by_address.setdefault(mail.rcpt_tos[0], []).append(mail.message["Subject"])
    assert by_address == {
        f"{code}@example.org": ["【活动通知】网上信访宣传月", "【活动更新】网上信访宣传月（第2版）"]
        for code in ("xs", "dj", "ls")
    }
    keys = sorted(d.dedupe_key for d in world.deliveries())
    assert keys == sorted(
        f"campaign.published:{CAMPAIGN}:v{v}:{unit}" for v in (1, 2) for unit in [*units, late]
    )


def test_a_superseded_campaign_version_is_not_mailed(world, smtp):
    world.add_unit()
    world.publish_and_wait(campaign(version=3))
    world.publish_and_wait(campaign(version=2))
    smtp.wait_for(1, timeout=30)
    wait_until(lambda: world.deliveries(status="sent"), what="the delivery to be sent")
    assert [d.subject for d in world.deliveries()] == ["【活动更新】网上信访宣传月（第3版）"]


def test_liaison_reminder_goes_to_the_office_for_a_unit_without_liaison(make_world, smtp):
    world = make_world(notify_office_email="office@example.org", notify_office_name="宣传月办公室")
    unit_id = world.add_unit("烈山区信访局", liaison=None)
    reminder = DeadlineApproaching(
        campaign_id=CAMPAIGN,
        deadline_code="liaison",
        deadline_name="明确联络员",
        due_at=datetime(2020, 3, 12, 10, 0, tzinfo=UTC),
        unit_id=unit_id,
        lead="P1D",
    )
    world.publish_and_wait(reminder)
    world.publish_and_wait(DeadlineMissed(**{**reminder.model_dump(), "missing": ["联络员"]}))
    received = smtp.wait_for(2, timeout=30)
    assert [m.rcpt_tos for m in received] == [["office@example.org"], ["office@example.org"]]
    subjects = [m.message["Subject"] for m in received]
    assert subjects == [
        "【联络员未明确】烈山区信访局：明确联络员将于2020年3月12日 18:00截止",
        "【联络员未明确】烈山区信访局：明确联络员已逾期",
    ]
    text, html = mail_parts(received[0].message)
    assert (
        text.startswith("宣传月办公室：")
        and "烈山区信访局尚未明确联络员" in text
        and "（提前1天提醒）" in text
    )
    assert f'href="{PUBLIC}/console/units/{unit_id}"' in html
    assert all(d.unit_id == unit_id for d in world.deliveries())


def test_liaison_reminder_goes_to_the_liaison_when_one_is_known(world, smtp):
    unit_id = world.add_unit(email="li.ming@example.org")
    world.publish(
        DeadlineMissed(
            campaign_id=CAMPAIGN,
            deadline_code="liaison_designation",
            deadline_name="明确联络员",
            due_at=datetime(2020, 3, 12, 10, 0, tzinfo=UTC),
            unit_id=unit_id,
        )
    )
    [received] = smtp.wait_for(1, timeout=30)
    assert received.rcpt_tos == ["li.ming@example.org"]
    assert received.message["Subject"] == "【联络员确认提醒】相山区信访局：明确联络员已逾期"


def test_submission_receipt_is_sent_when_enabled(make_world, smtp):
    from shared.contracts.intake import SubmissionSubmitted

    world = make_world(notify_submission_receipts=True)
    unit_id = world.add_unit(email="li.ming@example.org")
    world.publish(
        SubmissionSubmitted(
            submission_id=SUBMISSION,
            unit_id=unit_id,
            measure_code="M1",
            title="召开专题会议传达部署",
            version=2,
        )
    )
    [received] = smtp.wait_for(1, timeout=30)
    assert received.message["Subject"] == "【材料已收到】相山区信访局：召开专题会议传达部署"
    text, html = mail_parts(received.message)
    assert (
        "（宣传措施材料，宣传措施 M1，第 2 版）" in text
        and f"{PUBLIC}/console/submissions/{SUBMISSION}" in text
    )
    assert "将尽快安排审核" in html


def test_submissions_send_no_receipt_by_default(world, smtp):
    from shared.contracts.intake import SubmissionSubmitted

    unit_id = world.add_unit()
    # Neither receipts nor reviewers' digests: the service does not even consume submission.submitted.
    submitted = world.publish(
        SubmissionSubmitted(
            submission_id=SUBMISSION,
            unit_id=unit_id,
            measure_code="M1",
            title="召开专题会议传达部署",
            version=1,
        )
    )
    world.publish_and_wait(
        SubmissionApproved(
            submission_id=SUBMISSION,
            unit_id=unit_id,
            measure_code="M1",
            title="召开专题会议传达部署",
            version=1,
            reviewer="王芳",
        )
    )
    assert not world.consumed(submitted)
    [received] = smtp.wait_for(1, timeout=30)
    assert received.message["Subject"].startswith("【审核通过】")
    assert [d.event_type for d in world.deliveries()] == ["submission.approved"]
    assert not world.consumed(submitted)


def test_event_that_arrives_before_the_liaison_is_mailed_once_the_liaison_is_known(world, smtp):
    unit_id = str(uuid.uuid4())
    event = world.publish(
        SubmissionApproved(
            submission_id=SUBMISSION,
            unit_id=unit_id,
            measure_code="M1",
            title="专题会议",
            version=1,
            reviewer="王芳",
        )
    )
    from shared.contracts.intake import LiaisonDesignated

    # no liaison yet: the notice is held (not retried and parked); the designation tells it
    world.publish(
        LiaisonDesignated(
            unit_id=unit_id,
            unit_code="X1",
            unit_name="濉溪县信访局",
            liaison_name="张华",
            liaison_email="zhang.hua@example.org",
        )
    )
    [received] = smtp.wait_for(1, timeout=30)
    assert received.message["Subject"] == "【审核通过】濉溪县信访局：专题会议"
    assert world.consumed(event)


def test_notices_for_a_unit_without_a_liaison_wait_however_long_it_takes(world, smtp):
    from sqlalchemy import select

    from services.notification.models import HeldNotice
    from shared.contracts.intake import LiaisonDesignated
    from shared.contracts.review import SupervisionOpened

    unit_id = str(uuid.uuid4())
    opened = SupervisionOpened(
        supervision_id="sv-1", unit_id=unit_id, level="red", method="phone", reason="逾期未报送联络员"
    )
    world.publish_and_wait(opened)
    world.publish_and_wait(opened)  # the same notice again (a new event): held too, told once
    with world.ctx.db.session() as uow:
        held = uow.scalars(select(HeldNotice)).all()
    assert [(h.unit_id, h.envelope["type"]) for h in held] == [(unit_id, "supervision.opened")] * 2
    assert world.deliveries() == []
    world.publish_and_wait(
        LiaisonDesignated(
            unit_id=unit_id,
            unit_code="X2",
            unit_name="市交通运输局",
            liaison_name="周敏",
            liaison_email="zhou.min@example.org",
        )
    )
    [received] = smtp.wait_for(1, timeout=30)
    assert "督办" in received.message["Subject"] and received.message["To"].endswith("<zhou.min@example.org>")
    with world.ctx.db.session() as uow:
        assert uow.scalars(select(HeldNotice)).all() == []
    assert [d.event_type for d in world.deliveries()] == ["supervision.opened"]
