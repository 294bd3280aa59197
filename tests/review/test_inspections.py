"""Inspections (检查): validation, scoring by the Huaibei rubric, the inspection rule, scoping, events and photos."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.review.timeline import chain as timeline
from tests.flows.steps import submit, upload, wait_evidence_ready
from tests.helpers import JPEG_BYTES, wait_until
from tests.review.inspection_world import CampaignWorld, error, huaibei, ok


@pytest.fixture
def world(tmp_path):
    """The platform with the Huaibei campaign, the clock on 2020-03-25 (inside the inspection window)."""
    with CampaignWorld(tmp_path) as w:
        yield w


def record(world: CampaignWorld, code: str = "XSQ", status: int = 201, **overrides) -> dict:
    return ok(
        world.client.post(
            "/review/inspections", json=world.inspection_body(code, **overrides), headers=world.inspector()
        ),
        status,
    )


def test_an_inspection_is_scored_by_the_rubric_and_published(world):
    recorded = record(world)
    # Huaibei: 12 points for measures in place, 6 each for residents aware, residents able and staff proficient.
    assert [(s["code"], s["points"], s["max_points"]) for s in recorded["scores"]] == [
        ("measures_in_place", 10.29, 12),
        ("residents_aware", 4.8, 6),
        ("residents_able", 3.0, 6),
        ("staff_proficient", 4.5, 6),
    ]
    assert recorded["scores"][0]["note"] == "核实措施 6/7 项" and "知晓 8 人" in recorded["scores"][1]["note"]
    assert (recorded["score"], recorded["max_points"], recorded["inspector"]) == (22.59, 30, "孙丽")
    assert recorded["supervision_ids"] == []  # 1 problem and 22.59 ≥ 60 % of 30: no supervision
    again = ok(world.client.get(f"/review/inspections/{recorded['id']}", headers=world.reviewer()))
    assert again["score"] == 22.59 and again["scores"] == recorded["scores"]
    [event] = world.outbox("inspection.recorded")
    assert (event["inspection_id"], event["unit_id"], event["score"], event["problems"]) == (
        recorded["id"],
        world.units["XSQ"],
        22.59,
        ["横幅数量不足"],
    )
    with world.review.db.session() as uow:
        records = [r for r in timeline.for_unit(uow, world.units["XSQ"]) if r.subject_type == "inspection"]
    assert [(r.kind, r.subject_id, r.actor, r.detail["score"]) for r in records] == [
        ("inspection.recorded", recorded["id"], "孙丽", 22.59)
    ]
    assert world.audit_actions(recorded["id"]) == ["inspection.recorded"]
    assert world.wait_mail("【检查情况】相山区信访局")


def test_inspector_judged_criteria_and_duplicate_codes(tmp_path):
    criteria = [
        {"code": "measures_in_place", "name": "宣传措施落实到位", "points": 12},
        {"code": "publicity_quality", "name": "宣传效果", "points": 18},
    ]
    rubric = {
        "total": 100,
        "measures": {"points": 60},
        "timeliness": {"points": 10, "deadlines": ["liaison", "summary"]},
        "inspection": {"points": 30, "criteria": criteria},
    }
    with CampaignWorld(tmp_path, definition=huaibei(rubric=rubric)) as world:
        recorded = record(
            world, measures_verified=["M1", "M1", "M7"], criteria={"publicity_quality": 0.5}, problems=[]
        )
        assert recorded["measures_verified"] == ["M1", "M7"]
        assert [(s["code"], s["points"]) for s in recorded["scores"]] == [
            ("measures_in_place", 3.43),
            ("publicity_quality", 9.0),
        ]
        assert recorded["score"] == 12.43 and recorded["criteria"] == {"publicity_quality": 0.5}
        # 12.43 < 0.6 × 30: the inspection rule opens a supervision
        assert len(recorded["supervision_ids"]) == 1
        counted = error(
            world.client.post(
                "/review/inspections",
                json=world.inspection_body(criteria={"measures_in_place": 1}),
                headers=world.inspector(),
            ),
            422,
        )
        assert counted["code"] == "unknown_criterion" and "publicity_quality" in counted["message"]


def test_inspections_are_validated_with_chinese_messages(world):
    post = lambda **o: world.client.post(
        "/review/inspections", json=world.inspection_body(**o), headers=world.inspector()
    )
    early = error(post(inspected_on="2020-03-20"), 422)
    assert early["code"] == "outside_inspection_window" and "2020-03-21 至 2020-03-31" in early["message"]
    assert error(post(inspected_on="2020-04-01"), 422)["code"] == "outside_inspection_window"
    assert (
        error(post(inspected_on="2020-03-31"), 422)["code"] == "inspection_in_future"
    )  # the clock says 2020-03-25
    world.clock.advance(timedelta(days=7))
    assert ok(post(inspected_on="2020-03-21", problems=[]), 201) and ok(
        post(inspected_on="2020-03-31", problems=[]), 201
    )
    aware = error(post(residents_asked=5, residents_aware=6), 422)
    assert aware["code"] == "inconsistent_counts" and "不能多于" in aware["message"]
    assert error(post(residents_asked=5, residents_able=6), 422)["code"] == "inconsistent_counts"
    assert error(post(staff_tested=2, staff_proficient=3), 422)["code"] == "inconsistent_counts"
    unknown = error(post(measures_verified=["M1", "M9"]), 422)
    assert unknown["code"] == "unknown_measure" and "M9" in unknown["message"]
    assert error(post(criteria={"who_knows": 0.5}), 422)["code"] == "unknown_criterion"
    assert post(criteria={"publicity_quality": 1.5}).status_code == 422
    assert post(method="letter").status_code == 422 and post(residents_asked=-1).status_code == 422
    assert error(post(unit_id="no-such-unit"), 404)["code"] == "not_found"
    assert error(post(campaign_id="no-such-campaign"), 404)["code"] == "not_found"
    assert (
        world.client.post(
            "/review/inspections", json=world.inspection_body(), headers=world.reviewer()
        ).status_code
        == 403
    )
    assert (
        world.client.post(
            "/review/inspections", json=world.inspection_body(), headers=world.unit("XSQ")
        ).status_code
        == 403
    )
    assert len(world.outbox("inspection.recorded")) == 2  # only the two valid ones


def test_without_an_inspection_window_the_publicity_window_and_30_days_count(tmp_path):
    text = huaibei(windows={"publicity": {"start": "2020-03-09", "end": "2020-03-31"}})
    with CampaignWorld(tmp_path, definition=text) as world:
        assert record(world, inspected_on="2020-03-09", problems=[])["inspected_on"] == "2020-03-09"
        future = error(
            world.client.post(
                "/review/inspections",
                json=world.inspection_body(inspected_on="2020-04-30"),
                headers=world.inspector(),
            ),
            422,
        )
        assert future["code"] == "inspection_in_future" and "晚于今天" in future["message"]
        world.clock.advance(timedelta(days=40))
        assert record(world, inspected_on="2020-04-30", problems=[])["inspected_on"] == "2020-04-30"
        late = error(
            world.client.post(
                "/review/inspections",
                json=world.inspection_body(inspected_on="2020-05-01"),
                headers=world.inspector(),
            ),
            422,
        )
        assert "2020-03-09 至 2020-04-30" in late["message"]


def test_a_sampled_inspection_names_its_draw(world):
    drawn = ok(
        world.client.post(
            "/review/samplings",
            json={"campaign_id": world.campaign_id, "size": 2, "seed": 11},
            headers=world.inspector(),
        ),
        201,
    )
    chosen = next(code for code, uid in world.units.items() if uid == drawn["selected"][0])
    other = next(code for code, uid in world.units.items() if code != "HB" and uid not in drawn["selected"])
    recorded = record(world, chosen, sampling_id=drawn["id"], method="phone")
    assert recorded["sampling_id"] == drawn["id"] and recorded["method"] == "phone"
    missed = error(
        world.client.post(
            "/review/inspections",
            json=world.inspection_body(other, sampling_id=drawn["id"]),
            headers=world.inspector(),
        ),
        422,
    )
    assert missed["code"] == "unit_not_sampled"


def test_many_problems_or_a_low_score_open_a_yellow_on_site_supervision(world):
    problems = record(world, problems=["未设宣传角", "无横幅", "工作人员不熟悉"])
    low = record(
        world,
        "DJQ",
        measures_verified=["M1"],
        residents_aware=2,
        residents_able=1,
        staff_proficient=1,
        problems=[],
    )
    fine = record(world, "LSQ", problems=["横幅偏少", "展板陈旧"])
    assert low["score"] == 5.01 and fine["supervision_ids"] == []
    cases = ok(
        world.client.get("/review/supervisions", params={"rule": "inspection"}, headers=world.reviewer())
    )
    assert {(c["unit_id"], c["subject_id"], c["level"], c["method"], c["state"]) for c in cases} == {
        (world.units["XSQ"], problems["id"], "yellow", "on_site", "open"),
        (world.units["DJQ"], low["id"], "yellow", "on_site", "open"),
    }
    by_subject = {c["subject_id"]: c for c in cases}
    assert problems["supervision_ids"] == [by_subject[problems["id"]]["id"]]
    assert "检查发现问题 3 项" in by_subject[problems["id"]]["reason"]
    assert "低于 18 分" in by_subject[low["id"]]["reason"]
    assert by_subject[problems["id"]]["opened_by"] == "system"
    opened = world.outbox("supervision.opened")
    assert [p["unit_id"] for p in opened] == [world.units["XSQ"], world.units["DJQ"]]
    assert world.wait_mail("【督办通知】", count=2)
    assert (
        ok(world.client.get(f"/review/inspections/{problems['id']}", headers=world.admin()))[
            "supervision_ids"
        ]
        == problems["supervision_ids"]
    )


def test_units_read_only_their_own_subtrees_inspections(world):
    xsq = record(world)
    djq = record(world, "DJQ")
    own = world.unit("XSQ")
    assert ok(world.client.get(f"/review/inspections/{xsq['id']}", headers=own))["id"] == xsq["id"]
    assert (
        error(world.client.get(f"/review/inspections/{djq['id']}", headers=own), 404)["code"] == "not_found"
    )
    assert [i["id"] for i in ok(world.client.get("/review/inspections", headers=own))] == [xsq["id"]]
    assert (
        ok(world.client.get("/review/inspections", params={"unit_id": world.units["DJQ"]}, headers=own)) == []
    )
    city = world.unit("HB")  # the city office's unit is above every unit
    assert {i["id"] for i in ok(world.client.get("/review/inspections", headers=city))} == {
        xsq["id"],
        djq["id"],
    }
    staff = ok(
        world.client.get(
            "/review/inspections",
            params={"campaign_id": world.campaign_id, "unit_id": world.units["DJQ"]},
            headers=world.reviewer(),
        )
    )
    assert [i["id"] for i in staff] == [djq["id"]]


def test_inspection_photos_go_through_evidence_storage(world):
    recorded = record(world)
    inspector, unit = world.inspector(), world.unit("XSQ")
    wait_until(
        lambda: (
            world.client.get(
                f"/evidence/submissions/{recorded['id']}/evidence", headers=inspector
            ).status_code
            == 200
        ),
        timeout=20,
        what="evidence_storage to learn of the inspection",
    )
    world.client.headers.update(inspector)
    stored = upload(world.client, recorded["id"], JPEG_BYTES, "宣传角.jpg")
    assert stored.status_code == 201, stored.text
    # the unit may look at its inspection's photos, but not add to them; another unit does not see them at all
    world.client.headers.update(unit)
    assert upload(world.client, recorded["id"], JPEG_BYTES, "补拍.jpg").status_code == 403
    assert [e["id"] for e in ok(world.client.get(f"/evidence/submissions/{recorded['id']}/evidence"))] == [
        stored.json()["id"]
    ]
    world.client.headers.update(world.unit("DJQ"))
    assert world.client.get(f"/evidence/submissions/{recorded['id']}/evidence").status_code == 404
    # an inspector does not upload to a unit's own submission
    world.client.headers.update(world.admin())
    submission = submit(world.client, world.units["XSQ"])
    wait_evidence_ready(world.client, submission["id"])
    world.client.headers.update(inspector)
    assert upload(world.client, submission["id"], JPEG_BYTES, "会议.jpg").status_code == 403
    world.client.headers.pop("Authorization")

    def shown():
        photos = ok(world.client.get(f"/review/inspections/{recorded['id']}", headers=unit))["photos"]
        return photos or None

    [photo] = wait_until(shown, timeout=20, what="review to show the inspection photo")
    assert (photo["evidence_id"], photo["filename"], photo["media_type"]) == (
        stored.json()["id"],
        "宣传角.jpg",
        "image/jpeg",
    )
