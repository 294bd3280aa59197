"""The assessment (考核): hand-worked scores over the Huaibei rubric, traceable lines, ranking with ties,
as-of recomputation, and who sees which rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.review import handlers
from shared.contracts import make_event
from shared.contracts.intake import CampaignPublished, SubmissionSubmitted
from tests.review.test_assessment_support import AS_OF, EXPECTED, AssessmentWorld, build_profiles, local


@pytest.fixture
def world(tmp_path):
    """The Huaibei campaign in a review service on SQLite, with the seven hand-scored units."""
    w = AssessmentWorld(tmp_path)
    w.ids = build_profiles(w)
    yield w
    w.close()


def ok(response, status: int = 200):
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()


def assessment(world, headers=None, **params) -> dict:
    """GET /assessment for the campaign (as a reviewer unless told)."""
    return ok(
        world.client.get(
            "/assessment",
            params={"campaign_id": world.campaign_id, **params},
            headers=headers or world.reviewer(),
        )
    )


def by_code(result: dict) -> dict[str, dict]:
    return {u["code"]: u for u in result["units"]}


def lines_of(unit: dict, part: str) -> list[dict]:
    return [line for line in unit["lines"] if line["part"] == part]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_profile_scores_as_worked_out_by_hand(request, tmp_path, backend):
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    w = AssessmentWorld(tmp_path, database_url=url)
    try:
        build_profiles(w)
        units = by_code(assessment(w, as_of=AS_OF))
        assert set(units) == set(EXPECTED)  # the city organiser does not take part
        for code, expected in EXPECTED.items():
            got = {**units[code]["parts"], "total": units[code]["total"]}
            assert got == pytest.approx(expected, abs=1e-9), code
            # every point is traceable: the lines add up to the total
            assert round(sum(line["points"] for line in units[code]["lines"]), 2) == units[code]["total"], (
                code
            )
            assert all(line["note"] for line in units[code]["lines"])
    finally:
        w.close()


def test_each_line_names_the_fact_behind_it(world):
    units = by_code(assessment(world, as_of=AS_OF))
    djq, lsq, sxx, jtj = units["DJQ"], units["LSQ"], units["SXX"], units["JTJ"]

    liaison = lines_of(djq, "timeliness")[0]
    assert (
        liaison["points"],
        liaison["max_points"],
        liaison["source_type"],
        liaison["source_id"],
        liaison["item"],
    ) == (3, 5, "liaison", world.units["DJQ"], "liaison")
    assert "逾期 2 天" in liaison["note"] and "扣 2 分" in liaison["note"]
    assert lines_of(djq, "inspection")[0]["note"].startswith("未被抽查，按审核通过比例折算")
    assert [line["points"] for line in lines_of(djq, "measures")] == [6, 9, 6, 6, 6, 6, 9]

    m2 = next(line for line in lines_of(lsq, "measures") if line["item"] == "M2")
    assert (m2["points"], m2["source_id"]) == (11.25, world.ids["LSQ-M2"]) and "经退回修改后审核通过" in m2[
        "note"
    ]
    m7 = next(line for line in lines_of(lsq, "measures") if line["item"] == "M7")
    assert (m7["points"], m7["source_id"], m7["note"]) == (0, None, "巡回宣讲：未报送")
    summary = lines_of(lsq, "timeliness")[1]
    assert (summary["points"], summary["source_type"], summary["item"]) == (3, "submission", "summary")
    assert [(line["item"], line["points"], line["source_type"]) for line in lines_of(lsq, "inspection")] == [
        ("measures_in_place", 8.57, "inspection"),
        ("residents_aware", 1.8, "inspection"),
        ("residents_able", 1.2, "inspection"),
        ("staff_proficient", 1.5, "inspection"),
    ]
    assert "核实措施 5/7 项" in lines_of(lsq, "inspection")[0]["note"]

    deductions = lines_of(sxx, "deductions")
    assert [line["points"] for line in deductions] == [-5, -10, -5, 0]
    assert deductions[0]["source_id"] == world.ids["SXX-first"] and "黄色实地督办" in deductions[0]["note"]
    assert "扣分上限 20 分" in deductions[3]["note"]
    assert [line["points"] for line in lines_of(sxx, "bonus")] == [1, 1, 1, 1, 1, 0, 0]
    missed = lines_of(sxx, "timeliness")[1]
    assert (missed["points"], missed["source_type"], missed["source_id"]) == (0, "deadline", "summary")
    assert "逾期未报送" in missed["note"]

    notes = {line["item"]: line["note"] for line in lines_of(jtj, "measures")}
    assert notes["M1"] == "专题会议：未通过审核（已驳回）" and notes["M2"] == "网上信访宣传角：已报送，待审核"
    assert lines_of(jtj, "measures")[0]["source_id"] == world.ids["JTJ-M1"]


def test_ranks_within_each_level_with_shared_ranks_for_ties(world):
    result = assessment(world, as_of=AS_OF)
    order = [(u["level"], u["code"], u["rank"], u["level_size"]) for u in result["units"]]
    assert order == [
        ("county", "XSQ", 1, 4),
        ("county", "DJQ", 2, 4),
        ("county", "SXX", 2, 4),
        ("county", "LSQ", 4, 4),
        ("member", "RSJ", 1, 3),
        ("member", "JTJ", 2, 3),
        ("member", "GAJ", 3, 3),
    ]
    assert result["max_total"] == 100 and result["campaign_name"] == "淮北市网上信访宣传月"


def test_only_facts_up_to_the_moment_count(world):
    early = by_code(assessment(world, as_of="2020-03-11"))
    assert early["DJQ"]["lines"][7]["note"].startswith("明确联络员：尚未报送")  # due 12 March: not late yet
    assert early["GAJ"]["parts"]["timeliness"] == 0
    # 14 March: LSQ's M2 handed in, not decided; 15 March: returned; 18 March: approved
    m2 = lambda day: next(
        line for line in by_code(assessment(world, as_of=day))["LSQ"]["lines"] if line["item"] == "M2"
    )
    assert (m2("2020-03-14")["points"], m2("2020-03-14")["note"]) == (0, "网上信访宣传角：已报送，待审核")
    assert m2("2020-03-15")["note"] == "网上信访宣传角：已退回修改，尚未审核通过"
    assert m2("2020-03-18")["points"] == 11.25
    # 21 March: SXX's first supervision was still a blue phone call, the interview not yet opened
    sxx = by_code(assessment(world, as_of="2020-03-21"))["SXX"]
    assert sxx["parts"]["deductions"] == 2 and "蓝色电话督办" in lines_of(sxx, "deductions")[0]["note"]
    # GAJ's summary was on time until it was rejected on 6 April
    assert by_code(assessment(world, as_of="2020-04-05"))["GAJ"]["parts"]["timeliness"] == 5
    assert by_code(assessment(world, as_of="2020-04-06"))["GAJ"]["parts"]["timeliness"] == 0


def test_the_same_moment_gives_the_same_figures_later(world):
    before = assessment(world, as_of=AS_OF)
    world.clock.advance(timedelta(days=10))
    world.approved("LSQ", "M7", local(4, 15))
    world.inspect("DJQ", local(4, 16), residents=(10, 1, 1))
    world.supervise("XSQ", local(4, 16), level="red", method="interview", reason="迟报")
    xsq_summary = next(
        s
        for s, f in world.submissions.items()
        if f["kind"] == "summary_report" and f["unit_id"] == world.units["XSQ"]
    )
    world.decide(xsq_summary, "rejected", local(4, 16))
    assert assessment(world, as_of=AS_OF) == before
    now = by_code(assessment(world))  # as of the clock: the later facts count
    assert now["LSQ"]["parts"]["measures"] == 60 and now["XSQ"]["parts"]["deductions"] == 10
    assert now["XSQ"]["parts"]["timeliness"] == 5 and now["DJQ"]["lines"][9]["source_type"] == "inspection"


def test_as_of_accepts_a_date_or_a_datetime_in_campaign_time(world):
    day = assessment(world, as_of="2020-03-21")
    assert day["as_of"] == "2020-03-21T15:59:59.999999Z"
    same = assessment(world, as_of="2020-03-21T23:59:59.999999+08:00")
    assert same["units"] == day["units"]
    naive = assessment(world, as_of="2020-03-26T09:59:59")  # Beijing time, before the escalation at 10:00
    assert by_code(naive)["SXX"]["parts"]["deductions"] == 12
    assert by_code(assessment(world, as_of="2020-03-26T10:00:00"))["SXX"]["parts"]["deductions"] == 15
    assert (
        assessment(world)["as_of"] == "2020-04-20T02:00:00Z" and assessment(world)["as_of_clamped"] is False
    )
    assert assessment(world, as_of="2021-01-01")["as_of"] == "2020-04-20T02:00:00Z"  # no further than now
    today = assessment(world, as_of="2020-04-20")  # today's date: its end is still ahead, so now
    assert (today["as_of"], today["as_of_clamped"]) == ("2020-04-20T02:00:00Z", True)
    assert day["as_of_clamped"] is False
    bad = world.client.get(
        "/assessment", params={"campaign_id": world.campaign_id, "as_of": "昨天"}, headers=world.reviewer()
    )
    assert bad.status_code == 422 and "as_of 格式不正确" in bad.json()["message"]


def test_a_unit_sees_only_its_subtree_but_its_rank_is_over_the_level(world):
    world.unit("RJJD", "任集街道", "township", parent="XSQ", liaison_at=local(3, 10))
    mine = assessment(world, headers=world.unit_caller("DJQ"), as_of=AS_OF)
    assert [(u["code"], u["rank"], u["level_size"], u["total"]) for u in mine["units"]] == [("DJQ", 2, 4, 80)]
    xsq = assessment(world, headers=world.unit_caller("XSQ"), as_of=AS_OF)
    assert [u["code"] for u in xsq["units"]] == ["XSQ", "RJJD"]
    other = world.client.get(f"/assessment/units/{world.units['XSQ']}", headers=world.unit_caller("DJQ"))
    assert other.status_code == 404
    own = ok(
        world.client.get(
            f"/assessment/units/{world.units['DJQ']}",
            params={"as_of": AS_OF},
            headers=world.unit_caller("DJQ"),
        )
    )
    assert (own["total"], own["rank"], own["level_name"]) == (80, 2, "县（区）")
    staff = ok(
        world.client.get(
            f"/assessment/units/{world.units['LSQ']}", params={"as_of": AS_OF}, headers=world.inspector()
        )
    )
    assert staff["total"] == 69.82
    assert world.client.get("/assessment", params={"campaign_id": world.campaign_id}).status_code == 401
    missing = world.client.get(f"/assessment/units/{world.units['HB']}", headers=world.admin())
    assert missing.status_code == 404  # the organiser takes no part


def test_a_campaign_without_a_rubric_cannot_be_assessed(world):
    payload = CampaignPublished(
        campaign_id="plain",
        code="plain",
        name="无考核的活动",
        version=1,
        publicity_start="2020-03-09",
        publicity_end="2020-03-31",
    )
    with world.ctx.db.transaction() as uow:
        handlers.project_campaign(make_event(payload, producer="intake"), uow=uow, ctx=world.ctx)
    refused = world.client.get("/assessment", params={"campaign_id": "plain"}, headers=world.admin())
    assert refused.status_code == 422
    assert refused.json()["code"] == "no_rubric" and "考核细则" in refused.json()["message"]
    unknown = world.client.get("/assessment", params={"campaign_id": "nope"}, headers=world.admin())
    assert unknown.status_code == 404


def test_a_decision_taken_through_the_queue_counts_from_its_moment(world):
    world.unit("LBJ", "市林业局", "member", liaison_at=local(3, 10))
    submission_id = "s-lbj-m1"
    event = make_event(
        SubmissionSubmitted(
            submission_id=submission_id,
            unit_id=world.units["LBJ"],
            measure_code="M1",
            title="召开专题会议传达部署",
            version=1,
            campaign_id=world.campaign_id,
            unit_path=world.paths[world.units["LBJ"]],
            submitted_at=world.clock.now(),
        ),
        producer="intake",
    )
    with world.ctx.db.transaction() as uow:
        handlers.enqueue_submission(event, uow=uow, ctx=world.ctx)
    world.clock.advance(timedelta(hours=2))
    ok(
        world.client.post(
            f"/submissions/{submission_id}/approve", json={"score": 90}, headers=world.reviewer()
        )
    )
    unit = ok(world.client.get(f"/assessment/units/{world.units['LBJ']}", headers=world.reviewer()))
    m1 = lines_of(unit, "measures")[0]
    assert (m1["points"], m1["source_id"]) == (6.75, submission_id) and "评分 90" in m1["note"]
    earlier = (world.clock.now() - timedelta(hours=1)).isoformat()
    before = ok(
        world.client.get(
            f"/assessment/units/{world.units['LBJ']}", params={"as_of": earlier}, headers=world.reviewer()
        )
    )
    assert lines_of(before, "measures")[0]["note"] == "专题会议：已报送，待审核"
