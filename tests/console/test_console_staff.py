"""The office's pages in a real browser: an inspection from a seeded sampling, a supervision answered by the unit
and closed, the ranking per level, and a circular generated, downloaded and published."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.console.support import DESKTOP, PHONE, login
from tests.flows.steps import ADMIN_PASSWORD


def test_inspection_supervision_and_circular(world, contexts, shots, tmp_path):
    inspector = contexts(**DESKTOP).new_page()
    login(inspector, world, world.users["inspector"])
    form = inspector.locator(".sampling-form")
    form.get_by_label("抽取数量").fill("2")
    form.get_by_label("随机种子").fill("20200321")
    form.get_by_role("button", name="生成抽查方案").click()
    result = inspector.locator(".sampling-result")
    expect(result).to_contain_text("随机种子 20200321")
    expect(result.locator("li")).to_have_count(2)
    drawn = result.locator("li").first.get_attribute("data-unit-id")
    result.locator("li").first.get_by_role("button", name="检查此单位").click()
    record = inspector.locator(".inspection-form")
    expect(record.locator("select[name=unit_id]")).to_have_value(drawn)
    record.locator("input[name=inspected_on]").fill("2020-03-25")
    record.get_by_label("M1 专题会议").check()
    record.get_by_label("M2 网上信访宣传角").check()
    record.get_by_label("询问人数").fill("20")
    record.get_by_label("知晓人数").fill("15")
    record.get_by_label("会使用人数").fill("9")
    record.get_by_label("检查发现").fill("宣传角设置规范，群众知晓率较高。")
    shots(inspector, "inspection-form")
    record.get_by_role("button", name="保存检查记录").click()
    expect(inspector.locator(".inspection-result")).to_contain_text("已保存")
    expect(inspector.locator(".inspection-list tbody tr")).to_have_count(1)
    assert world.admin.get("/review/inspections").json()[0]["sampling_id"]

    reviewer = contexts(**DESKTOP).new_page()
    login(reviewer, world, world.users["reviewer"])
    reviewer.get_by_role("link", name="督办").click()
    reviewer.get_by_role("button", name="发起督办").click()
    opening = reviewer.locator(".open-form")
    opening.get_by_label("单位").select_option(label="相山区信访局")
    opening.get_by_label("等级").select_option("yellow")
    opening.get_by_label("督办事由").fill("宣传横幅未按要求悬挂，请限期整改")
    opening.get_by_role("button", name="发起").click()
    reason = "宣传横幅未按要求悬挂"
    card = reviewer.locator(
        ".col-yellow .supervision-card", has_text=reason
    )  # a low inspection score may open others
    expect(card).to_have_count(1)
    expect(card).to_contain_text("相山区信访局")
    shots(reviewer, "supervision-board")

    liaison = contexts(**PHONE).new_page()
    login(liaison, world, world.users["unit"])
    liaison.goto(world.page_url("/notices"))
    notice = liaison.locator(".supervision-card", has_text=reason)
    expect(notice).to_have_attribute("data-level", "yellow")
    notice.get_by_label("整改情况").fill("已在广场、路口补挂横幅 6 条，并附照片。")
    notice.get_by_role("button", name="提交反馈").click()
    expect(notice).to_have_attribute("data-state", "responded")
    shots(liaison, "notice-answered")

    reviewer.reload()
    expect(card).to_have_attribute("data-state", "responded")
    expect(card).to_contain_text("已在广场、路口补挂横幅")
    card.get_by_role("button", name="办结").click()
    card.get_by_label("办结意见").fill("整改到位，予以办结")
    card.get_by_role("button", name="确认办结").click()
    expect(card).to_have_count(0)  # the board shows the cases not yet closed
    reviewer.locator(".state-filter").select_option("closed")
    expect(card).to_have_attribute("data-state", "closed")

    admin = contexts(**DESKTOP).new_page()
    admin.goto(world.page_url("/login"))
    admin.get_by_label("用户名").fill("flow-admin")
    admin.get_by_label("密码").fill(ADMIN_PASSWORD)
    admin.get_by_role("button", name="登录").click()
    admin.wait_for_url(re.compile(r".*/console/dashboard$"))
    admin.get_by_role("link", name="考核排名").click()
    expect(admin.locator(".ranking")).to_have_count(2)  # 县（区） and 市直单位
    expect(admin.locator('.ranking[data-level="county"] h2')).to_have_text("县（区）排名")
    expect(admin.locator('.ranking[data-level="county"] tbody tr[data-unit]')).to_have_count(4)
    shots(admin, "ranking")
    admin.get_by_label("期别").fill("2020-Q1")
    admin.get_by_role("button", name="生成通报").click()
    circular = admin.locator(".circular")
    expect(circular).to_have_count(1, timeout=20000)
    expect(circular).to_have_attribute("data-state", "draft")
    with admin.expect_download() as download:
        circular.get_by_role("button", name="下载 Word").click()
    saved = tmp_path / "通报.docx"
    download.value.save_as(saved)
    assert download.value.suggested_filename.endswith(".docx") and saved.read_bytes()[:2] == b"PK"
    with admin.expect_download() as workbook:
        circular.get_by_role("button", name="下载 Excel").click()
    assert workbook.value.suggested_filename.endswith(".xlsx")
    admin.once("dialog", lambda dialog: dialog.accept())
    circular.get_by_role("button", name="发布").click()
    expect(circular).to_have_attribute("data-state", "published")
    shots(admin, "circular-published")
