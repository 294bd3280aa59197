"""The coverage matrix: states, colours by deadline proximity, topics, liaisons, and the subtree filter."""

from __future__ import annotations

from datetime import UTC, datetime

from services.intake import submissions
from shared.contracts import make_event
from shared.contracts.review import SubmissionApproved, SubmissionReturned
from tests.intake.support import as_yaml, handle, post, setup_campaign, small_definition


def decide(ctx, sub: dict, model, **extra) -> None:
    handle(
        ctx,
        make_event(
            model(
                submission_id=sub["id"],
                unit_id=sub["unit_id"],
                measure_code=sub["measure_code"],
                title=sub["title"],
                version=sub["version"],
                reviewer="王芳",
                **extra,
            ),
            producer="review",
        ),
        submissions.record_decision,
    )


def at(clock, when: datetime) -> None:
    clock.advance(when - clock.now())


def test_matrix_states_colours_topics_and_liaisons(api, ctx, clock):
    units = setup_campaign(api)
    d1, d2, v1 = units["D1"]["id"], units["D2"]["id"], units["V1"]["id"]
    approved = post(api, unit_id=d1, measure_code="M1", title="会议", topics=["T1"]).json()
    decide(ctx, approved, SubmissionApproved)
    post(api, unit_id=d1, measure_code="M2", title="横幅", topics=["T2"])
    returned = post(api, unit_id=d2, measure_code="M1", title="会议", topics=["T2"]).json()
    decide(ctx, returned, SubmissionReturned, comment="请补充")
    post(api, unit_id=v1, measure_code="M2", title="草稿", submit=False, topics=["T1"])
    withdrawn = post(api, unit_id=v1, measure_code="M1", title="撤回", topics=["T1"]).json()
    api.post(f"/submissions/{withdrawn['id']}/withdraw")
    post(api, unit_id=d2, kind="summary_report", title="总结")
    post(api, unit_id=d2, kind="good_practice", title="经验")

    matrix = api.get(f"/campaigns/{units['_campaign']}/coverage").json()
    rows = {u["code"]: u for u in matrix["units"]}
    assert set(rows) == {"D1", "D2", "S1", "V1"}  # the organiser does not take part
    assert rows["D1"]["cells"]["M1"] == {"state": "approved", "colour": "green", "count": 1}
    assert rows["D1"]["cells"]["M2"] == {"state": "submitted", "colour": "yellow", "count": 1}
    assert rows["D2"]["cells"]["M1"]["state"] == "returned"
    assert (
        rows["V1"]["cells"]["M1"]["state"] == rows["V1"]["cells"]["M2"]["state"] == "missing"
    )  # withdrawn and draft do not count
    assert (rows["D1"]["topics_covered"], rows["D1"]["topics_missing"]) == (["T1", "T2"], [])
    assert (rows["D2"]["topics_covered"], rows["V1"]["topics_covered"]) == (
        [],
        [],
    )  # a returned report covers nothing yet
    assert rows["D2"]["summary_report"]["state"] == "submitted" and rows["D2"]["good_practices"] == 1
    assert rows["D1"]["liaison"] == {"status": "designated", "colour": "green", "name": "李明"}
    assert rows["D2"]["liaison"]["status"] == "missing"
    # 1 March: every deadline is far away, so what is missing is yellow
    assert rows["D2"]["liaison"]["colour"] == rows["V1"]["cells"]["M1"]["colour"] == "yellow"
    assert matrix["totals"]["units"] == 4 and matrix["totals"]["cells"]["approved"] == 1
    assert matrix["measures"][0]["deadline_code"] == "summary" and "green" in matrix["colour_rule"]

    at(clock, datetime(2020, 3, 10, 4, tzinfo=UTC))  # the liaison deadline is 2.5 days away
    rows = {u["code"]: u for u in api.get(f"/campaigns/{units['_campaign']}/coverage").json()["units"]}
    assert rows["D2"]["liaison"]["colour"] == "red" and rows["V1"]["cells"]["M1"]["colour"] == "yellow"

    at(clock, datetime(2020, 4, 3, 4, tzinfo=UTC))  # the summary deadline is 2.5 days away
    rows = {u["code"]: u for u in api.get(f"/campaigns/{units['_campaign']}/coverage").json()["units"]}
    assert rows["V1"]["cells"]["M1"]["colour"] == rows["D2"]["cells"]["M1"]["colour"] == "red"
    assert rows["D1"]["cells"]["M1"]["colour"] == "green" and rows["D1"]["cells"]["M2"]["colour"] == "yellow"
    assert rows["D1"]["summary_report"] == {"state": "missing", "colour": "red", "count": 0}


def test_subtree_filter(api):
    units = setup_campaign(api)
    post(api, unit_id=units["V1"]["id"], measure_code="M1", title="社区会议")
    post(api, unit_id=units["D2"]["id"], measure_code="M1", title="区会议")
    matrix = api.get(
        f"/campaigns/{units['_campaign']}/coverage", params={"unit_id": units["S1"]["id"]}
    ).json()
    assert [u["code"] for u in matrix["units"]] == ["S1", "V1"]
    assert {u["code"]: u["cells"]["M1"]["state"] for u in matrix["units"]} == {
        "S1": "missing",
        "V1": "submitted",
    }
    whole = api.get("/campaigns/demo-2020/coverage").json()
    assert whole["units"][0]["code"] in {"D1", "D2"} and len(whole["units"]) == 4


def test_coverage_refuses_unknown_campaigns_and_foreign_units(api):
    units = setup_campaign(api)
    other = api.post(
        "/campaigns",
        content=as_yaml(small_definition(code="other-2020")).encode(),
        headers={"Content-Type": "application/yaml"},
    ).json()
    assert api.get("/campaigns/nope/coverage").status_code == 404
    assert api.get(f"/campaigns/{units['_campaign']}/coverage", params={"unit_id": "nope"}).status_code == 404
    foreign = api.get(f"/campaigns/{other['campaign_id']}/coverage", params={"unit_id": units["D1"]["id"]})
    assert foreign.status_code == 422 and foreign.json()["code"] == "campaign_mismatch"
