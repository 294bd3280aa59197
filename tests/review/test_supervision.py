"""Supervision (督办): the manual lifecycle, scoping, escalation on a fixed clock, and the rules that open cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.review.models import Supervision
from services.review.supervision import use_cases as supervision
from services.review.timeline import chain as timeline
from shared.contracts import make_event
from shared.contracts.intake import DeadlineMissed
from tests.helpers import wait_until
from tests.review.inspection_world import START, CampaignWorld, error, huaibei, ok


@pytest.fixture
def world(tmp_path):
    """The platform with the Huaibei campaign on 2020-03-25 10:00 Beijing time; rules run only when asked."""
    with CampaignWorld(tmp_path) as w:
        yield w


def open_case(world: CampaignWorld, code: str = "XSQ", **overrides) -> dict:
    body = {
        "campaign_id": world.campaign_id,
        "unit_id": world.units[code],
        "level": "blue",
        "method": "phone",
        "reason": "宣传措施落实滞后，宣传角尚未设置",
        **overrides,
    }
    return ok(world.client.post("/review/supervisions", json=body, headers=world.reviewer()), 201)


def run_rules(world: CampaignWorld) -> dict:
    return ok(world.client.post("/review/supervisions/run-rules", headers=world.admin()))


def test_open_respond_close_with_history_timeline_audit_and_events(world):
    case = open_case(world)
    assert (case["rule"], case["state"], case["level"], case["method"], case["opened_by"]) == (
        "manual",
        "open",
        "blue",
        "phone",
        "赵强",
    )
    assert datetime.fromisoformat(case["rectify_by"]) == START + timedelta(
        days=5
    )  # rectify_days defaults to 5
    unit = world.unit("XSQ")
    answered = ok(
        world.client.post(
            f"/review/supervisions/{case['id']}/respond",
            json={"response": "已设置宣传角并补充照片"},
            headers=unit,
        )
    )
    assert (answered["state"], answered["response"], answered["responded_by"]) == (
        "responded",
        "已设置宣传角并补充照片",
        "XSQ联络员",
    )
    again = error(
        world.client.post(
            f"/review/supervisions/{case['id']}/respond", json={"response": "再次答复"}, headers=unit
        ),
        409,
    )
    assert again["code"] == "supervision_not_open"
    closed = ok(
        world.client.post(
            f"/review/supervisions/{case['id']}/close",
            json={"outcome": "整改到位，予以办结"},
            headers=world.reviewer(),
        )
    )
    assert (closed["state"], closed["outcome"], closed["closed_by"]) == (
        "closed",
        "整改到位，予以办结",
        "赵强",
    )
    assert (
        error(
            world.client.post(
                f"/review/supervisions/{case['id']}/close", json={"outcome": "重复"}, headers=world.admin()
            ),
            409,
        )["code"]
        == "supervision_closed"
    )
    detail = ok(world.client.get(f"/review/supervisions/{case['id']}", headers=unit))
    assert [(c["action"], c["actor"], c["note"]) for c in detail["changes"]] == [
        ("opened", "赵强", "宣传措施落实滞后，宣传角尚未设置"),
        ("responded", "XSQ联络员", "已设置宣传角并补充照片"),
        ("closed", "赵强", "整改到位，予以办结"),
    ]
    with world.review.db.session() as uow:
        records = [r for r in timeline.for_unit(uow, world.units["XSQ"]) if r.subject_type == "supervision"]
        assert timeline.verify(uow).ok
    assert [(r.kind, r.subject_id) for r in records] == [
        ("supervision.opened", case["id"]),
        ("supervision.responded", case["id"]),
        ("supervision.closed", case["id"]),
    ]
    assert world.audit_actions(case["id"]) == [
        "supervision.opened",
        "supervision.responded",
        "supervision.closed",
    ]
    assert [p["supervision_id"] for p in world.outbox("supervision.opened")] == [case["id"]]
    assert [p["response"] for p in world.outbox("supervision.responded")] == ["已设置宣传角并补充照片"]
    assert [p["outcome"] for p in world.outbox("supervision.closed")] == ["整改到位，予以办结"]
    world.wait_mail("【督办通知】相山区信访局：蓝色电话督办")
    world.wait_mail("【督办办结】相山区信访局")


def test_roles_and_unit_subtree_scoping(world):
    case = open_case(world, rectify_by="2020-03-28T18:00:00+08:00")
    assert case["rectify_by"].startswith("2020-03-28T10:00:00")  # kept in UTC
    other = world.unit("DJQ")
    assert (
        error(world.client.get(f"/review/supervisions/{case['id']}", headers=other), 404)["code"]
        == "not_found"
    )
    assert (
        world.client.post(
            f"/review/supervisions/{case['id']}/respond", json={"response": "不相干"}, headers=other
        ).status_code
        == 404
    )
    assert ok(world.client.get("/review/supervisions", headers=other)) == []
    assert (
        ok(world.client.get("/review/supervisions", params={"unit_id": world.units["XSQ"]}, headers=other))
        == []
    )
    assert [c["id"] for c in ok(world.client.get("/review/supervisions", headers=world.unit("XSQ")))] == [
        case["id"]
    ]
    assert [c["id"] for c in ok(world.client.get("/review/supervisions", headers=world.unit("HB")))] == [
        case["id"]
    ]
    body = {
        "campaign_id": world.campaign_id,
        "unit_id": world.units["DJQ"],
        "level": "red",
        "method": "interview",
        "reason": "x",
    }
    for caller in (world.unit("XSQ"), world.inspector()):
        assert world.client.post("/review/supervisions", json=body, headers=caller).status_code == 403
    assert (
        world.client.post(
            f"/review/supervisions/{case['id']}/close", json={"outcome": "x"}, headers=world.unit("XSQ")
        ).status_code
        == 403
    )
    assert (
        world.client.post(
            f"/review/supervisions/{case['id']}/respond", json={"response": "x"}, headers=world.reviewer()
        ).status_code
        == 403
    )
    assert world.client.post("/review/supervisions/run-rules", headers=world.reviewer()).status_code == 403
    assert (
        error(
            world.client.post(
                "/review/supervisions",
                json={**body, "rectify_by": "2020-03-01T00:00:00Z"},
                headers=world.reviewer(),
            ),
            422,
        )["code"]
        == "rectify_by_past"
    )
    assert (
        world.client.post(
            "/review/supervisions", json={**body, "level": "orange"}, headers=world.reviewer()
        ).status_code
        == 422
    )
    filtered = lambda **p: [
        c["id"] for c in ok(world.client.get("/review/supervisions", params=p, headers=world.admin()))
    ]
    assert filtered(state="open", level="blue", campaign_id=world.campaign_id) == [case["id"]]
    assert filtered(level="red") == [] and filtered(state="closed") == []


def test_an_overdue_case_escalates_one_step_per_missed_deadline(world):
    case = open_case(world)
    answered = open_case(world, "DJQ")
    ok(
        world.client.post(
            f"/review/supervisions/{answered['id']}/respond",
            json={"response": "已整改"},
            headers=world.unit("DJQ"),
        )
    )
    assert run_rules(world) == {"opened": [], "escalated": []}
    world.clock.advance(timedelta(days=5, hours=1))
    first = run_rules(world)
    [up] = first["escalated"]
    assert (up["id"], up["level"], up["method"], up["escalations"]) == (case["id"], "yellow", "on_site", 1)
    assert datetime.fromisoformat(up["rectify_by"]) == world.clock.now() + timedelta(days=5)
    assert run_rules(world)["escalated"] == []  # once per missed deadline, however often the rules run
    world.clock.advance(timedelta(days=5, hours=1))
    [second] = run_rules(world)["escalated"]
    assert (second["level"], second["method"], second["escalations"]) == ("red", "interview", 2)
    world.clock.advance(timedelta(days=5, hours=1))
    assert run_rules(world)["escalated"] == []  # red and interview: the top
    detail = ok(world.client.get(f"/review/supervisions/{case['id']}", headers=world.admin()))
    assert [(c["action"], c["level"], c["method"], c["actor"]) for c in detail["changes"]] == [
        ("opened", "blue", "phone", "赵强"),
        ("escalated", "yellow", "on_site", "system"),
        ("escalated", "red", "interview", "system"),
    ]
    assert "由蓝色电话督办升级为黄色实地督办" in detail["changes"][1]["note"]
    assert (
        ok(world.client.get(f"/review/supervisions/{answered['id']}", headers=world.admin()))["escalations"]
        == 0
    )
    assert [(p["level"], p["method"]) for p in world.outbox("supervision.escalated")] == [
        ("yellow", "on_site"),
        ("red", "interview"),
    ]
    assert world.audit_actions(case["id"]) == [
        "supervision.opened",
        "supervision.escalated",
        "supervision.escalated",
    ]
    world.wait_mail("【督办升级】", count=2)


def test_no_escalation_when_the_campaign_turns_it_off(tmp_path):
    with CampaignWorld(
        tmp_path, definition=huaibei(supervision={"escalate": False, "rectify_days": 2})
    ) as world:
        case = open_case(world)
        assert datetime.fromisoformat(case["rectify_by"]) == START + timedelta(days=2)
        world.clock.advance(timedelta(days=3))
        assert run_rules(world) == {"opened": [], "escalated": []}


def test_a_returned_submission_left_too_long_opens_one_yellow_case(world):
    def submitted(title: str) -> str:
        created = ok(
            world.client.post(
                "/intake/submissions",
                json={"unit_id": world.units["XSQ"], "measure_code": "M5", "title": title},
                headers=world.admin(),
            ),
            201,
        )
        wait_until(
            lambda: (
                world.client.get(f"/review/submissions/{created['id']}", headers=world.admin()).status_code
                == 200
            ),
            what="review to queue the submission",
        )
        ok(
            world.client.post(
                f"/review/submissions/{created['id']}/return",
                json={"comment": "请补充横幅全景照片"},
                headers=world.reviewer(),
            )
        )
        return created["id"]

    stale, fixed = submitted("悬挂宣传横幅"), submitted("广场宣传横幅")
    wait_until(
        lambda: (
            world.client.get(f"/intake/submissions/{fixed}", headers=world.admin()).json()["state"]
            == "returned"
        ),
        what="intake to learn of the return",
    )
    world.clock.advance(timedelta(days=4, hours=23))
    assert run_rules(world)["opened"] == []  # not yet 5 days
    ok(
        world.client.post(
            f"/intake/submissions/{fixed}/resubmit",
            json={"title": "广场宣传横幅（补充）"},
            headers=world.admin(),
        )
    )
    wait_until(
        lambda: (
            world.client.get(f"/review/submissions/{fixed}", headers=world.admin()).json()["state"]
            == "pending"
        ),
        what="review to queue the new version",
    )
    world.clock.advance(timedelta(hours=2))
    [case] = run_rules(world)["opened"]
    assert (case["rule"], case["subject_id"], case["level"], case["method"], case["unit_id"]) == (
        "returned_stale",
        stale,
        "yellow",
        "phone",
        world.units["XSQ"],
    )
    assert "超过 5 天未重新报送" in case["reason"] and "悬挂宣传横幅" in case["reason"]
    assert run_rules(world)["opened"] == []  # the rule opens its case once
    with world.review.db.session() as uow:
        assert [r.kind for r in timeline.for_submission(uow, stale)][-1] == "supervision.opened"
    assert world.audit_actions(case["id"]) == ["supervision.opened"]


def test_missed_deadlines_open_red_phone_cases_once(tmp_path):
    after_summary = datetime(2020, 4, 6, 2, 0, tzinfo=UTC)  # the summary was due 2020-04-05 (Beijing)
    with CampaignWorld(tmp_path, start=after_summary, deadline_watch_interval_s=0.2) as world:

        def cases():
            with world.review.db.session() as uow:
                return list(uow.scalars(select(Supervision).where(Supervision.rule == "deadline_missed")))

        wait_until(
            lambda: len(cases()) == 16, timeout=30, what="a red case for each of the 16 participating units"
        )
        assert {(c.level, c.method, c.state, c.subject_id) for c in cases()} == {
            ("red", "phone", "open", "summary")
        }
        xsq = next(c for c in cases() if c.unit_id == world.units["XSQ"])
        assert (
            xsq.reason.startswith("逾期未完成“报送活动总结（含视频或照片）”")
            and xsq.rule_key == f"deadline:{world.campaign_id}:{world.units['XSQ']}:summary"
        )
        # the same fact told again (a redelivery or a second watcher) opens nothing new
        event = make_event(
            DeadlineMissed(
                campaign_id=world.campaign_id,
                deadline_code="summary",
                deadline_name="报送活动总结",
                due_at=datetime(2020, 4, 5, 16, 0, tzinfo=UTC),
                unit_id=world.units["XSQ"],
                missing=["活动总结"],
            ),
            producer="intake",
        )
        for _ in range(2):
            with world.review.db.transaction() as uow:
                supervision.on_deadline_missed(event, uow=uow, ctx=world.review)
        with world.review.db.session() as uow:
            assert uow.scalar(select(func.count()).select_from(Supervision)) == 16
        world.wait_mail("【督办通知】", count=16)


def test_a_campaign_may_turn_the_deadline_rule_off(tmp_path):
    text = huaibei(supervision={"deadline_missed": False})
    after_summary = datetime(2020, 4, 6, 2, 0, tzinfo=UTC)
    with CampaignWorld(
        tmp_path, start=after_summary, deadline_watch_interval_s=0.2, definition=text
    ) as world:
        inbox = world.review.messaging.inbox

        def told() -> int:
            with world.review.db.session() as uow:
                return uow.scalar(
                    select(func.count()).select_from(inbox).where(inbox.c.type == "deadline.missed")
                )

        wait_until(lambda: told() == 16, timeout=30, what="review to consume the 16 deadline.missed events")
        with world.review.db.session() as uow:
            assert uow.scalar(select(func.count()).select_from(Supervision)) == 0


def test_concurrent_rule_runs_on_postgresql_escalate_once(tmp_path, postgres_url):
    from concurrent.futures import ThreadPoolExecutor

    with CampaignWorld(tmp_path, database_url=postgres_url) as world:
        case = open_case(world)
        flagged = ok(
            world.client.post(
                "/review/inspections",
                json=world.inspection_body("DJQ", problems=["未设宣传角", "无横幅", "无展板"]),
                headers=world.inspector(),
            ),
            201,
        )
        assert len(flagged["supervision_ids"]) == 1
        world.clock.advance(timedelta(days=6))
        with ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(lambda _: supervision.run_rules(world.review), range(4)))
        escalated = sorted(c.id for run in runs for c in run.escalated)
        assert escalated == sorted([case["id"], flagged["supervision_ids"][0]])
        assert len(world.outbox("supervision.escalated")) == 2
