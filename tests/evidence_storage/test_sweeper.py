"""The orphan sweeper: what a process killed between writing bytes and committing rows leaves behind is removed
after the grace period, and nothing a row or a live upload session refers to is touched."""

from __future__ import annotations

import io

from services.evidence_storage.sweeper import sweep
from tests.evidence_storage import media
from tests.evidence_storage.test_integrity import finished


def _orphans(world) -> list[str]:
    report = finished(world)
    return sorted(p["object_key"] for p in report["problems"] if p["problem"] == "orphan")


def _leave_behind(world, submission: dict) -> list[str]:
    """What ingest.accept() had written when the API was killed before its rows committed."""
    keys = [
        f"evidence/{submission['unit_id']}/{submission['id']}/killed.jpg",
        f"previews/{submission['unit_id']}/{submission['id']}/killed.jpg",
        "staging/killed-docx",
    ]
    for key in keys:
        world.ctx.blobs.put(key, io.BytesIO(b"half a story"), content_type="image/jpeg")
    return sorted(keys)


def test_orphans_older_than_the_grace_period_are_swept_and_nothing_else(make_world):
    world = make_world(evidence_orphan_grace_s=0)
    submission = world.submission()
    kept = world.upload(submission["id"], media.photo(7, size=(64, 64)), "kept.jpg").json()
    photo = media.photo(9, size=(64, 64))
    session = world.client.post(
        f"/submissions/{submission['id']}/upload-sessions", json={"filename": "big.jpg", "size": len(photo)}
    ).json()
    chunk = world.client.put(
        f"/upload-sessions/{session['id']}",
        content=photo[:100],
        params={"offset": 0},
        headers={"Content-Type": "application/octet-stream"},
    )
    assert chunk.status_code < 300, chunk.text
    leftovers = _leave_behind(world, submission)
    assert _orphans(world) == leftovers  # the live session's chunk is not an orphan

    assert sweep(world.ctx) == {"removed": 3, "aborted_uploads": 0}
    assert _orphans(world) == []
    check = finished(world)
    assert check["problems"] == [] and check["checked"] == 1
    assert world.client.get(f"/evidence/{kept['id']}").status_code == 200
    assert [
        k for k in world.stored_keys() if k.startswith("staging/sessions/")
    ]  # the live session kept its chunk


def test_young_orphans_are_left_for_a_later_sweep(make_world):
    world = make_world(evidence_orphan_grace_s=3600)
    submission = world.submission()
    leftovers = _leave_behind(world, submission)
    assert sweep(world.ctx) == {"removed": 0, "aborted_uploads": 0}
    assert _orphans(world) == leftovers


def test_unfinished_multipart_uploads_are_aborted(make_world):
    world = make_world("s3", evidence_orphan_grace_s=0)
    submission = world.submission()
    world.upload(submission["id"], media.photo(8, size=(32, 32)), "warm.jpg")  # the bucket exists
    client = world.s3.client()
    # a multipart upload whose process died: parts stay in S3, invisible to listings, until aborted
    upload_id = client._create_multipart_upload(
        bucket_name=world.s3.bucket,
        object_name="evidence/x/y/dead.mp4",
        headers={"Content-Type": "video/mp4"},
    )
    assert world.s3.pending_uploads() == ["evidence/x/y/dead.mp4"] and upload_id
    assert sweep(world.ctx)["aborted_uploads"] == 1
    assert world.s3.pending_uploads() == []
