"""The console's pages: path, template, title, who may open each, and which appear in the navigation."""

from __future__ import annotations

from dataclasses import dataclass

from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT

STAFF = (ADMIN, REVIEWER, INSPECTOR)
EVERYONE = (ADMIN, REVIEWER, INSPECTOR, UNIT)
ROLE_NAMES = {ADMIN: "管理员", REVIEWER: "审核员", INSPECTOR: "检查员", UNIT: "单位联络员"}


@dataclass(frozen=True)
class Page:
    """One page of the console; roles empty means anyone, logged in or not."""

    name: str
    path: str
    title: str
    roles: tuple[str, ...] = EVERYONE
    nav_roles: tuple[str, ...] = ()  # shown in the navigation to these roles
    script: str | None = None  # static/pages/<script>.js

    @property
    def template(self) -> str:
        """The Jinja2 template that renders the page's skeleton."""
        return f"{self.name}.html.j2"


PAGES: tuple[Page, ...] = (
    Page("home", "/", "首页", script="home"),
    Page("login", "/login", "登录", roles=(), script="login"),
    Page("dashboard", "/dashboard", "活动看板", nav_roles=EVERYONE, script="dashboard"),
    Page("campaign", "/campaigns/{campaign_id}", "活动方案", script="campaign"),
    Page("unit", "/units/{unit_id}", "单位详情", script="unit"),
    Page("queue", "/queue", "审核队列", roles=(ADMIN, REVIEWER), nav_roles=(ADMIN, REVIEWER), script="queue"),
    Page(
        "inspections", "/inspections", "检查", roles=STAFF, nav_roles=(ADMIN, INSPECTOR), script="inspections"
    ),
    Page("inspection", "/inspections/{inspection_id}", "检查记录", script="inspection"),
    Page("supervisions", "/supervisions", "督办", roles=STAFF, nav_roles=STAFF, script="supervisions"),
    Page("supervision", "/supervisions/{supervision_id}", "督办详情", script="supervision"),
    Page("assessment", "/assessment", "考核排名", roles=STAFF, nav_roles=STAFF, script="assessment"),
    Page("circular", "/circulars/{circular_id}", "通报", script="circular"),
    Page("tasks", "/tasks", "我的任务", roles=(UNIT,), nav_roles=(UNIT,), script="tasks"),
    Page("submit", "/submit", "报送材料", roles=(UNIT,), nav_roles=(UNIT,), script="submit"),
    Page("submissions", "/submissions", "我的报送", roles=(UNIT,), nav_roles=(UNIT,), script="submissions"),
    Page("submission", "/submissions/{submission_id}", "报送详情", script="submission"),
    Page("notices", "/notices", "督办通知", roles=(UNIT,), nav_roles=(UNIT,), script="notices"),
    Page("about", "/about", "关于", roles=(), script=None),
)

HOME_BY_ROLE = {ADMIN: "/dashboard", REVIEWER: "/queue", INSPECTOR: "/inspections", UNIT: "/tasks"}
