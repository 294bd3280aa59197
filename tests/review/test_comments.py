"""A submission's comment thread: who may read and post, versions, timeline and audit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.review.test_queue_support import error_code, ok, open_world


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    """A review service (SQLite or PostgreSQL) with a county, its township and an unrelated county."""
    w = open_world(request, tmp_path, request.param)
    w.xs = w.unit("相山区信访局")
    w.rj = w.unit("任集街道", parent=w.xs)
    w.sx = w.unit("濉溪县信访局")
    yield w
    w.close()


def test_reviewers_admins_and_the_unit_itself_talk_on_a_submission(world):
    sid = world.submit(world.rj)
    path = f"/submissions/{sid}/comments"
    first = ok(
        world.client.post(path, json={"body": "横幅照片看不清，能否补一张？"}, headers=world.reviewer()), 201
    )
    assert (first["author"], first["author_role"], first["version"], first["unit_id"]) == (
        "赵强",
        "reviewer",
        1,
        world.rj,
    )
    assert first["at"].startswith("2020-03-20T08:00:01") and first["at"].endswith(("Z", "+00:00"))
    for body, headers in (
        ("  已补拍，稍后上传。 ", world.unit_caller(world.rj)),
        ("请街道尽快补充。", world.unit_caller(world.xs)),  # the parent unit
        ("收到。", world.admin()),
    ):
        world.clock.advance(timedelta(minutes=1))
        ok(world.client.post(path, json={"body": body}, headers=headers), 201)
    thread = ok(world.client.get(path, headers=world.inspector()))
    assert [(c["author_role"], c["body"]) for c in thread] == [
        ("reviewer", "横幅照片看不清，能否补一张？"),
        ("unit", "已补拍，稍后上传。"),
        ("unit", "请街道尽快补充。"),
        ("admin", "收到。"),
    ]
    assert (
        ok(world.client.get(path, params={"limit": 2, "offset": 1}, headers=world.unit_caller(world.rj)))[0][
            "body"
        ]
        == "已补拍，稍后上传。"
    )
    records = ok(world.client.get(f"/submissions/{sid}/timeline", headers=world.admin()))
    added = [r for r in records if r["kind"] == "comment.added"]
    assert (added[0]["actor"], added[0]["actor_role"], added[0]["detail"]["body"]) == (
        "赵强",
        "reviewer",
        "横幅照片看不清，能否补一张？",
    )
    assert added[0]["detail"]["comment_id"] == first["id"] and len(added) == 4
    assert world.audit_actions(sid) == ["comment.added"] * 4


def test_other_units_get_404_and_inspectors_only_read(world):
    sid = world.submit(world.xs)
    path = f"/submissions/{sid}/comments"
    ok(world.client.post(path, json={"body": "请补充会议签到表"}, headers=world.reviewer()), 201)
    for outsider in (
        world.unit_caller(world.sx),
        world.unit_caller(world.rj),
    ):  # another county; a unit below the owner
        assert error_code(world.client.get(path, headers=outsider), 404) == "not_found"
        assert (
            error_code(world.client.post(path, json={"body": "看看"}, headers=outsider), 404) == "not_found"
        )
        assert "请补充会议签到表" not in world.client.get(path, headers=outsider).text
    assert world.client.post(path, json={"body": "已核实"}, headers=world.inspector()).status_code == 403
    assert world.client.get(path, headers={}).status_code == 401
    assert (
        error_code(world.client.get("/submissions/nope/comments", headers=world.admin()), 404) == "not_found"
    )
    assert len(ok(world.client.get(path, headers=world.inspector()))) == 1


def test_bodies_are_checked_and_comments_carry_the_version_they_were_about(world):
    sid = world.submit(world.xs)
    path = f"/submissions/{sid}/comments"
    for body in ("", "   ", "长" * 5001):
        assert world.client.post(path, json={"body": body}, headers=world.reviewer()).status_code == 422
    assert (
        ok(world.client.post(path, json={"body": "长" * 5000}, headers=world.reviewer()), 201)["body"]
        == "长" * 5000
    )
    ok(world.client.post(f"/submissions/{sid}/return", json={"comment": "请补充"}, headers=world.reviewer()))
    world.clock.advance(timedelta(minutes=1))
    ok(world.client.post(path, json={"body": "退回后补充说明"}, headers=world.unit_caller(world.xs)), 201)
    world.submit(world.xs, submission_id=sid, version=2)
    ok(world.client.post(path, json={"body": "第二版已收到"}, headers=world.reviewer()), 201)
    assert [c["version"] for c in ok(world.client.get(path, headers=world.admin()))] == [1, 1, 2]
