"""Templates: every family renders in Chinese with both parts; rendering is safe (no header injection,
user text escaped in HTML); admins override templates from a folder or through the API, checked first."""

from __future__ import annotations

import uuid

import pytest

from services.notification.links import Links
from services.notification.render import FAMILIES, TemplateOptions, render, template_names
from services.notification.samples import sample_context
from shared.contracts.intake import LiaisonDesignated
from shared.contracts.review import SubmissionApproved, SubmissionReturned
from tests.helpers import mail_parts, wait_until
from tests.notification.conftest import PUBLIC


def approved(unit_id: str, *, title: str = "召开专题会议传达部署", version: int = 1) -> SubmissionApproved:
    """An approval of a submission of the unit (a fresh one unless told)."""
    return SubmissionApproved(
        submission_id=str(uuid.uuid4()),
        unit_id=unit_id,
        measure_code="M1",
        title=title,
        version=version,
        reviewer="王芳",
        score=90,
    )


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("in_digest", [False, True])
def test_every_family_renders_chinese_text_and_html(family, in_digest):
    context = {
        **sample_context(family, links=Links(PUBLIC), office="宣传月活动办公室"),
        "in_digest": in_digest,
    }
    mail = render(family, context, options=TemplateOptions())
    assert mail.subject and "\n" not in mail.subject and mail.subject.startswith("【")
    assert (
        "此邮件由系统自动发送" in mail.text
    ) is not in_digest  # a digest item carries no greeting or signature
    assert (
        mail.html.startswith("<!doctype html>") and "</html>" in mail.html and "宣传月活动办公室" in mail.html
    )
    assert PUBLIC in mail.text and f'href="{PUBLIC}' in mail.html


def test_names_and_titles_cannot_inject_headers(world, smtp):
    unit_id = str(uuid.uuid4())
    world.publish_and_wait(
        LiaisonDesignated(
            unit_id=unit_id,
            unit_code="X1",
            unit_name="相山区信访局\r\nBcc: evil@example.org",
            liaison_name="李明\r\nBcc: evil@example.org",
            liaison_email="li.ming@example.org",
        )
    )
    world.publish(approved(unit_id, title="横幅\r\nBcc: evil@example.org\r\n\r\n伪造正文"))
    [received] = smtp.wait_for(1, timeout=30)
    assert received.rcpt_tos == ["li.ming@example.org"]
    message = received.message
    assert message["Bcc"] is None
    assert (
        message["Subject"]
        == "【审核通过】相山区信访局 Bcc: evil@example.org：横幅 Bcc: evil@example.org 伪造正文"
    )
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("李明 Bcc: evil@example.org", "li.ming@example.org")
    header_block = received.raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert not any(line.lower().startswith("bcc") for line in header_block.split("\r\n"))


def test_an_address_with_a_line_break_fails_without_reaching_the_server(world, smtp):
    unit_id = str(uuid.uuid4())
    world.publish_and_wait(
        LiaisonDesignated(
            unit_id=unit_id,
            unit_code="X1",
            unit_name="相山区信访局",
            liaison_name="李明",
            liaison_email="li.ming@example.org\r\nBcc: evil@example.org",
        )
    )
    world.publish(approved(unit_id))
    [failed] = wait_until(lambda: world.deliveries(status="failed"), what="the delivery to fail")
    assert failed.attempts == 1 and failed.last_error.startswith("invalid address")
    event = wait_until(
        lambda: [e for e in world.observed if e.type == "notification.failed"], what="notification.failed"
    )[0]
    assert event.payload["delivery_id"] == failed.id and event.payload["reason"].startswith("invalid address")
    # only the campaign office's notice of the failure may reach the server, never the injected address
    assert all(m.rcpt_tos == ["campaign-office@example.org"] for m in smtp.messages)


def test_user_text_is_escaped_in_html_and_kept_in_text(world, smtp):
    unit_id = world.add_unit("杜集区<信访局>")
    world.publish(
        SubmissionReturned(
            submission_id=str(uuid.uuid4()),
            unit_id=unit_id,
            measure_code="M1",
            title='横幅 "A&B"',
            version=1,
            reviewer="王芳",
            comment="<script>alert('x')</script>请补充<b>照片</b>",
        )
    )
    [received] = smtp.wait_for(1, timeout=30)
    text, html = mail_parts(received.message)
    assert "审核意见：<script>alert('x')</script>请补充<b>照片</b>" in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;请补充&lt;b&gt;照片&lt;/b&gt;" in html
    assert "<script>" not in html and "杜集区&lt;信访局&gt;" in html and "横幅 &#34;A&amp;B&#34;" in html


def test_a_folder_override_is_used_before_the_packaged_template(make_world, smtp, tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "decision.subject.j2").write_text(
        "【审核结果】{{ unit_name }}：{{ title }}（{{ score }}分）\n", encoding="utf-8"
    )
    world = make_world(notify_template_dir=folder)
    world.publish(approved(world.add_unit()))
    [received] = smtp.wait_for(1, timeout=30)
    assert received.message["Subject"] == "【审核结果】相山区信访局：召开专题会议传达部署（90.0分）"
    assert "已审核通过，得分 90.0" in mail_parts(received.message)[0]  # the other parts stay packaged
    listed = {t["name"]: t["source"] for t in world.client.get("/templates").json()}
    assert listed["decision.subject"] == "folder" and listed["decision.txt"] == "package"


def test_a_broken_folder_override_falls_back_to_the_packaged_template(make_world, smtp, tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "decision.subject.j2").write_text("{{ no_such_name }}", encoding="utf-8")
    world = make_world(notify_template_dir=folder)
    world.publish(approved(world.add_unit()))
    [received] = smtp.wait_for(1, timeout=30)
    assert received.message["Subject"] == "【审核通过】相山区信访局：召开专题会议传达部署"


def test_admin_overrides_a_template_through_the_api(world, smtp):
    client = world.client
    listed = client.get("/templates").json()
    assert [t["name"] for t in listed] == template_names() and {t["source"] for t in listed} == {"package"}

    text = "【审核结果通知】{{ unit_name }}：{{ title }}"
    saved = client.put("/templates/decision.subject", json={"text": text})
    assert saved.status_code == 200, saved.text
    assert saved.json()["source"] == "database" and saved.json()["text"] == text
    assert "【审核通过】" in saved.json()["default_text"]
    assert (
        client.get("/templates/decision/preview").json()["subject"]
        == "【审核结果通知】示例区信访局：召开专题会议传达部署"
    )

    unit_id = world.add_unit()
    world.publish(approved(unit_id))
    assert (
        smtp.wait_for(1, timeout=30)[0].message["Subject"]
        == "【审核结果通知】相山区信访局：召开专题会议传达部署"
    )

    assert client.delete("/templates/decision.subject").status_code == 204
    assert client.get("/templates/decision.subject").json()["source"] == "package"
    assert client.delete("/templates/decision.subject").status_code == 404
    world.publish(approved(unit_id, version=2))
    assert (
        smtp.wait_for(2, timeout=30)[1].message["Subject"] == "【审核通过】相山区信访局：召开专题会议传达部署"
    )


def test_admin_overrides_the_layout_for_every_family(world):
    text = "{{ greeting }}：\n\n{% block body %}{% endblock %}\n\n—— {{ office }}（自动发送）\n"
    assert world.client.put("/templates/_layout.txt", json={"text": text}).status_code == 200
    preview = world.client.get("/templates/supervision/preview").json()
    assert preview["text"].rstrip().endswith("—— 宣传月活动办公室（自动发送）")


@pytest.mark.parametrize(
    "name,text,code",
    [
        ("decision.subject", "{% if %}", "template_invalid"),  # syntax
        ("decision.txt", "{{ no_such_name }}", "template_invalid"),  # a name the mails do not carry
        (
            "decision.subject",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "template_invalid",
        ),  # the sandbox
        ("decision.subject", "{% if false %}x{% endif %}", "template_invalid"),  # empty subject
        (
            "_layout.html",
            "{% block body %}{% endblock %}{{ missing }}",
            "template_invalid",
        ),  # layouts are checked with every family
        ("decision.html", "<p>{{ comment|safe }}</p>", "template_unsafe"),
        ("decision.html", "{% autoescape false %}<p>{{ comment }}</p>{% endautoescape %}", "template_unsafe"),
    ],
)
def test_a_template_that_fails_is_refused_and_nothing_is_saved(world, name, text, code):
    response = world.client.put(f"/templates/{name}", json={"text": text})
    assert response.status_code == 422, response.text
    detail = response.json()
    assert detail["code"] == code and detail["message"] and detail["message_en"]
    assert any("\u4e00" <= char <= "\u9fff" for char in detail["message"])
    assert world.client.get(f"/templates/{name}").json()["source"] == "package"


def test_unknown_templates_are_404_and_malformed_bodies_422(world):
    assert world.client.get("/templates/nope.subject").json()["code"] == "not_found"
    assert world.client.put("/templates/nope.subject", json={"text": "x"}).status_code == 404
    assert world.client.get("/templates/nope/preview").status_code == 404
    assert world.client.put("/templates/decision.subject", json={"text": ""}).status_code == 422
    assert world.client.put("/templates/decision.subject", json={"body": "x"}).status_code == 422


def test_a_file_dropped_into_the_folder_later_is_used_without_a_restart(make_world, smtp, tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    world = make_world(notify_template_dir=folder)
    unit_id = world.add_unit()
    world.publish(approved(unit_id))
    assert (
        smtp.wait_for(1, timeout=30)[0].message["Subject"] == "【审核通过】相山区信访局：召开专题会议传达部署"
    )
    (folder / "decision.subject.j2").write_text("【审核结果】{{ title }}", encoding="utf-8")
    world.publish(approved(unit_id, version=2))
    assert smtp.wait_for(2, timeout=30)[1].message["Subject"] == "【审核结果】召开专题会议传达部署"
    (folder / "decision.subject.j2").write_text("【审核结果（新）】{{ title }}", encoding="utf-8")
    world.publish(approved(unit_id, version=3))
    assert smtp.wait_for(3, timeout=30)[2].message["Subject"] == "【审核结果（新）】召开专题会议传达部署"


def test_a_parsed_recipient_is_remembered_and_a_malformed_one_refused_every_time():
    from services.notification.render import parse_recipient

    parse_recipient.cache_clear()
    assert parse_recipient("李明 <li.ming@example.org>") == ("李明", "li.ming@example.org")
    assert parse_recipient("李明 <li.ming@example.org>") == ("李明", "li.ming@example.org")
    assert parse_recipient.cache_info().hits == 1
    for _ in range(2):  # a refusal is never cached into an answer
        with pytest.raises(ValueError, match="invalid recipient"):
            parse_recipient("li.ming@example.org\r\nBcc: evil@example.org")


@pytest.mark.parametrize(
    "sender", ["宣传月办公室 <campaign-office@example.org>", "campaign-office@example.org"]
)
def test_a_built_message_reads_back_as_written_in_lines_mail_servers_take(sender):
    import email
    import email.policy

    from services.notification.render import RenderedMail, build_message

    subject = (
        "【退回修改】" + "相山区信访局：悬挂宣传横幅，请补充现场照片" * 3
    )  # long: folded into encoded words
    text = "李明同志：\n请补充<现场>照片。\n" + "https://example.org/console/" + "x" * 200
    mail = RenderedMail(subject=subject, text=text, html="<p>李明同志：请补充&lt;现场&gt;照片。</p>")
    message = build_message(
        sender=sender,
        recipient='"Li, Ming 李明" <li.ming@example.org>',
        mail=mail,
        message_id="<d-1@example.org>",
    )
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))  # RFC 5322's recommended line length
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == subject
    assert parsed["From"] == sender
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [
        ("Li, Ming 李明", "li.ming@example.org")
    ]
    assert parsed["Message-ID"] == "<d-1@example.org>"
    assert mail_parts(parsed) == (text.replace("\n", "\r\n") + "\r\n", mail.html + "\r\n")  # canonical form
