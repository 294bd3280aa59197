"""Submissions: kinds, drafts, withdrawal, flags, and review outcomes mirrored from events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.intake import submissions
from shared.contracts import make_event
from shared.contracts.evidence import EvidenceStored
from shared.contracts.review import SubmissionApproved, SubmissionReturned
from tests.intake.support import handle, outbox, post, setup_campaign


def test_a_plain_submission_without_campaign_goes_straight_to_submitted(api, ctx):
    unit = api.post(
        "/units",
        json={
            "code": "XS",
            "name": "相山区信访局",
            "level": "county",
            "liaison": {"name": "李明", "email": "li.ming@example.org"},
        },
    ).json()
    assert unit["unit_path"] == f"/{unit['id']}/" and unit["campaign_id"] is None
    response = post(
        api, unit_id=unit["id"], measure_code="M1", title="召开专题会议", description="3月9日召开。"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["state"], body["version"], body["kind"], body["campaign_id"]) == (
        "submitted",
        1,
        "measure",
        None,
    )
    events = outbox(ctx, "submission.submitted")
    assert [e.payload["submission_id"] for e in events] == [body["id"]]
    assert events[0].payload["unit_path"] == unit["unit_path"] and events[0].payload["version"] == 1


def test_draft_edit_then_submit(api, ctx):
    units = setup_campaign(api)
    draft = post(api, unit_id=units["D1"]["id"], measure_code="M1", title="草稿", submit=False).json()
    assert (
        draft["state"] == "draft"
        and draft["campaign_id"] == units["_campaign"]
        and draft["submitted_at"] is None
    )
    assert outbox(ctx, "submission.submitted") == []
    edited = api.patch(
        f"/submissions/{draft['id']}",
        json={"title": "专题会议", "held_on": "2020-03-10", "topics": ["T1", "T1", "T2"]},
    )
    assert (
        edited.status_code == 200
        and edited.json()["topics"] == ["T1", "T2"]
        and edited.json()["title"] == "专题会议"
    )
    submitted = api.post(f"/submissions/{draft['id']}/submit")
    assert submitted.status_code == 200 and submitted.json()["state"] == "submitted"
    [event] = outbox(ctx, "submission.submitted")
    assert event.payload["topics"] == ["T1", "T2"] and event.payload["held_on"] == "2020-03-10"
    assert event.payload["campaign_id"] == units["_campaign"]
    again = api.patch(f"/submissions/{draft['id']}", json={"title": "改"})
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    assert api.post(f"/submissions/{draft['id']}/submit").status_code == 409


def test_withdraw_only_before_review(api, ctx):
    units = setup_campaign(api)
    sub = post(api, unit_id=units["D1"]["id"], measure_code="M2", title="宣传横幅").json()
    withdrawn = api.post(f"/submissions/{sub['id']}/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    assert [e.payload["version"] for e in outbox(ctx, "submission.withdrawn")] == [1]
    assert api.post(f"/submissions/{sub['id']}/withdraw").status_code == 409
    versions = api.get(f"/submissions/{sub['id']}/versions").json()
    assert [(v["version"], v["outcome"]) for v in versions] == [(1, "withdrawn")]


def test_bad_requests_are_refused_with_bilingual_errors(api):
    units = setup_campaign(api)
    unit_id = units["D1"]["id"]
    cases = [
        (dict(unit_id=unit_id, measure_code="M9", title="x"), 422, "unknown_measure"),
        (dict(unit_id=unit_id, title="x"), 422, "measure_required"),
        (
            dict(unit_id=unit_id, kind="summary_report", measure_code="M1", title="x"),
            422,
            "measure_not_allowed",
        ),
        (dict(unit_id=unit_id, measure_code="M1", title="x", topics=["T9"]), 422, "unknown_topic"),
        (
            dict(unit_id=unit_id, measure_code="M1", title="x", campaign_id="another"),
            422,
            "campaign_mismatch",
        ),
        (dict(unit_id="nope", measure_code="M1", title="x"), 404, "not_found"),
    ]
    for body, status, code in cases:
        response = post(api, **body)
        assert response.status_code == status, (body, response.text)
        detail = response.json()
        assert detail["code"] == code and detail["message"] and detail["message_en"]
    assert api.get("/submissions").json() == []


def test_held_on_outside_the_publicity_window_is_flagged(api):
    units = setup_campaign(api)
    inside = post(
        api, unit_id=units["D1"]["id"], measure_code="M1", title="会议", held_on="2020-03-31"
    ).json()
    outside = post(
        api, unit_id=units["D1"]["id"], measure_code="M1", title="会议", held_on="2020-04-01"
    ).json()
    practice = post(
        api, unit_id=units["D1"]["id"], kind="good_practice", title="经验", held_on="2020-02-20"
    ).json()
    assert (inside["outside_window"], outside["outside_window"], practice["outside_window"]) == (
        False,
        True,
        True,
    )


def test_summary_after_its_deadline_is_late_but_good_practice_never(api, clock):
    units = setup_campaign(api)
    on_time = post(api, unit_id=units["D1"]["id"], kind="summary_report", title="总结").json()
    clock.advance(datetime(2020, 4, 6, tzinfo=UTC) - clock.now())
    late = post(api, unit_id=units["D2"]["id"], kind="summary_report", title="总结").json()
    practice = post(api, unit_id=units["D2"]["id"], kind="good_practice", title="经验做法").json()
    assert (on_time["late"], late["late"], practice["late"]) == (False, True, False)
    assert on_time["measure_code"] == "" and on_time["kind"] == "summary_report"


def test_decisions_and_evidence_are_mirrored_from_events(api, ctx):
    units = setup_campaign(api)
    sub = post(api, unit_id=units["D1"]["id"], measure_code="M2", title="横幅").json()
    common = dict(
        submission_id=sub["id"], unit_id=sub["unit_id"], measure_code="M2", title="横幅", reviewer="王芳"
    )
    handle(
        ctx,
        make_event(
            EvidenceStored(
                evidence_id="e1",
                submission_id=sub["id"],
                unit_id=sub["unit_id"],
                object_key="k",
                media_type="image/jpeg",
                size=10,
                sha256="a" * 64,
                filename="1.jpg",
            ),
            producer="evidence_storage",
        ),
        submissions.record_evidence,
    )
    shown = api.get(f"/submissions/{sub['id']}").json()
    assert [e["kind"] for e in shown["evidence"]] == ["photo"]
    assert shown["evidence_status"] == {
        "required_count": 2,
        "accepted_kinds": ["photo"],
        "count": 1,
        "satisfied": False,
    }

    handle(
        ctx,
        make_event(SubmissionReturned(version=1, comment="请补充横幅照片", **common), producer="review"),
        submissions.record_decision,
    )
    returned = api.get(f"/submissions/{sub['id']}").json()
    assert (returned["state"], returned["review_comment"]) == ("returned", "请补充横幅照片")
    assert api.post(f"/submissions/{sub['id']}/withdraw").status_code == 409

    resubmitted = api.post(
        f"/submissions/{sub['id']}/resubmit", json={"description": "补充了照片", "topics": ["T2"]}
    )
    assert resubmitted.status_code == 200, resubmitted.text
    assert (
        resubmitted.json()["state"],
        resubmitted.json()["version"],
        resubmitted.json()["review_comment"],
    ) == ("submitted", 2, None)
    assert [e.payload["version"] for e in outbox(ctx, "submission.submitted")] == [1, 2]

    # a late decision about version 1 changes nothing; the one about version 2 does
    handle(
        ctx,
        make_event(SubmissionApproved(version=1, **common), producer="review"),
        submissions.record_decision,
    )
    assert api.get(f"/submissions/{sub['id']}").json()["state"] == "submitted"
    handle(
        ctx,
        make_event(SubmissionApproved(version=2, score=90, **common), producer="review"),
        submissions.record_decision,
    )
    assert api.get(f"/submissions/{sub['id']}").json()["state"] == "approved"
    versions = api.get(f"/submissions/{sub['id']}/versions").json()
    assert [(v["version"], v["outcome"], v["review_comment"]) for v in versions] == [
        (1, "returned", "请补充横幅照片"),
        (2, "approved", None),
    ]
    assert versions[1]["description"] == "补充了照片" and versions[0]["description"] == ""
    assert api.post(f"/submissions/{sub['id']}/resubmit", json={}).status_code == 409


def test_lists_filter_by_campaign_kind_state_and_subtree(api):
    units = setup_campaign(api)
    a = post(api, unit_id=units["V1"]["id"], measure_code="M1", title="社区会议").json()
    b = post(api, unit_id=units["D2"]["id"], kind="good_practice", title="经验").json()
    post(api, unit_id=units["D2"]["id"], measure_code="M1", title="草稿", submit=False)
    ids = lambda **params: {s["id"] for s in api.get("/submissions", params=params).json()}
    assert ids(subtree_of=units["D1"]["id"]) == {a["id"]}
    assert ids(kind="good_practice") == {b["id"]}
    assert ids(state="draft", campaign_id=units["_campaign"]) and a["id"] not in ids(state="draft")
    assert ids(unit_id=units["V1"]["id"]) == {a["id"]}
    assert api.get("/submissions", params={"subtree_of": "nope"}).status_code == 404


def test_liaison_history_and_lateness(api, clock, ctx):
    units = setup_campaign(api)
    unit_id = units["D2"]["id"]
    assert (
        api.put(f"/units/{unit_id}/liaison", json={"name": "周敏", "email": "zhou.min@example.org"}).json()[
            "liaison_late"
        ]
        is False
    )
    same = api.put(f"/units/{unit_id}/liaison", json={"name": "周敏", "email": "zhou.min@example.org"})
    assert same.status_code == 200
    clock.advance(timedelta(days=12))  # 13 March: after the liaison deadline
    changed = api.put(
        f"/units/{unit_id}/liaison",
        json={"name": "吴涛", "email": "wu.tao@example.org", "phone": "0561-0000000"},
    )
    assert changed.json()["liaison_late"] is True and changed.json()["liaison_phone"] == "0561-0000000"
    history = api.get(f"/units/{unit_id}/liaisons").json()
    assert [(h["name"], h["late"], h["source"]) for h in history] == [
        ("周敏", False, "api"),
        ("吴涛", True, "api"),
    ]
    designated = [e.payload for e in outbox(ctx, "liaison.designated") if e.payload["unit_id"] == unit_id]
    assert [(p["liaison_name"], p["late"]) for p in designated] == [("周敏", False), ("吴涛", True)]


def test_units_registered_below_a_campaign_unit_join_its_tree(api, ctx):
    units = setup_campaign(api)
    village = api.post(
        "/units",
        json={"code": "V2", "name": "东街道和平社区", "level": "village", "parent_id": units["S1"]["id"]},
    )
    assert village.status_code == 201, village.text
    assert village.json()["campaign_id"] == units["_campaign"]
    assert village.json()["unit_path"] == f"{units['S1']['unit_path']}{village.json()['id']}/"
    assert outbox(ctx, "unit.registered")[-1].payload["unit_path"] == village.json()["unit_path"]
    assert outbox(ctx, "liaison.designated")[-1].payload["unit_id"] != village.json()["id"]  # no liaison yet
    upward = api.post(
        "/units", json={"code": "X", "name": "错层", "level": "county", "parent_id": units["S1"]["id"]}
    )
    assert upward.status_code == 422 and upward.json()["code"] == "invalid_level"
    duplicate = api.post(
        "/units", json={"code": "V2", "name": "重复", "level": "village", "parent_id": units["S1"]["id"]}
    )
    assert duplicate.status_code == 409
    elsewhere = api.post("/units", json={"code": "V2", "name": "无活动单位", "level": "county"})
    assert elsewhere.status_code == 201  # codes are unique per campaign
