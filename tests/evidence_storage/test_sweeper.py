"""The orphan sweeper: what a process killed between writing bytes and committing rows leaves behind is removed
after the grace period, and nothing a row or a live upload session refers to is touched."""

from __future__ import annotations

import hashlib
import io

import pytest
from prometheus_client import REGISTRY

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
    world.drive_job("evidence-orphan-sweep")  # the test runs the sweep itself
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

    swept_before = REGISTRY.get_sample_value("cep_orphans_swept_total", {"kind": "object"}) or 0.0
    assert sweep(world.ctx) == {"removed": 3, "aborted_uploads": 0}
    assert REGISTRY.get_sample_value("cep_orphans_swept_total", {"kind": "object"}) == swept_before + 3
    assert _orphans(world) == []
    check = finished(world)
    assert check["problems"] == [] and check["checked"] == 1
    assert world.client.get(f"/evidence/{kept['id']}").status_code == 200
    assert world.pending_uploads() != []  # the live session kept its chunk, a part of its multipart upload


def test_young_orphans_are_left_for_a_later_sweep(make_world):
    world = make_world(evidence_orphan_grace_s=3600)
    world.drive_job("evidence-orphan-sweep")  # the test runs the sweep itself
    submission = world.submission()
    leftovers = _leave_behind(world, submission)
    assert sweep(world.ctx) == {"removed": 0, "aborted_uploads": 0}
    assert _orphans(world) == leftovers


def test_unfinished_multipart_uploads_are_aborted(make_world):
    world = make_world("s3", evidence_orphan_grace_s=0)
    world.drive_job("evidence-orphan-sweep")  # the test runs the sweep itself
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


@pytest.mark.parametrize("store", ["folder", "s3"])
def test_a_live_sessions_upload_is_left_alone_and_an_abandoned_one_is_aborted(make_world, store):
    world = make_world(store, evidence_orphan_grace_s=0)  # every upload is past the grace period at once
    world.drive_job("evidence-orphan-sweep")  # the test runs the sweep itself
    submission = world.submission()
    video = media.mp4(bytes((3 * i) % 256 for i in range(256)) * (24 * 1024), seconds=1.0)  # ~6 MiB
    session = world.client.post(
        f"/submissions/{submission['id']}/upload-sessions", json={"filename": "v.mp4", "size": len(video)}
    ).json()
    first = world.client.put(
        f"/upload-sessions/{session['id']}", content=video[: 5 * 1024 * 1024], params={"offset": 0}
    )
    assert first.status_code == 200, first.text
    # an upload begun by a process that died before its session row recorded it: nobody will finish it
    world.ctx.blobs.start_upload("evidence/x/y/abandoned.mp4", content_type="video/mp4")
    assert len(world.pending_uploads()) == 2

    assert sweep(world.ctx) == {"removed": 0, "aborted_uploads": 1}
    assert len(world.pending_uploads()) == 1  # the live session's
    rest = world.client.put(
        f"/upload-sessions/{session['id']}",
        content=video[5 * 1024 * 1024 :],
        params={"offset": 5 * 1024 * 1024},
    )
    assert rest.status_code == 200, rest.text
    done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(video).hexdigest()
    assert world.pending_uploads() == [] and sweep(world.ctx) == {"removed": 0, "aborted_uploads": 0}
