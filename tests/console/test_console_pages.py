"""Smaller browser checks of the console: role-aware navigation, keyboard and bulk review, resumable uploads."""

from __future__ import annotations

import hashlib
import json
import re

from playwright.sync_api import expect

from tests.console.support import DESKTOP, PASSWORD, PHONE, login, photo, reload_until
from tests.helpers import mp4_bytes, wait_until

UNIT_NAV = ["活动看板", "我的任务", "报送材料", "我的报送", "督办通知"]
REVIEWER_NAV = ["活动看板", "审核队列", "督办", "考核排名"]
INSPECTOR_NAV = ["活动看板", "检查", "督办", "考核排名"]


def submission_with_photo(
    world, measure: str, title: str, path, *, extra: tuple[tuple[str, bytes], ...] = ()
) -> dict:
    """The liaison hands in a submission and uploads one photo (and any extra files) through the APIs."""
    with world.client_for(world.users["unit"]) as unit:
        created = unit.post(
            "/intake/submissions",
            json={"unit_id": world.units["XSQ"]["id"], "measure_code": measure, "title": title},
        )
        assert created.status_code == 201, created.text
        submission = created.json()
        wait_until(
            lambda: unit.get(f"/evidence/submissions/{submission['id']}/evidence").status_code == 200,
            what="evidence_storage to learn of the submission",
        )
        files = ((path.name, path.read_bytes()),) if path is not None else ()
        for name, data in files + extra:
            stored = unit.post(
                f"/evidence/submissions/{submission['id']}/evidence",
                params={"filename": name},
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert stored.status_code == 201, stored.text
    return submission


def nav_texts(page) -> list[str]:
    """The navigation links the page shows, in order."""
    return [text.strip() for text in page.locator(".nav-link").all_inner_texts()]


def test_navigation_follows_the_role(world, contexts, shots):
    liaison = contexts(**PHONE).new_page()
    login(liaison, world, world.users["unit"])
    assert (
        liaison.locator(".nav-link").evaluate_all("links => links.map(a => a.textContent.trim())") == UNIT_NAV
    )
    expect(liaison.get_by_role("link", name="审核队列")).to_have_count(0)
    liaison.get_by_role("button", name="菜单").click()
    expect(liaison.get_by_role("link", name="我的报送")).to_be_visible()
    shots(liaison, "unit-menu-open")

    liaison.goto(world.page_url("/queue"))
    expect(liaison.get_by_role("heading", name="无权访问")).to_be_visible()
    shots(liaison, "unit-denied-queue")

    liaison.get_by_role("button", name="退出").click()
    liaison.wait_for_url(re.compile(r".*/console/login$"))
    assert liaison.evaluate("sessionStorage.getItem('console.token')") is None
    liaison.goto(world.page_url("/submissions"))
    liaison.wait_for_url(re.compile(r".*/console/login\?next=.*submissions"))
    liaison.get_by_label("用户名").fill(world.users["unit"])
    liaison.get_by_label("密码").fill("wrong password!")
    liaison.get_by_role("button", name="登录").click()
    expect(liaison.locator(".form-error")).to_be_visible()
    shots(liaison, "login-failed")
    liaison.get_by_label("密码").fill(PASSWORD)
    liaison.get_by_role("button", name="登录").click()
    liaison.wait_for_url(re.compile(r".*/console/submissions$"))  # back where the liaison wanted to go

    reviewer = contexts(**DESKTOP).new_page()
    login(reviewer, world, world.users["reviewer"])
    assert nav_texts(reviewer) == REVIEWER_NAV
    expect(reviewer.get_by_text("赵强")).to_be_visible()
    expect(reviewer.locator(".who-role")).to_have_text("审核员")
    reviewer.goto(world.page_url("/tasks"))
    expect(reviewer.get_by_role("heading", name="无权访问")).to_be_visible()

    # A route the platform does not serve (yet) shows 暂不可用 instead of breaking the page.
    reviewer.route(
        "**/review/assessment?**",
        lambda route: route.fulfill(
            status=404,
            json={
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "code": "route_not_found",
                "message": "请求的地址不存在",
                "message_en": "no such route",
            },
        ),
    )
    reviewer.goto(world.page_url("/assessment"))
    expect(reviewer.locator(".rankings .unavailable")).to_contain_text("暂不可用")
    expect(reviewer.locator(".circular-list")).not_to_contain_text("暂不可用")
    shots(reviewer, "assessment-unavailable")

    inspector = contexts(**DESKTOP).new_page()
    login(inspector, world, world.users["inspector"])
    assert nav_texts(inspector) == INSPECTOR_NAV
    expect(inspector).to_have_url(re.compile(r".*/console/inspections$"))


def test_keyboard_review_and_bulk_approve(world, contexts, shots, tmp_path):
    first = submission_with_photo(world, "M1", "召开专题会议传达部署", photo(tmp_path / "会议.jpg", seed=1))
    second = submission_with_photo(world, "M4", "发放宣传页", photo(tmp_path / "宣传页.jpg", seed=4))
    page = contexts(**DESKTOP).new_page()
    login(page, world, world.users["reviewer"])
    reload_until(page, lambda p: p.locator(".queue-row").count() == 2, what="both items in the queue")
    selected = page.locator(".queue-row.selected")
    expect(selected).to_have_attribute("data-submission", first["id"])
    expect(page.locator(".shortcuts")).to_contain_text("通过")

    page.keyboard.press("j")
    expect(selected).to_have_attribute("data-submission", second["id"])
    expect(page.locator(".item-title")).to_have_text("发放宣传页")
    page.keyboard.press("k")
    expect(selected).to_have_attribute("data-submission", first["id"])
    expect(page.locator(".item-title")).to_have_text("召开专题会议传达部署")

    page.keyboard.press("c")  # into the comment box: letters typed there are text, not shortcuts
    page.keyboard.type("ja")
    expect(page.locator(".decision-dialog")).to_be_hidden()
    expect(page.locator(".comment-form textarea")).to_have_value("ja")
    page.locator(".comment-form textarea").fill("")
    page.locator(".item-title").click()

    page.keyboard.press("a")
    dialog = page.locator(".decision-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("input[name=score]")).to_be_focused()
    page.keyboard.type("88")
    shots(page, "keyboard-approve")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator(".queue-row")).to_have_count(1)
    expect(selected).to_have_attribute("data-submission", second["id"])
    expect(page.locator(".item-title")).to_have_text("发放宣传页")

    page.keyboard.press("x")
    expect(dialog.locator("textarea[name=comment]")).to_be_focused()
    page.keyboard.type("与宣传月无关")
    page.keyboard.press("Control+Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator(".queue-list .empty")).to_be_visible()

    approved = world.admin.get(f"/review/submissions/{first['id']}").json()
    rejected = world.admin.get(f"/review/submissions/{second['id']}").json()
    assert (approved["state"], approved["score"], approved["decided_by"]) == ("approved", 88, "赵强")
    assert (rejected["state"], rejected["comment"]) == ("rejected", "与宣传月无关")

    video = (("宣传角.mp4", mp4_bytes()),)
    more = [
        submission_with_photo(
            world,
            code,
            f"措施 {code} 落实情况",
            photo(tmp_path / f"{code}.jpg", seed=n),
            extra=video if code == "M2" else (),
        )["id"]
        for n, code in enumerate(("M2", "M5", "M7"))
    ]
    reload_until(page, lambda p: p.locator(".queue-row").count() == 3, what="three more items in the queue")
    expect(page.locator(".item-title")).to_have_text("措施 M2 落实情况")
    player = page.locator('.queue-item .tile[data-kind="video"]')
    expect(player).to_have_count(1, timeout=15000)
    player.get_by_role(
        "button", name="▶ 播放视频"
    ).click()  # the folder store has no presigned URLs: bytes via the token
    expect(player.locator("video")).to_have_attribute("src", re.compile(r"^blob:"))
    page.get_by_label("全选").check()
    expect(page.locator(".bulk-count")).to_have_text("已选 3 条")
    page.get_by_role("button", name="批量通过").click()
    expect(dialog.locator(".decision-title")).to_have_text("批量通过（3 条）")
    dialog.get_by_label("得分（0–100）").fill("95")
    shots(page, "bulk-approve")
    dialog.get_by_role("button", name="确定").click()
    expect(page.locator(".toast", has_text="批量通过")).to_contain_text("成功 3 条")
    expect(page.locator(".queue-list .empty")).to_be_visible()
    for submission_id in more:
        item = world.admin.get(f"/review/submissions/{submission_id}").json()
        assert (item["state"], item["score"]) == ("approved", 95)


def line_down_at(page, offset: int) -> None:
    """Every chunk PUT at offset fails as a dropped connection (until page.unroute)."""
    page.route(
        "**/evidence/upload-sessions/**",
        lambda route: (
            route.abort("connectionreset")
            if route.request.method == "PUT" and f"offset={offset}" in route.request.url
            else route.continue_()
        ),
    )


def test_upload_resumes_after_a_failed_chunk_and_after_a_reload(world, contexts, shots, tmp_path):
    chunk = 32 * 1024
    submission = submission_with_photo(world, "M2", "设置网上信访宣传角", None)
    files = [photo(tmp_path / f"宣传角{n}.jpg", seed=20 + n, noise=True) for n in range(4)]
    assert all(path.stat().st_size > 4 * chunk for path in files)
    context = contexts(**PHONE)
    context.add_init_script(
        f"try {{ localStorage.setItem('console.chunkBytes', '{chunk}'); }} catch (e) {{}}"
    )  # not on about:blank
    page = context.new_page()
    login(page, world, world.users["unit"])
    offsets: list[int] = []
    page.on(
        "request",
        lambda r: (
            offsets.append(int(re.search(r"offset=(\d+)", r.url).group(1)))
            if r.method == "PUT" and "/upload-sessions/" in r.url
            else None
        ),
    )

    # 1. Two files dropped at once; the third chunk of the first one is cut once: it is sent again.
    cut = {"done": False}

    def cut_once(route):
        if route.request.method == "PUT" and f"offset={2 * chunk}" in route.request.url and not cut["done"]:
            cut["done"] = True
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/evidence/upload-sessions/**", cut_once)
    page.goto(world.page_url(f"/submissions/{submission['id']}"))
    page.locator(".drop-zone .file-input").set_input_files([str(files[0]), str(files[1])])
    rows = page.locator(".upload-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-state", "done", timeout=20000)
    expect(rows.nth(1)).to_have_attribute("data-state", "done", timeout=20000)
    assert cut["done"] and offsets.count(2 * chunk) >= 3  # cut once and resent, plus the second file's own
    shots(page, "two-files-uploaded")
    page.unroute("**/evidence/upload-sessions/**")

    # 2. The line goes down after two chunks; the liaison reloads and drops the file again: it goes on from there.
    line_down_at(page, 2 * chunk)
    page.locator(".drop-zone .file-input").set_input_files(str(files[2]))
    expect(page.locator(".upload-row").last.locator(".status")).to_contain_text("网络中断", timeout=20000)
    shots(page, "line-down")
    page.unroute("**/evidence/upload-sessions/**")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    offsets.clear()
    page.locator(".drop-zone .file-input").set_input_files(str(files[2]))
    expect(page.locator(".upload-row").last).to_have_attribute("data-state", "done", timeout=20000)
    assert offsets and offsets[0] == 2 * chunk, offsets  # resumed at the server's offset, not from 0
    expect(page.locator(".evidence-grid .tile")).to_have_count(3, timeout=15000)
    shots(page, "resumed-after-reload")

    # 3. Cut again after two chunks; after the reload the server no longer continues that session (410: expired,
    # or begun before an upgrade changed how sessions store chunks): the file starts again in a new session.
    line_down_at(page, 2 * chunk)
    page.locator(".drop-zone .file-input").set_input_files(str(files[3]))
    expect(page.locator(".upload-row").last.locator(".status")).to_contain_text("网络中断", timeout=20000)
    page.unroute("**/evidence/upload-sessions/**")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    gone = {"done": False}

    def gone_once(route):
        if route.request.method == "PUT" and not gone["done"]:
            gone["done"] = True
            problem = {"code": "session_outdated", "title": "该上传会话已失效", "status": 410}
            route.fulfill(status=410, content_type="application/problem+json", body=json.dumps(problem))
        else:
            route.continue_()

    page.route("**/evidence/upload-sessions/**", gone_once)
    offsets.clear()
    page.locator(".drop-zone .file-input").set_input_files(str(files[3]))
    expect(page.locator(".upload-row").last).to_have_attribute("data-state", "done", timeout=20000)
    assert gone["done"] and offsets[:2] == [2 * chunk, 0], offsets  # refused where it stood, then from 0
    expect(page.locator(".evidence-grid .tile")).to_have_count(4, timeout=15000)
    page.unroute("**/evidence/upload-sessions/**")

    stored = world.admin.get(f"/evidence/submissions/{submission['id']}/evidence").json()
    assert sorted(e["sha256"] for e in stored) == sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    )
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('console.upload:')).length") == 0


def test_dashboard_loads_the_heat_map_one_district_at_a_time(world, contexts, shots):
    # A large campaign (over 400 units) does this by itself; ?by=district asks for it on the small one.
    reviewer = contexts(**DESKTOP).new_page()
    login(reviewer, world, world.users["reviewer"])
    reviewer.goto(world.page_url("/dashboard?by=district"))
    reviewer.wait_for_selector("body[data-loaded]")
    picker = reviewer.locator("select.district-filter")
    expect(picker).to_be_visible()
    options = picker.locator("option").all_inner_texts()
    assert any("相山区信访局" in text for text in options) and any("杜集区信访局" in text for text in options)
    picker.select_option(label=next(text for text in options if "相山区信访局" in text))
    expect(reviewer.locator('.heatmap tbody tr[data-unit="XSQ"]')).to_have_count(1)
    expect(reviewer.locator('.heatmap tbody tr[data-unit="DJQ"]')).to_have_count(0)
    picker.select_option(label=next(text for text in options if "杜集区信访局" in text))
    expect(reviewer.locator('.heatmap tbody tr[data-unit="DJQ"]')).to_have_count(1)
    expect(reviewer.locator('.heatmap tbody tr[data-unit="XSQ"]')).to_have_count(0)
    # the level progress and totals cover the whole campaign, not just the district shown
    expect(reviewer.locator('.level-row[data-level="county"]')).to_contain_text("4 个单位")
    shots(reviewer, "dashboard-by-district")
