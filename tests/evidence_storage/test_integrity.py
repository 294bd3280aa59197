"""The integrity check re-hashes stored objects and reports mismatches, missing and orphan objects."""
from __future__ import annotations

import io

from tests.evidence_storage import media


def test_full_check_reports_tampered_missing_and_orphan_objects(world):
    submission = world.submission()
    rows = [world.upload(submission["id"], media.photo(70 + n, size=(64, 64)), f"{n}.jpg").json() for n in range(4)]
    clean = world.client.post("/integrity-checks")
    assert clean.status_code == 201
    assert (clean.json()["checked"], clean.json()["ok"], clean.json()["problems"]) == (4, 4, [])

    keys = {row["id"]: next(k for k in world.stored_keys() if k.startswith("evidence/") and row["id"] in k) for row in rows}
    world.ctx.blobs.put(keys[rows[0]["id"]], io.BytesIO(b"bit rot"), content_type="image/jpeg")  # size and hash differ
    original = b"".join(world.ctx.blobs.read(keys[rows[1]["id"]]))
    flipped = bytes([original[0]]) + bytes([original[1] ^ 1]) + original[2:]  # same size, one bit off
    world.ctx.blobs.put(keys[rows[1]["id"]], io.BytesIO(flipped), content_type="image/jpeg")
    world.ctx.blobs.delete(keys[rows[2]["id"]])
    world.ctx.blobs.put("evidence/stray/left-behind.jpg", io.BytesIO(b"x"), content_type="image/jpeg")

    report = world.client.post("/integrity-checks", json={}).json()
    problems = {(p["evidence_id"], p["problem"]) for p in report["problems"]}
    assert problems == {(rows[0]["id"], "size"), (rows[1]["id"], "sha256"), (rows[2]["id"], "missing"), (None, "orphan")}
    assert (report["checked"], report["ok"]) == (4, 1)
    assert next(p for p in report["problems"] if p["problem"] == "orphan")["object_key"] == "evidence/stray/left-behind.jpg"

    sample = world.client.post("/integrity-checks", json={"sample": 2}).json()
    assert sample["checked"] == 2 and sample["requested"] == "2"
    assert not [p for p in sample["problems"] if p["problem"] == "orphan"]  # orphans are listed by full runs only
    history = world.client.get("/integrity-checks").json()
    assert [run["requested"] for run in history] == ["2", "all", "all"]
