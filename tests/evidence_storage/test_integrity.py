"""The integrity check re-hashes stored objects and reports mismatches, missing and orphan objects; a request
queues it and the evidence worker runs it, with its progress on GET."""

from __future__ import annotations

import io

from services.evidence_storage import integrity
from tests.evidence_storage import media
from tests.helpers import wait_until


def finished(world, body: dict | None = None) -> dict:
    """Request a check, then poll it until the worker is done with it."""
    queued = world.client.post("/integrity-checks", json=body)
    assert queued.status_code == 202 and queued.json()["state"] in ("queued", "running")

    def done():
        check = world.client.get(f"/integrity-checks/{queued.json()['id']}").json()
        return check if check["state"] in ("done", "failed") else None

    return wait_until(done, timeout=30, what="the integrity check to finish")


def test_full_check_reports_tampered_missing_and_orphan_objects(world):
    submission = world.submission()
    rows = [
        world.upload(submission["id"], media.photo(70 + n, size=(64, 64)), f"{n}.jpg").json()
        for n in range(4)
    ]
    clean = finished(world)
    assert (clean["state"], clean["checked"], clean["total"], clean["ok"], clean["problems"]) == (
        "done",
        4,
        4,
        4,
        [],
    )

    keys = {
        row["id"]: next(k for k in world.stored_keys() if k.startswith("evidence/") and row["id"] in k)
        for row in rows
    }
    world.ctx.blobs.put(
        keys[rows[0]["id"]], io.BytesIO(b"bit rot"), content_type="image/jpeg"
    )  # size and hash differ
    original = b"".join(world.ctx.blobs.read(keys[rows[1]["id"]]))
    flipped = bytes([original[0]]) + bytes([original[1] ^ 1]) + original[2:]  # same size, one bit off
    world.ctx.blobs.put(keys[rows[1]["id"]], io.BytesIO(flipped), content_type="image/jpeg")
    world.ctx.blobs.delete(keys[rows[2]["id"]])
    world.ctx.blobs.put("evidence/stray/left-behind.jpg", io.BytesIO(b"x"), content_type="image/jpeg")

    report = finished(world, {})
    problems = {(p["evidence_id"], p["problem"]) for p in report["problems"]}
    assert problems == {
        (rows[0]["id"], "size"),
        (rows[1]["id"], "sha256"),
        (rows[2]["id"], "missing"),
        (None, "orphan"),
    }
    assert (report["checked"], report["ok"]) == (4, 1)
    assert (
        next(p for p in report["problems"] if p["problem"] == "orphan")["object_key"]
        == "evidence/stray/left-behind.jpg"
    )

    sample = finished(world, {"sample": 2})
    assert sample["checked"] == 2 and sample["requested"] == "2"
    assert not [
        p for p in sample["problems"] if p["problem"] == "orphan"
    ]  # orphans are listed by full runs only
    history = world.client.get("/integrity-checks").json()
    assert [run["requested"] for run in history] == ["2", "all", "all"]
    assert world.client.get("/integrity-checks/nope").status_code == 404


def test_progress_is_saved_while_a_long_check_runs(world, monkeypatch):
    submission = world.submission()
    for n in range(5):
        world.upload(submission["id"], media.photo(90 + n, size=(32, 32)), f"{n}.jpg")
    monkeypatch.setattr(integrity, "PROGRESS_EVERY", 2)
    seen: list[tuple[int, int]] = []
    verify = integrity._verify

    def watched(ctx, key, size, sha256):
        with ctx.db.session() as uow:  # what GET would show while this object is being re-hashed
            check = uow.scalars(
                integrity.select(integrity.IntegrityCheck).where(integrity.IntegrityCheck.state == "running")
            ).one()
            seen.append((check.checked, check.total))
        return verify(ctx, key, size, sha256)

    monkeypatch.setattr(integrity, "_verify", watched)
    report = integrity.run_check(sample=None, ctx=world.ctx)
    assert (report.state, report.checked, report.total) == ("done", 5, 5)
    assert seen == [(0, 5), (0, 5), (2, 5), (2, 5), (4, 5)]
