"""The activity timeline: records in order with actor and UTC time, scoping, and verification of the hash chain."""

from __future__ import annotations

import io
import itertools
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from services.review import cli
from services.review.timeline import chain as timeline
from services.review.timeline.chain import GENESIS
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


def run_cli(world, *args: str) -> tuple[int, str]:
    """Run `verify-timeline` against the world's database; returns the exit code and everything printed."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["verify-timeline", *args], settings=world.settings, out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def life_of_a_submission(world) -> tuple[str, str]:
    """submit → evidence → claim → comment → return → resubmit → approve → download; returns (submission, evidence)."""
    r1 = world.reviewer(1)
    sid = world.submit(world.rj)
    world.clock.advance(timedelta(minutes=1))
    photo = world.evidence(sid, world.rj)
    world.clock.advance(timedelta(minutes=1))
    ok(world.client.post(f"/submissions/{sid}/claim", json={"version": 1}, headers=r1))
    world.clock.advance(timedelta(minutes=1))
    ok(
        world.client.post(
            f"/submissions/{sid}/comments", json={"body": "横幅照片是什么时候拍的？"}, headers=r1
        ),
        201,
    )
    world.clock.advance(timedelta(minutes=1))
    ok(world.client.post(f"/submissions/{sid}/return", json={"comment": "请补充拍摄时间"}, headers=r1))
    world.clock.advance(timedelta(hours=2))
    world.submit(world.rj, submission_id=sid, version=2)
    world.clock.advance(timedelta(minutes=1))
    ok(
        world.client.post(
            f"/submissions/{sid}/approve", json={"version": 2, "score": 90}, headers=world.reviewer(2)
        )
    )
    world.clock.advance(timedelta(minutes=1))
    world.download(sid, world.rj, photo, actor="孙丽", role="inspector")
    return sid, photo


def test_a_submissions_timeline_shows_each_step_in_order_with_actor_and_utc_time(world):
    sid, photo = life_of_a_submission(world)
    records = ok(world.client.get(f"/submissions/{sid}/timeline", headers=world.admin()))
    assert [(r["kind"], r["actor"], r["actor_role"]) for r in records] == [
        ("submission.submitted", "system", "unit"),
        ("evidence.stored", "system", ""),
        ("submission.claimed", "赵强", "reviewer"),
        ("comment.added", "赵强", "reviewer"),
        ("submission.returned", "赵强", "reviewer"),
        ("submission.submitted", "system", "unit"),
        ("submission.approved", "钱敏", "reviewer"),
        ("evidence.download", "孙丽", "inspector"),
    ]
    times = [datetime.fromisoformat(r["at"].replace("Z", "+00:00")) for r in records]
    assert all(t.utcoffset() == timedelta(0) for t in times) and times == sorted(times)
    assert times[0].isoformat() == "2020-03-20T08:00:01+00:00" and times[-1] - times[0] == timedelta(
        hours=2, minutes=6, seconds=1
    )
    assert [r["detail"].get("version") for r in records if r["kind"].startswith("submission.")] == [
        1,
        1,
        1,
        2,
        2,
    ]
    assert records[4]["detail"]["comment"] == "请补充拍摄时间" and records[6]["detail"]["score"] == 90
    assert records[7]["detail"]["evidence_id"] == photo
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs) and all(len(r["hash"]) == 64 for r in records)
    # each record carries the hash of the record before it in the whole chain
    everything = ok(world.client.get(f"/units/{world.rj}/timeline", headers=world.admin()))
    assert [r["seq"] for r in everything] == seqs
    # the unit, its parent and staff read it; another unit gets 404
    for reader in (world.unit_caller(world.rj), world.unit_caller(world.xs), world.inspector()):
        assert [
            r["seq"] for r in ok(world.client.get(f"/submissions/{sid}/timeline", headers=reader))
        ] == seqs
        assert [r["seq"] for r in ok(world.client.get(f"/units/{world.rj}/timeline", headers=reader))] == seqs
    outsider = world.unit_caller(world.sx)
    assert error_code(world.client.get(f"/submissions/{sid}/timeline", headers=outsider), 404) == "not_found"
    assert error_code(world.client.get(f"/units/{world.rj}/timeline", headers=outsider), 404) == "not_found"
    assert (
        error_code(world.client.get(f"/units/{world.xs}/timeline", headers=world.unit_caller(world.rj)), 404)
        == "not_found"
    )
    assert (
        error_code(world.client.get("/units/no-such-unit/timeline", headers=world.admin()), 404)
        == "not_found"
    )
    assert ok(world.client.get(f"/units/{world.sx}/timeline", headers=world.admin())) == []
    assert (
        len(
            ok(
                world.client.get(
                    f"/units/{world.rj}/timeline", params={"limit": 2, "offset": 6}, headers=world.admin()
                )
            )
        )
        == 2
    )


def test_the_chain_links_every_record_to_the_one_before(world):
    life_of_a_submission(world)
    other = world.submit(world.sx)
    ok(
        world.client.post(
            f"/submissions/{other}/reject", json={"reason": "与宣传月无关"}, headers=world.admin()
        )
    )
    with world.ctx.db.session() as uow:
        chain = list(uow.scalars(select(timeline.TimelineRecord).order_by(timeline.TimelineRecord.seq)))
    assert [r.seq for r in chain] == list(range(1, len(chain) + 1))
    assert chain[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(chain))
    verdict = ok(world.client.get("/timeline/verify", headers=world.admin()))
    assert verdict == {"ok": True, "records": len(chain), "problems": []}
    for caller in (world.reviewer(), world.inspector(), world.unit_caller(world.sx)):
        assert world.client.get("/timeline/verify", headers=caller).status_code == 403
    code, printed = run_cli(world)
    assert code == 0 and f"校验通过：共 {len(chain)} 条记录" in printed and chain[-1].hash in printed


TAMPERING = {
    # what a DBA with full access does                                what verify must report
    "alter a record's detail": (
        ["UPDATE {t} SET detail = '{\"version\": 9}' WHERE seq = 5"],
        [("altered", 5)],
    ),
    "delete a middle record": (["DELETE FROM {t} WHERE seq = 5"], [("removed", 6)]),
    "swap two records": (
        [
            "UPDATE {t} SET seq = -1 WHERE seq = 5",
            "UPDATE {t} SET seq = 5 WHERE seq = 6",
            "UPDATE {t} SET seq = 6 WHERE seq = -1",
        ],
        [("altered", 5), ("altered", 6), ("reordered", 7)],
    ),
    "delete the tail": (["DELETE FROM {t} WHERE seq = (SELECT max(seq) FROM {t})"], [("truncated", None)]),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_verify_and_the_cli_detect_tampering(world, tampering):
    life_of_a_submission(world)
    code, _ = run_cli(world)
    assert code == 0
    with world.ctx.db.session() as uow:
        last = uow.get(timeline.TimelineHead, 1).seq
    statements, expected = TAMPERING[tampering]
    world.tamper(*statements)
    verdict = ok(world.client.get("/timeline/verify", headers=world.admin()))
    assert verdict["ok"] is False
    found = [(p["code"], p["seq"] if p["code"] != "truncated" else None) for p in verdict["problems"]]
    assert found == expected, verdict
    assert all(p["message"] for p in verdict["problems"])
    if tampering == "delete the tail":
        assert verdict["problems"][0]["seq"] == last and verdict["records"] == last - 1
    code, printed = run_cli(world)
    assert code == 1 and "校验未通过" in printed
    assert all(f"[{code_}]" in printed for code_, _ in expected)


def test_cutting_the_tail_and_its_head_row_is_caught(world):
    life_of_a_submission(world)
    world.tamper("DELETE FROM {t} WHERE seq = (SELECT max(seq) FROM {t})")
    with world.ctx.db.engine.begin() as conn:
        conn.exec_driver_sql(
            "DELETE FROM timeline_head" if world.ctx.db.is_sqlite else "DELETE FROM review.timeline_head"
        )
    verdict = ok(world.client.get("/timeline/verify", headers=world.admin()))
    assert verdict["ok"] is False and [p["code"] for p in verdict["problems"]] == ["truncated"]
    assert run_cli(world)[0] == 1


def test_a_remembered_anchor_catches_a_consistently_rewritten_tail(world):
    life_of_a_submission(world)
    with world.ctx.db.session() as uow:
        head = uow.get(timeline.TimelineHead, 1)
        anchor = f"{head.seq}:{head.hash}"
        before = uow.get(timeline.TimelineRecord, head.seq - 1).hash
    assert run_cli(world, "--expect", anchor)[0] == 0
    # drop the last record and move the head back onto the one before: the chain itself is consistent again
    world.tamper("DELETE FROM {t} WHERE seq = (SELECT max(seq) FROM {t})")
    with world.ctx.db.engine.begin() as conn:
        table = "timeline_head" if world.ctx.db.is_sqlite else "review.timeline_head"
        conn.exec_driver_sql(f"UPDATE {table} SET seq = seq - 1, hash = '{before}'")
    assert ok(world.client.get("/timeline/verify", headers=world.admin()))["ok"] is True
    code, printed = run_cli(world, "--expect", anchor)
    assert code == 1 and "[anchor_missing]" in printed
    assert run_cli(world, "--expect", "12:nothex")[0] == 1


def test_the_cli_reports_progress_on_long_chains(world):
    with world.ctx.db.transaction() as uow:
        for n in range(1001):
            timeline.append(
                uow,
                at=world.clock.now(),
                actor="system",
                kind="test.record",
                subject_type="unit",
                subject_id=world.xs,
                unit_id=world.xs,
                detail={"n": n},
            )
    code, printed = run_cli(world)
    assert code == 0 and "已校验 1000 条" in printed and "共 1001 条记录" in printed


@pytest.mark.integration  # starts processes
def test_the_command_exits_1_on_a_tampered_chain(world):
    import os
    import subprocess
    import sys
    from pathlib import Path

    life_of_a_submission(world)
    env = {
        **os.environ,
        "DATA_DIR": str(world.settings.data_dir),
        "DATABASE_URL": world.settings.database_url,
    }
    command = [sys.executable, "-m", "services.review.cli", "verify-timeline"]
    root = Path(__file__).resolve().parents[2]
    intact = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert intact.returncode == 0, intact.stderr
    assert "校验通过：共 8 条记录，哈希链完整。" in intact.stdout
    world.tamper("UPDATE {t} SET actor = '冒名者' WHERE seq = 3")
    broken = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert (
        broken.returncode == 1
        and "[altered] 第 3 条记录内容被改动" in broken.stdout
        and "发现 1 处问题" in broken.stdout
    )
