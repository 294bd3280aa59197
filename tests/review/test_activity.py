"""services/review/activity.py: a person's act gives one timeline record and one audit row that agree; the rules
acting alone give the timeline record only."""

from __future__ import annotations

from sqlalchemy import select

from services.review import activity
from services.review.models import AUDIT, TimelineRecord
from services.review.timeline import chain
from shared.auth import REVIEWER, Principal
from shared.request_context import RequestInfo
from tests.review.test_queue_support import START, ReviewWorld

REVIEWER_ZHAO = Principal(id="r1", name="赵强", role=REVIEWER)


def _written(world: ReviewWorld) -> tuple[list[TimelineRecord], list[dict]]:
    with world.ctx.db.session() as uow:
        records = list(uow.scalars(select(TimelineRecord).order_by(TimelineRecord.seq)))
        rows = [dict(row) for row in uow.execute(select(AUDIT).order_by(AUDIT.c.id)).mappings()]
    return records, rows


def test_a_persons_act_writes_a_timeline_record_and_an_audit_row_that_agree(tmp_path):
    world = ReviewWorld(tmp_path)
    try:
        actor = activity.Actor.of(REVIEWER_ZHAO, RequestInfo(client_ip="192.0.2.7", request_id="req-7"))
        with world.ctx.db.transaction() as uow:
            activity.record(
                uow,
                actor,
                "comment.added",
                ("submission", "s-1"),
                at=START,
                unit_id="u-1",
                submission_id="s-1",
                detail={"comment_id": "c-1", "version": 2, "body": "请补充照片"},
                audit_detail={"comment_id": "c-1", "version": 2},
            )
        records, rows = _written(world)
        assert [
            (r.kind, r.actor, r.actor_role, r.subject_type, r.subject_id, r.unit_id, r.submission_id)
            for r in records
        ] == [("comment.added", "赵强", "reviewer", "submission", "s-1", "u-1", "s-1")]
        assert records[0].detail == {"comment_id": "c-1", "version": 2, "body": "请补充照片"}
        assert [
            (
                a["action"],
                a["actor_id"],
                a["actor_name"],
                a["resource_type"],
                a["resource_id"],
                a["detail"],
                a["client_ip"],
                a["request_id"],
            )
            for a in rows
        ] == [
            (
                "comment.added",
                "r1",
                "赵强",
                "submission",
                "s-1",
                {"comment_id": "c-1", "version": 2},
                "192.0.2.7",
                "req-7",
            )
        ]
        assert (
            records[0].at.replace(tzinfo=None)
            == rows[0]["at"].replace(tzinfo=None)
            == START.replace(tzinfo=None)
        )
        with world.ctx.db.session() as uow:
            assert chain.verify(uow).ok
    finally:
        world.close()


def test_without_audit_detail_both_records_carry_the_same_detail(tmp_path):
    world = ReviewWorld(tmp_path)
    try:
        detail = {"version": 1, "reviewer_id": "r1"}
        with world.ctx.db.transaction() as uow:
            activity.record(
                uow,
                activity.Actor.of(REVIEWER_ZHAO),
                "submission.claimed",
                ("submission", "s-1"),
                at=START,
                detail=detail,
            )
        records, rows = _written(world)
        assert records[0].detail == rows[0]["detail"] == detail
    finally:
        world.close()


def test_the_rules_acting_alone_leave_no_audit_row_but_a_persons_call_to_them_does(tmp_path):
    world = ReviewWorld(tmp_path)
    try:
        with world.ctx.db.transaction() as uow:
            activity.record(
                uow,
                activity.Actor(activity.SYSTEM),
                "submission.released",
                ("submission", "s-1"),
                at=START,
                detail={"version": 1},
            )
            activity.record(
                uow,
                activity.Actor(activity.SYSTEM, "", REVIEWER_ZHAO),
                "supervision.escalated",
                ("supervision", "v-1"),
                at=START,
                detail={"level": "red"},
            )
        records, rows = _written(world)
        assert [(r.kind, r.actor) for r in records] == [
            ("submission.released", "system"),
            ("supervision.escalated", "system"),
        ]
        assert [(a["action"], a["actor_name"]) for a in rows] == [("supervision.escalated", "赵强")]
    finally:
        world.close()
