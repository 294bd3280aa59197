"""The console in a real browser: a liaison uploads two photos from a phone, a reviewer sees what the photos say
(OCR), approves one and returns the other, the liaison reads the comment, and the dashboard's cells change
colour."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from bench.ocr import render
from tests.console.support import DESKTOP, PHONE, login, reload_until

COMMENT = "请补充横幅全景照片，看不清悬挂地点"


def cell(page, unit: str, measure: str):
    """The heat map's cell of a unit (by code) and a measure."""
    return page.locator(f'.heatmap td[data-unit="{unit}"][data-measure="{measure}"]')


def colour_of(page, unit: str, measure: str) -> str:
    """green, yellow or red, as the coverage API coloured the cell."""
    return cell(page, unit, measure).get_attribute("data-colour")


def report(page, world, measure: str, title: str, file) -> str:
    """From 我的任务: open the measure's 报送 form, submit it, drop a photo on the upload zone; returns the submission id."""
    page.goto(world.page_url("/tasks"))
    page.locator(f'article.task[data-measure="{measure}"] a.report').click()
    page.wait_for_url(re.compile(r".*/console/submit\?measure=" + measure))
    expect(page.locator("select[name=measure_code]")).to_have_value(measure)
    page.get_by_label("标题").fill(title)
    page.get_by_label("活动日期").fill("2020-03-16")
    page.get_by_label("地点").fill("相山区人民广场")
    page.get_by_role("button", name="提交，然后上传佐证资料").click()
    page.wait_for_url(re.compile(r".*/console/submissions/[0-9a-f-]+\?new=1"))
    submission_id = page.url.split("/submissions/")[1].split("?")[0]
    page.locator(".drop-zone .file-input").set_input_files(str(file))  # what a drop or a tap on the zone does
    expect(page.locator(".upload-row").last).to_have_attribute("data-state", "done", timeout=20000)
    expect(page.locator(".upload-row .percent").last).to_have_text("100%")
    expect(page.locator(".evidence-grid .tile img.thumb")).to_have_count(1, timeout=15000)
    return submission_id


def test_liaison_uploads_reviewer_decides_liaison_reads_comment_dashboard_changes(
    world, contexts, shots, tmp_path
):
    reviewer = contexts(**DESKTOP).new_page()
    liaison = contexts(**PHONE).new_page()

    login(reviewer, world, world.users["reviewer"])
    expect(reviewer).to_have_url(re.compile(r".*/console/queue"))
    reviewer.get_by_role("link", name="活动看板").click()
    reviewer.wait_for_selector("body[data-loaded]")
    assert colour_of(reviewer, "XSQ", "M3") == "red" and colour_of(reviewer, "XSQ", "M6") == "red"
    expect(cell(reviewer, "XSQ", "M3")).to_have_class(re.compile(r"\bcell-red\b"))
    shots(reviewer, "dashboard-before")

    login(liaison, world, world.users["unit"])
    expect(liaison).to_have_url(re.compile(r".*/console/tasks"))
    expect(liaison.locator('article.task[data-measure="M3"]')).to_have_attribute("data-state", "missing")
    shots(liaison, "liaison-tasks")
    board = tmp_path / "展板.jpg"
    board.write_bytes(render("board", "有事网上说 诉求网上办", seed=3, title="网上信访宣传栏"))
    banner = report(liaison, world, "M3", "制作宣传展板", board)
    shots(liaison, "liaison-uploaded-M3")
    led = tmp_path / "LED屏.jpg"
    led.write_bytes(render("led", "文明交通 安全出行", seed=6))  # a slogan of another campaign
    screen = report(liaison, world, "M6", "LED屏滚动播放网上信访宣传标语", led)
    shots(liaison, "liaison-uploaded-M6")

    reload_until(
        reviewer,
        lambda p: colour_of(p, "XSQ", "M3") == "yellow" and colour_of(p, "XSQ", "M6") == "yellow",
        what="the submitted cells to turn yellow",
    )
    shots(reviewer, "dashboard-submitted")

    reviewer.get_by_role("link", name="审核队列").click()
    reload_until(
        reviewer, lambda p: p.locator(".queue-row").count() == 2, what="both submissions in the queue"
    )
    # the evidence worker reads both photos: the board names the campaign, the LED screen shows something else
    reload_until(
        reviewer,
        lambda p: (
            p.locator(f'.queue-row[data-submission="{banner}"] .badge', has_text="含活动关键词").count() == 1
            and p.locator(f'.queue-row[data-submission="{screen}"] .badge', has_text="未见活动文字").count()
            == 1
        ),
        timeout=60,
        what="both photos read",
    )
    reviewer.locator("select[name=text_finding]").select_option("no_campaign_text")
    expect(reviewer.locator(".queue-row")).to_have_count(1)
    expect(reviewer.locator(f'.queue-row[data-submission="{screen}"]')).to_be_visible()
    shots(reviewer, "queue-no-campaign-text")
    reviewer.locator("select[name=text_finding]").select_option("")
    expect(reviewer.locator(".queue-row")).to_have_count(2)
    reviewer.locator(f'.queue-row[data-submission="{banner}"]').click()
    expect(reviewer.locator(".item-title")).to_have_text("制作宣传展板")
    expect(reviewer.locator(".queue-item .ocr-lines mark").first).to_have_text("网上信访")
    thumb = reviewer.locator(".queue-item .tile img.thumb")
    expect(thumb).to_have_count(1, timeout=15000)
    assert thumb.evaluate("img => img.complete && img.naturalWidth > 0")
    shots(reviewer, "queue-item")
    reviewer.locator(".decision-actions").get_by_role("button", name="通过").click()
    dialog = reviewer.locator(".decision-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("得分（0–100）").fill("90")
    shots(reviewer, "approve-dialog")
    dialog.get_by_role("button", name="确定").click()
    expect(dialog).to_be_hidden()
    expect(reviewer.locator(".toast").first).to_contain_text("已通过：制作宣传展板")

    expect(reviewer.locator(".queue-row")).to_have_count(1)
    reviewer.locator(f'.queue-row[data-submission="{screen}"]').click()
    expect(reviewer.locator(".item-title")).to_have_text("LED屏滚动播放网上信访宣传标语")
    reviewer.locator(".decision-actions").get_by_role("button", name="退回").click()
    dialog.get_by_label("退回意见（必填）").fill(COMMENT)
    shots(reviewer, "return-dialog")
    dialog.get_by_role("button", name="确定").click()
    expect(dialog).to_be_hidden()
    expect(reviewer.locator(".queue-list .empty")).to_be_visible()

    liaison.goto(world.page_url("/submissions"))
    returned = liaison.locator(f'.submission-card[data-submission="{screen}"]')
    reload_until(
        liaison,
        lambda p: returned.get_attribute("data-state") == "returned",
        what="the return to reach intake",
    )
    expect(returned.locator(".review-comment")).to_contain_text(COMMENT)
    expect(liaison.locator(f'.submission-card[data-submission="{banner}"] .state')).to_have_text("已通过")
    shots(liaison, "liaison-sees-comment")
    returned.get_by_role("link").first.click()
    expect(liaison.locator(".review-comment")).to_contain_text(COMMENT)
    expect(liaison.locator(".resubmit-card")).to_be_visible()
    shots(liaison, "liaison-returned-detail")

    reviewer.goto(world.page_url("/dashboard"))
    reload_until(
        reviewer, lambda p: colour_of(p, "XSQ", "M3") == "green", what="the approved cell to turn green"
    )
    expect(cell(reviewer, "XSQ", "M3")).to_have_class(re.compile(r"\bcell-green\b"))
    expect(cell(reviewer, "XSQ", "M6")).to_have_class(re.compile(r"\bcell-red\b"))  # returned, deadline past
    expect(cell(reviewer, "DJQ", "M3")).to_have_class(re.compile(r"\bcell-red\b"))  # another unit: unchanged
    shots(reviewer, "dashboard-after")

    reviewer.get_by_role("link", name="相山区信访局").click()  # drill down into the unit
    expect(reviewer.locator(".page-title")).to_have_text("相山区信访局")
    expect(reviewer.locator(".unit-info")).to_contain_text("李明")
    expect(reviewer.locator(".unit-submissions tbody tr")).to_have_count(2)
    expect(reviewer.locator('.cell-chip[data-measure="M3"]')).to_have_class(re.compile(r"\bcell-green\b"))
    expect(reviewer.locator('.unit-timeline [data-kind="submission.returned"]')).to_contain_text(COMMENT)
    shots(reviewer, "unit-drill-down")
