"""Claims, releases and their expiry; decisions under claims; two reviewers racing; bulk decisions."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from services.review.models import ReviewDecision
from services.review.queue import decisions
from services.review.queue import use_cases as queue
from services.review.timeline import chain as timeline
from shared.auth import REVIEWER, Principal
from shared.http import ApiError
from tests.review.test_queue_support import error_code, ok, open_world


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    """A review service (SQLite or PostgreSQL) with two counties."""
    w = open_world(request, tmp_path, request.param)
    w.xs = w.unit("相山区信访局")
    w.sx = w.unit("濉溪县信访局")
    yield w
    w.close()


def test_claim_release_and_takeover_after_expiry(world):
    sid = world.submit(world.xs)
    r1, r2, admin = world.reviewer(1), world.reviewer(2), world.admin()
    claimed = ok(world.client.post(f"/submissions/{sid}/claim", json={"version": 1}, headers=r1))
    assert (claimed["claimed_by"], claimed["claim_live"]) == ("r1", True)
    assert claimed["claim_expires_at"].startswith(
        "2020-03-20T08:30:01"
    )  # REVIEW_CLAIM_TTL_S = 1800 by default
    assert world.outbox_payloads("submission.claimed") == [
        {"submission_id": sid, "unit_id": world.xs, "version": 1, "reviewer": "赵强"}
    ]
    # another reviewer can neither take it nor decide it while the claim lives
    assert (
        error_code(world.client.post(f"/submissions/{sid}/claim", json={}, headers=r2), 409)
        == "claimed_by_other"
    )
    assert (
        error_code(world.client.post(f"/submissions/{sid}/approve", json={}, headers=r2), 409)
        == "claimed_by_other"
    )
    assert error_code(world.client.post(f"/submissions/{sid}/release", headers=r2), 403) == "not_claim_holder"
    # the holder claiming again renews the claim without a second event
    world.clock.advance(timedelta(minutes=20))
    renewed = ok(world.client.post(f"/submissions/{sid}/claim", headers=r1))
    assert renewed["claim_expires_at"].startswith("2020-03-20T08:50:01")
    assert world.outbox_types().count("submission.claimed") == 1
    # filters see live claims only
    q = lambda headers, **params: [
        i["submission_id"] for i in ok(world.client.get("/queue", params=params, headers=headers))
    ]
    assert q(r1, claimed_by="me") == [sid] and q(r2, claimed_by="me") == [] and q(r2, claimed_by="none") == []
    released = ok(world.client.post(f"/submissions/{sid}/release", headers=r1))
    assert released["claimed_by"] is None and released["claim_live"] is False
    assert world.outbox_payloads("submission.released")[0]["version"] == 1
    assert error_code(world.client.post(f"/submissions/{sid}/release", headers=r1), 409) == "not_claimed"
    assert q(r2, claimed_by="none") == [sid]
    # r2 claims, goes quiet; once the claim expires r1 may take it over
    ok(world.client.post(f"/submissions/{sid}/claim", headers=r2))
    world.clock.advance(timedelta(seconds=1799))
    assert error_code(world.client.post(f"/submissions/{sid}/claim", headers=r1), 409) == "claimed_by_other"
    world.clock.advance(timedelta(seconds=2))
    expired = ok(world.client.get(f"/submissions/{sid}", headers=r1))
    assert (expired["claimed_by"], expired["claim_live"]) == ("r2", False)
    assert q(r1, claimed_by="r2") == [] and q(r1, claimed_by="none") == [sid]
    taken = ok(world.client.post(f"/submissions/{sid}/claim", headers=r1))
    assert taken["claimed_by"] == "r1"
    records = ok(world.client.get(f"/submissions/{sid}/timeline", headers=admin))
    assert [r["kind"] for r in records] == [
        "submission.submitted",
        "submission.claimed",
        "submission.released",
        "submission.claimed",
        "submission.claimed",
    ]
    assert records[-1]["detail"] == {"version": 1, "reviewer_id": "r1", "taken_over_from": "r2"}
    assert (records[1]["actor"], records[1]["actor_role"]) == ("赵强", "reviewer")
    assert world.audit_actions(sid) == [
        "submission.claimed",
        "submission.claim_renewed",
        "submission.released",
        "submission.claimed",
        "submission.claimed",
    ]
    # a decision ends the claim
    decided = ok(world.client.post(f"/submissions/{sid}/approve", json={"score": 90}, headers=r1))
    assert decided["state"] == "approved" and decided["claimed_by"] is None


def test_claims_check_version_state_and_roles(world):
    sid = world.submit(world.xs)
    assert (
        error_code(
            world.client.post(f"/submissions/{sid}/claim", json={"version": 2}, headers=world.reviewer()), 409
        )
        == "stale_version"
    )
    for headers in (world.inspector(), world.unit_caller(world.xs)):
        assert world.client.post(f"/submissions/{sid}/claim", headers=headers).status_code == 403
        assert world.client.post(f"/submissions/{sid}/release", headers=headers).status_code == 403
    assert world.client.post(f"/submissions/{sid}/claim", headers={}).status_code == 401
    assert (
        error_code(world.client.post("/submissions/missing/claim", headers=world.reviewer()), 404)
        == "not_found"
    )
    ok(
        world.client.post(
            f"/submissions/{sid}/reject", json={"reason": "与宣传月无关"}, headers=world.reviewer()
        )
    )
    assert (
        error_code(world.client.post(f"/submissions/{sid}/claim", headers=world.reviewer()), 409)
        == "not_pending"
    )
    # a new version clears the old claim
    other = world.submit(world.sx)
    ok(world.client.post(f"/submissions/{other}/claim", headers=world.reviewer(1)))
    ok(
        world.client.post(
            f"/submissions/{other}/return", json={"comment": "请补充照片"}, headers=world.reviewer(1)
        )
    )
    world.submit(world.sx, submission_id=other, version=2)
    fresh = ok(
        world.client.post(f"/submissions/{other}/claim", json={"version": 2}, headers=world.reviewer(2))
    )
    assert (fresh["version"], fresh["claimed_by"]) == (2, "r2")


def test_admins_may_decide_and_release_over_a_reviewers_claim(world):
    first, second = world.submit(world.xs), world.submit(world.sx)
    for sid in (first, second):
        ok(world.client.post(f"/submissions/{sid}/claim", headers=world.reviewer(1)))
    assert (
        ok(
            world.client.post(
                f"/submissions/{first}/return", json={"comment": "请补充横幅照片"}, headers=world.admin()
            )
        )["state"]
        == "returned"
    )
    assert (
        ok(world.client.post(f"/submissions/{second}/release", headers=world.admin()))["claimed_by"] is None
    )
    assert world.outbox_types() == [
        "submission.claimed",
        "submission.claimed",
        "submission.returned",
        "submission.released",
    ]


def _race(world, submission_id: str, principals: list[Principal], action) -> list[object]:
    """Run action(submission_id, principal) for each principal at the same moment, each on its own thread."""
    barrier = threading.Barrier(len(principals))
    outcomes: list[object] = [None] * len(principals)

    def run(index: int, principal: Principal) -> None:
        barrier.wait()
        try:
            outcomes[index] = action(submission_id, principal)
        except ApiError as exc:
            outcomes[index] = exc.detail["code"]

    threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(principals)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_reviewers_never_both_decide_one_version(world):
    reviewers = [
        Principal(id="r1", name="赵强", role=REVIEWER),
        Principal(id="r2", name="钱敏", role=REVIEWER),
    ]
    submissions = [world.submit(world.xs if n % 2 else world.sx, measure=f"M{n % 7 + 1}") for n in range(8)]

    def approve(sid: str, principal: Principal):
        return decisions.decide(
            sid,
            "submission.approved",
            reviewer=principal.name,
            version=1,
            comment=None,
            score=90,
            ctx=world.ctx,
            principal=principal,
        )

    for sid in submissions:
        outcomes = _race(world, sid, reviewers, approve)
        assert sum(1 for o in outcomes if o == "already_decided") == 1, outcomes
        assert sum(1 for o in outcomes if not isinstance(o, str) and o is not None) == 1, outcomes
    with world.ctx.db.session() as uow:
        counts = dict(
            uow.execute(
                select(ReviewDecision.submission_id, func.count()).group_by(ReviewDecision.submission_id)
            ).all()
        )
        assert counts == dict.fromkeys(submissions, 1)
        assert timeline.verify(uow).ok
    assert world.outbox_types().count("submission.approved") == len(submissions)


def test_two_reviewers_never_both_claim_one_version(world):
    reviewers = [
        Principal(id="r1", name="赵强", role=REVIEWER),
        Principal(id="r2", name="钱敏", role=REVIEWER),
    ]
    for n in range(6):
        sid = world.submit(world.xs, measure=f"M{n + 1}")
        outcomes = _race(
            world,
            sid,
            reviewers,
            lambda s, p: queue.claim(s, version=1, principal=p, ctx=world.ctx).claimed_by,
        )
        loser, winner = sorted(outcomes)
        assert loser == "claimed_by_other" and winner in ("r1", "r2"), outcomes
    assert world.outbox_types().count("submission.claimed") == 6


def test_bulk_decisions_report_each_items_outcome(world):
    r1, r2 = world.reviewer(1), world.reviewer(2)
    fine = [world.submit(world.xs, measure=f"M{n}") for n in (1, 2, 3)]
    decided = world.submit(world.sx, measure="M1")
    ok(world.client.post(f"/submissions/{decided}/reject", json={"reason": "与宣传月无关"}, headers=r2))
    stale = world.submit(world.sx, measure="M2")
    held = world.submit(world.sx, measure="M3")
    ok(world.client.post(f"/submissions/{held}/claim", headers=r2))
    mine = world.submit(world.sx, measure="M4")
    ok(world.client.post(f"/submissions/{mine}/claim", headers=r1))
    items = [{"submission_id": s, "version": 1} for s in fine] + [
        {"submission_id": decided, "version": 1},
        {"submission_id": stale, "version": 2},
        {"submission_id": held, "version": 1},
        {"submission_id": "no-such-submission", "version": 1},
        {"submission_id": mine, "version": 1},
        {"submission_id": fine[0], "version": 1},
    ]
    result = ok(
        world.client.post(
            "/bulk/approve", json={"items": items, "score": 85, "comment": "材料齐全"}, headers=r1
        )
    )
    assert (result["succeeded"], result["failed"]) == (4, 5)
    outcomes = [(r["submission_id"], r["ok"], r["state"], r["code"]) for r in result["results"]]
    assert outcomes == [
        (fine[0], True, "approved", None),
        (fine[1], True, "approved", None),
        (fine[2], True, "approved", None),
        (decided, False, None, "already_decided"),
        (stale, False, None, "already_decided"),
        (held, False, None, "claimed_by_other"),
        ("no-such-submission", False, None, "not_found"),
        (mine, True, "approved", None),
        (fine[0], False, None, "already_decided"),
    ]
    assert all(r["message"] for r in result["results"] if not r["ok"])
    assert "认领" in result["results"][5]["message"]
    assert [p["score"] for p in world.outbox_payloads("submission.approved")] == [85, 85, 85, 85]
    assert world.audit_actions(fine[1]) == ["submission.approved"]

    returns = [world.submit(world.xs, measure=f"M{n}", title="宣传横幅") for n in (4, 5)]
    back = ok(
        world.client.post(
            "/bulk/return",
            json={
                "items": [{"submission_id": s, "version": 1} for s in returns],
                "comment": "请补充现场照片",
            },
            headers=r2,
        )
    )
    assert back["succeeded"] == 2 and {r["state"] for r in back["results"]} == {"returned"}
    assert [p["comment"] for p in world.outbox_payloads("submission.returned")] == ["请补充现场照片"] * 2
    # a return needs its comment; no more than 200 items per call; reviewers and admins only
    assert world.client.post("/bulk/return", json={"items": items[:1]}, headers=r1).status_code == 422
    too_many = [{"submission_id": f"s{n}", "version": 1} for n in range(201)]
    assert (
        error_code(world.client.post("/bulk/approve", json={"items": too_many}, headers=r1), 422)
        == "too_many_items"
    )
    assert world.client.post("/bulk/approve", json={"items": []}, headers=r1).status_code == 422
    assert (
        world.client.post(
            "/bulk/approve", json={"items": items[:1]}, headers=world.unit_caller(world.xs)
        ).status_code
        == 403
    )
    assert (
        world.client.post("/bulk/approve", json={"items": items[:1]}, headers=world.inspector()).status_code
        == 403
    )


def test_an_admin_bulk_approves_over_claims(world):
    held = world.submit(world.xs)
    ok(world.client.post(f"/submissions/{held}/claim", headers=world.reviewer(2)))
    result = ok(
        world.client.post(
            "/bulk/approve", json={"items": [{"submission_id": held, "version": 1}]}, headers=world.admin()
        )
    )
    assert result["results"][0]["ok"] and world.outbox_payloads("submission.approved")[0]["score"] == 100


def test_decisions_queued_on_one_row_lock_let_exactly_one_through_on_postgresql(tmp_path, postgres_url):
    """Both reviewers' UPDATEs wait on the same row lock and are let go together: PostgreSQL re-checks the loser's WHERE."""
    from sqlalchemy import text

    from tests.helpers import wait_until
    from tests.review.test_queue_support import ReviewWorld

    world = ReviewWorld(tmp_path, database_url=postgres_url)
    try:
        sid = world.submit(world.unit("相山区信访局"))
        reviewers = [
            Principal(id="r1", name="赵强", role=REVIEWER),
            Principal(id="r2", name="钱敏", role=REVIEWER),
        ]
        outcomes: list[object] = []
        with world.ctx.db.engine.connect() as blocker:
            blocker.execute(
                text("SELECT 1 FROM review.review_items WHERE submission_id = :s FOR UPDATE"), {"s": sid}
            )
            threads = [
                threading.Thread(target=lambda p=p: outcomes.append(_decide_or_code(world, sid, p)))
                for p in reviewers
            ]
            for thread in threads:
                thread.start()
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            # Activity statistics are cached per transaction: poll outside any, on a connection of its own.
            with world.ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
                wait_until(
                    lambda: watcher.execute(text(waiting)).scalar() == 2,
                    timeout=60,
                    what="both decisions to wait on the row lock",
                )
            blocker.rollback()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(o if isinstance(o, str) else "decided" for o in outcomes) == [
            "already_decided",
            "decided",
        ]
        with world.ctx.db.session() as uow:
            assert uow.scalar(select(func.count()).select_from(ReviewDecision)) == 1
            assert timeline.verify(uow).ok
    finally:
        world.close()


def _decide_or_code(world, sid: str, principal: Principal) -> object:
    try:
        return decisions.decide(
            sid,
            "submission.approved",
            reviewer=principal.name,
            version=1,
            comment=None,
            ctx=world.ctx,
            principal=principal,
        )
    except ApiError as exc:
        return exc.detail["code"]


def test_the_worker_gives_back_expired_claims_so_intake_leaves_under_review(world):
    sid, other = world.submit(world.xs), world.submit(world.sx)
    ok(world.client.post(f"/submissions/{sid}/claim", headers=world.reviewer(1)))
    world.clock.advance(timedelta(minutes=20))
    ok(world.client.post(f"/submissions/{other}/claim", headers=world.reviewer(2)))
    assert queue.release_expired(world.ctx) == 0  # both claims still live
    world.clock.advance(timedelta(minutes=11))
    assert queue.release_expired(world.ctx) == 1  # only the first one is older than REVIEW_CLAIM_TTL_S
    assert queue.release_expired(world.ctx) == 0
    assert [p["submission_id"] for p in world.outbox_payloads("submission.released")] == [sid]
    assert ok(world.client.get(f"/submissions/{sid}", headers=world.reviewer(2)))["claimed_by"] is None
    assert ok(world.client.get(f"/submissions/{other}", headers=world.reviewer(2)))["claimed_by"] == "r2"
    with world.ctx.db.session() as uow:
        last = timeline.for_submission(uow, sid)[-1]
    assert (last.kind, last.actor, last.detail["reason"]) == (
        "submission.released",
        "system",
        "认领超时自动释放",
    )
