"""The review queue: filters, flags, age, unit-subtree scoping, assignment and approval scores."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from services.review.models import ReviewDecision, ReviewItem, ReviewVersion, TimelineRecord
from tests.review.test_queue_support import error_code, ok, open_world


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    """A review service (SQLite or PostgreSQL) with two counties and a township below the first."""
    w = open_world(request, tmp_path, request.param)
    w.xs = w.unit("相山区信访局")
    w.sx = w.unit("濉溪县信访局")
    w.rj = w.unit("任集街道", parent=w.xs)
    yield w
    w.close()


def ids(items) -> list[str]:
    return [i["submission_id"] for i in items]


def test_filters_by_state_unit_measure_kind_and_campaign(world):
    a = world.submit(world.xs, measure="M1")
    b = world.submit(world.sx, measure="M2", campaign_id="camp-2")
    c = world.submit(world.sx, kind="summary_report", title="活动总结")
    decided = world.submit(world.xs, measure="M3")
    ok(
        world.client.post(
            f"/submissions/{decided}/return", json={"comment": "请补充照片"}, headers=world.admin()
        )
    )
    q = lambda **params: ids(ok(world.client.get("/queue", params=params, headers=world.reviewer())))
    assert q() == [a, b, c]
    assert q(state="returned") == [decided]
    assert q(unit_id=world.sx) == [b, c]
    assert q(measure_code="M2") == [b]
    assert q(kind="summary_report") == [c]
    assert q(campaign_id="camp-2") == [b]
    assert q(limit=1, offset=1) == [b]
    item = ok(world.client.get(f"/submissions/{c}", headers=world.reviewer()))
    assert (item["kind"], item["campaign_id"], item["flags"], item["evidence"]) == (
        "summary_report",
        "camp-1",
        [],
        [],
    )
    assert world.client.get("/queue", params={"flag": "blurry"}, headers=world.reviewer()).status_code == 422


def test_flags_outside_window_and_duplicates_of_another_units_evidence(world):
    xs_meeting = world.submit(world.xs)
    original = world.evidence(xs_meeting, world.xs)
    copied = world.submit(world.sx, title="濉溪县专题会议")
    copy = world.evidence(copied, world.sx, duplicate_of=[original])
    own_repeat = world.submit(world.xs, measure="M2")
    world.evidence(own_repeat, world.xs, duplicate_of=[original])  # the same unit's own photo again: no flag
    from_elsewhere = world.submit(world.rj, measure="M3")
    unknown = world.evidence(from_elsewhere, world.rj, duplicate_of=["e-not-known-here"])
    similar = world.submit(world.sx, measure="M4")
    near = world.evidence(similar, world.sx, near_duplicate_of=[original])
    held_outside = world.submit(world.sx, measure="M5", outside_window=True)
    shot_outside = world.submit(world.xs, measure="M6")
    late_photo = world.evidence(shot_outside, world.xs, outside_window=True)

    def flagged(flag: str, headers=None) -> list[str]:
        return ids(ok(world.client.get("/queue", params={"flag": flag}, headers=headers or world.reviewer())))

    # both sides are flagged: the original (reached first, the queue being oldest-first) as well as the copies
    assert flagged("duplicate") == [xs_meeting, copied, from_elsewhere]
    assert flagged("near_duplicate") == [xs_meeting, similar]
    assert flagged("outside_window") == [held_outside, shot_outside]
    by_id = {i["submission_id"]: i for i in ok(world.client.get("/queue", headers=world.reviewer()))}
    assert by_id[copied]["flags"] == ["duplicate"] and by_id[copied]["duplicates"] == {copy: [world.xs]}
    assert by_id[copied]["evidence"][0]["flags"] == ["duplicate"]
    assert by_id[copied]["evidence"][0]["duplicate_of"] == [original]
    assert by_id[from_elsewhere]["duplicates"] == {unknown: ["unknown:e-not-known-here"]}
    assert by_id[similar]["flags"] == ["near_duplicate"] and by_id[similar]["near_duplicates"] == {
        near: [world.xs]
    }
    assert by_id[own_repeat]["flags"] == []
    # the original says it came first and who repeated it; the copy says the other came first, and whose it is
    assert by_id[xs_meeting]["flags"] == ["duplicate", "near_duplicate"]
    assert by_id[xs_meeting]["duplicates"] == {original: [world.sx]}
    assert by_id[xs_meeting]["near_duplicates"] == {original: [world.sx]}
    assert [
        (d["came_first"], d["match"], d["evidence_id"], d["unit_id"], d["submission_id"])
        for d in by_id[xs_meeting]["evidence"][0]["duplicates"]
    ] == [("this", "exact", copy, world.sx, copied), ("this", "near", near, world.sx, similar)]
    assert [
        (d["came_first"], d["evidence_id"], d["unit_id"], d["submission_id"])
        for d in by_id[copied]["evidence"][0]["duplicates"]
    ] == [("other", original, world.xs, xs_meeting)]
    assert (
        by_id[held_outside]["flags"] == ["outside_window"] and by_id[held_outside]["outside_window"] is True
    )
    assert by_id[shot_outside]["flags"] == ["outside_window"]
    assert [e["flags"] for e in by_id[shot_outside]["evidence"]] == [["outside_window"]]
    assert by_id[shot_outside]["evidence"][0]["evidence_id"] == late_photo
    # a unit learns that its photo repeats another's, not whose
    sx = world.unit_caller(world.sx)
    assert flagged("duplicate", sx) == [copied]
    mine = ok(world.client.get(f"/submissions/{copied}", headers=sx))
    assert (
        mine["flags"] == ["duplicate"]
        and mine["duplicates"] == {}
        and mine["evidence"][0]["duplicate_of"] == []
    )
    assert mine["evidence"][0]["duplicates"] == [
        {"match": "exact", "came_first": "other", "evidence_id": None, "unit_id": None, "submission_id": None}
    ]
    theirs = ok(world.client.get(f"/submissions/{xs_meeting}", headers=world.unit_caller(world.xs)))
    assert theirs["flags"] == [
        "duplicate",
        "near_duplicate",
    ]  # the copied unit sees it too, without the copier
    assert {d["came_first"] for d in theirs["evidence"][0]["duplicates"]} == {"this"}
    assert world.sx not in json.dumps(theirs)
    assert world.xs not in world.client.get("/queue", headers=sx).text
    # flags combine with the other filters
    assert ids(
        ok(
            world.client.get(
                "/queue", params={"flag": "duplicate", "unit_id": world.rj}, headers=world.reviewer()
            )
        )
    ) == [from_elsewhere]


def test_age_filters_count_from_the_version_handed_in_on_the_review_clock(world):
    now = world.clock.now()
    old = world.submit(world.xs, at=now - timedelta(hours=50))
    day = world.submit(world.xs, measure="M2", at=now - timedelta(hours=10))
    fresh = world.submit(world.xs, measure="M3", at=now - timedelta(hours=1))
    q = lambda **params: ids(ok(world.client.get("/queue", params=params, headers=world.reviewer())))
    assert q(older_than_hours=24) == [old]
    assert q(newer_than_hours=5) == [fresh]
    assert q(older_than_hours=5, newer_than_hours=24) == [day]
    world.clock.advance(timedelta(hours=20))
    assert q(older_than_hours=24) == [old, day]
    assert q(newer_than_hours=5) == []
    ages = {
        i["submission_id"]: i["age_hours"] for i in ok(world.client.get("/queue", headers=world.reviewer()))
    }
    assert ages == {old: 70.0, day: 30.0, fresh: 21.0}
    assert (
        world.client.get("/queue", params={"older_than_hours": -1}, headers=world.reviewer()).status_code
        == 422
    )


def test_units_see_only_their_subtree(world):
    county = world.submit(world.xs)
    township = world.submit(world.rj)
    other = world.submit(world.sx)
    assert ids(ok(world.client.get("/queue", headers=world.unit_caller(world.xs)))) == [county, township]
    assert ids(ok(world.client.get("/queue", headers=world.unit_caller(world.rj)))) == [township]
    assert ids(ok(world.client.get("/queue", headers=world.inspector()))) == [county, township, other]
    assert (
        error_code(world.client.get(f"/submissions/{other}", headers=world.unit_caller(world.xs)), 404)
        == "not_found"
    )
    assert (
        error_code(world.client.get(f"/submissions/{county}", headers=world.unit_caller(world.rj)), 404)
        == "not_found"
    )
    assert (
        ids(ok(world.client.get("/queue", params={"unit_id": world.sx}, headers=world.unit_caller(world.xs))))
        == []
    )


def test_assignment_to_a_reviewer_and_the_assigned_to_filter(world):
    first = world.submit(world.xs)
    second = world.submit(world.sx)
    assigned = ok(
        world.client.post(f"/submissions/{first}/assign", json={"reviewer": "r2"}, headers=world.admin())
    )
    assert assigned["assigned_to"] == "r2"
    ok(world.client.post(f"/submissions/{second}/assign", json={"reviewer": "me"}, headers=world.reviewer(1)))
    assert ids(ok(world.client.get("/queue", params={"assigned_to": "me"}, headers=world.reviewer(2)))) == [
        first
    ]
    assert ids(ok(world.client.get("/queue", params={"assigned_to": "r1"}, headers=world.admin()))) == [
        second
    ]
    ok(world.client.post(f"/submissions/{first}/assign", json={"reviewer": None}, headers=world.reviewer(1)))
    assert ids(ok(world.client.get("/queue", params={"assigned_to": "none"}, headers=world.admin()))) == [
        first
    ]
    assert (
        world.client.post(
            f"/submissions/{first}/assign", json={"reviewer": "r1"}, headers=world.unit_caller(world.xs)
        ).status_code
        == 403
    )
    assert (
        world.client.post(
            f"/submissions/{first}/assign", json={"reviewer": "r1"}, headers=world.inspector()
        ).status_code
        == 403
    )
    assert world.audit_actions(first) == ["submission.assigned", "submission.assigned"]
    kinds = [r["kind"] for r in ok(world.client.get(f"/submissions/{first}/timeline", headers=world.admin()))]
    assert kinds == ["submission.submitted", "submission.assigned", "submission.assigned"]
    # a resubmitted version stays with its reviewer; a decided one cannot be reassigned
    ok(
        world.client.post(
            f"/submissions/{second}/return", json={"comment": "请补充"}, headers=world.reviewer(1)
        )
    )
    assert (
        error_code(
            world.client.post(
                f"/submissions/{second}/assign", json={"reviewer": "r2"}, headers=world.admin()
            ),
            409,
        )
        == "not_pending"
    )
    world.submit(world.sx, submission_id=second, version=2)
    assert ok(world.client.get(f"/submissions/{second}", headers=world.admin()))["assigned_to"] == "r1"


def test_approval_score_is_a_share_of_the_measure_points_and_defaults_to_full(world):
    scored = world.submit(world.xs)
    unscored = world.submit(world.sx)
    assert (
        ok(world.client.post(f"/submissions/{scored}/approve", json={"score": 80}, headers=world.reviewer()))[
            "score"
        ]
        == 80
    )
    assert (
        ok(world.client.post(f"/submissions/{unscored}/approve", json={}, headers=world.reviewer()))["score"]
        == 100
    )
    assert [p["score"] for p in world.outbox_payloads("submission.approved")] == [80, 100]
    with world.ctx.db.session() as uow:
        assert sorted(uow.scalars(select(ReviewDecision.score))) == [80, 100]
    third = world.submit(world.xs, measure="M2")
    for bad in (-1, 101):
        assert (
            world.client.post(
                f"/submissions/{third}/approve", json={"score": bad}, headers=world.reviewer()
            ).status_code
            == 422
        )
    assert (
        world.client.post(
            f"/submissions/{third}/return", json={"comment": ""}, headers=world.reviewer()
        ).status_code
        == 422
    )
    assert (
        world.client.post(f"/submissions/{third}/reject", json={}, headers=world.reviewer()).status_code
        == 422
    )


def test_a_version_handed_in_again_changes_nothing_and_a_newer_one_reopens_the_item(world):
    def state(sid: str):
        with world.ctx.db.session() as uow:
            item = uow.get(ReviewItem, sid)
            versions = uow.scalars(
                select(ReviewVersion.version).where(ReviewVersion.submission_id == sid)
            ).all()
            records = uow.scalars(
                select(TimelineRecord.kind)
                .where(TimelineRecord.submission_id == sid)
                .order_by(TimelineRecord.seq)
            ).all()
            return (
                (item.version, item.state, item.title, item.unit_path, item.kind),
                sorted(versions),
                records,
            )

    sid = world.submit(world.rj, kind="good_practice", title="第一版")
    first = state(sid)
    assert first == (
        (1, "pending", "第一版", world.units[world.rj], "good_practice"),
        [1],
        ["submission.submitted"],
    )
    world.submit(
        world.rj, submission_id=sid, kind="good_practice", title="第一版"
    )  # a new event, the same version
    assert state(sid) == first
    ok(world.client.post(f"/submissions/{sid}/return", json={"comment": "请补充"}, headers=world.admin()))
    world.submit(world.rj, submission_id=sid, version=2, kind="good_practice", title="第二版")
    (version, item_state, title, _path, _kind), versions, records = state(sid)
    assert (version, item_state, title, versions) == (2, "pending", "第二版", [1, 2])
    assert records[-1] == "submission.submitted" and records.count("submission.submitted") == 2
