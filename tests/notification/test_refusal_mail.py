"""Refused uploads reach a liaison at most once an hour per unit, listed in one mail; filenames in subjects are
shortened and cannot break the header."""

from __future__ import annotations

import uuid
from datetime import timedelta

from services.notification.contexts import short_filename
from services.notification.refusal_digest import send_due
from shared.contracts.evidence import EvidenceRejected
from tests.helpers import mail_parts
from tests.notification.conftest import run_loop


def refused(unit_id: str, filename: str) -> EvidenceRejected:
    return EvidenceRejected(
        submission_id=str(uuid.uuid4()),
        unit_id=unit_id,
        filename=filename,
        reason_code="unsupported_media_type",
        reason="不支持的文件类型",
    )


def test_sixteen_refusals_make_two_mails_an_hour_apart_and_units_are_counted_apart(make_world, smtp, clock):
    world = make_world(clock=clock, run_jobs=False)
    flooded = world.add_unit("相山区信访局", email="li.ming@example.org")
    other = world.add_unit("杜集区信访局", email="zhou.jie@example.org")
    world.publish_and_wait(refused(flooded, "第1张.jpg"))
    world.publish_and_wait(refused(other, "展板.jpg"))
    assert send_due(ctx=world.ctx) == 2  # the first refusal of each unit goes out at once
    for n in range(2, 17):
        clock.advance(timedelta(minutes=2))
        world.publish_and_wait(refused(flooded, f"第{n}张.jpg"))
        assert send_due(ctx=world.ctx) == 0  # within the hour: held
    run_loop(world)
    first, other_mail = sorted(smtp.wait_for(2, timeout=30), key=lambda m: m.rcpt_tos)
    assert first.message["Subject"] == "【佐证资料未接收】相山区信访局：第1张.jpg"
    assert other_mail.rcpt_tos == ["zhou.jie@example.org"]
    clock.advance(timedelta(minutes=30))  # an hour after the first mail
    assert send_due(ctx=world.ctx) == 1
    assert send_due(ctx=world.ctx) == 0
    run_loop(world)
    digest = smtp.wait_for(3, timeout=30)[2]
    assert digest.rcpt_tos == ["li.ming@example.org"]
    assert digest.message["Subject"] == "【佐证资料未接收】相山区信访局：15 个文件未被接收"
    text, _html = mail_parts(digest.message)
    assert "1. 第2张.jpg" in text and "15. 第16张.jpg" in text and text.count("原因：不支持的文件类型") == 15
    assert "每小时最多发送一封" in text
    assert len(world.deliveries()) == 3


def test_a_hostile_filename_is_shortened_and_cleaned_in_the_subject(make_world, smtp, clock):
    world = make_world(clock=clock, run_jobs=False)
    unit = world.add_unit("相山区信访局", email="li.ming@example.org")
    hostile = "报告\r\nBcc: victim@example.org\u202egpj.exe" + "很长的文件名" * 30 + ".pdf"
    world.publish_and_wait(refused(unit, hostile))
    assert send_due(ctx=world.ctx) == 1
    run_loop(world)
    [mail] = smtp.wait_for(1, timeout=30)
    subject = mail.message["Subject"]
    assert mail.rcpt_tos == ["li.ming@example.org"] and mail.message["Bcc"] is None
    assert "\u202e" not in subject and "\n" not in subject and subject.endswith("…")
    assert len(subject) <= len("【佐证资料未接收】相山区信访局：") + 40


def test_short_filename_rules():
    assert short_filename("会议照片.jpg") == "会议照片.jpg"
    assert short_filename("a\x00b\tc\u200fd") == "a b c d"
    assert short_filename("") == "（无文件名）"
    assert short_filename("x" * 100) == "x" * 39 + "…"
