"""A liaison taps the links in the platform's e-mails, not logged in: 登录 first, then straight to the page."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from tests.console.support import PASSWORD, PHONE, photo
from tests.helpers import mail_parts, read_eml, wait_until


def _mail_link(mail_dir: Path, subject_part: str, page_path: str, public_base: str, served: str) -> str:
    """The console link (to page_path) in the mail whose subject contains subject_part, pointed at the test server."""

    def found():
        for path in sorted(mail_dir.glob("*.eml")):
            message = read_eml(path)
            if subject_part in message["Subject"]:
                text, _ = mail_parts(message)
                match = re.search(rf"{re.escape(public_base)}/console/{page_path}[^\s<\"]*", text)
                if match:
                    return match.group(0)
        return None

    link = wait_until(found, timeout=30, what=f"a mail about {subject_part} linking to /console/{page_path}")
    return served + link.removeprefix(public_base)


def test_mail_links_open_the_console_page_after_login(world, contexts, shots, tmp_path):
    settings = world.platform.contexts["notification"].settings
    unit = world.units["XSQ"]
    liaison = world.client_for(world.users["unit"])
    reviewer = world.client_for(world.users["reviewer"])
    submission = liaison.post(
        "/intake/submissions", json={"unit_id": unit["id"], "measure_code": "M3", "title": "制作宣传展板"}
    ).json()
    wait_until(
        lambda: (
            liaison.post(
                f"/evidence/submissions/{submission['id']}/evidence",
                params={"filename": "展板.jpg"},
                content=photo(tmp_path / "展板.jpg", seed=7).read_bytes(),
                headers={"Content-Type": "application/octet-stream"},
            ).status_code
            == 201
        ),
        what="the evidence service to take the upload",
    )
    wait_until(
        lambda: (
            reviewer.post(f"/review/submissions/{submission['id']}/approve", json={"score": 90}).status_code
            == 200
        ),
        what="the submission to be decidable",
    )
    case = reviewer.post(
        "/review/supervisions",
        json={
            "campaign_id": world.campaign_id,
            "unit_id": unit["id"],
            "level": "yellow",
            "method": "phone",
            "reason": "宣传横幅未按要求悬挂",
        },
    )
    assert case.status_code == 201, case.text

    mail_dir = settings.mail_folder
    decision = _mail_link(mail_dir, "审核通过", "submissions/", settings.public_base_url, world.url)
    supervision = _mail_link(mail_dir, "督办", "supervisions/", settings.public_base_url, world.url)
    assert decision.endswith(f"/console/submissions/{submission['id']}")

    page = contexts(**PHONE).new_page()
    page.goto(decision)  # a fresh phone browser: no token yet
    page.wait_for_url(re.compile(r".*/console/login\?next=.*"))
    shots(page, "mail-link-asks-to-log-in")
    page.get_by_label("用户名").fill(world.users["unit"])
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(decision)  # straight to the submission, not to the role's home
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator(".page-title")).to_have_text("制作宣传展板")
    expect(page.locator(".submission-info .state")).to_have_attribute("data-state", "approved")
    shots(page, "mail-link-submission")

    page.goto(supervision)  # logged in now: the page opens at once
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator(".supervision-info .reason")).to_have_text("宣传横幅未按要求悬挂")
    expect(page.locator(".respond-form")).to_be_visible()  # the liaison answers right there
    shots(page, "mail-link-supervision")
