"""Upload sessions: resumable chunks (folder store and S3 multipart joins) and presigned POSTs to S3."""

from __future__ import annotations

import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from services.evidence_storage import ingest, uploads
from services.evidence_storage.api import create_app
from services.evidence_storage.bootstrap import bootstrap
from services.evidence_storage.models import UploadChunk, UploadSession
from services.evidence_storage.uploads import RUNNING_HASHES, expire_sessions
from shared.blobs.folder import FolderBlobStore
from shared.blobs.port import BlobStoreUnavailable
from shared.blobs.s3 import S3BlobStore
from shared.clock import FixedClock
from shared.http import ApiError
from tests.evidence_storage import media
from tests.evidence_storage.conftest import MIB


def _session(world, submission_id: str, size: int, **extra) -> dict:
    response = world.client.post(
        f"/submissions/{submission_id}/upload-sessions", json={"size": size, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


def _put(world, session_id: str, data: bytes, offset: int, **headers):
    return world.client.put(
        f"/upload-sessions/{session_id}",
        params={"offset": offset},
        content=data,
        headers={"Content-Type": "application/octet-stream", **headers},
    )


@pytest.mark.parametrize("store", ["folder", "s3"])
def test_chunked_upload_resumes_and_completes(make_world, store):
    world = make_world(store)
    submission = world.submission()
    video = media.mp4(bytes(range(256)) * (48 * 1024), seconds=3.0)  # ~12 MiB: three chunks on S3 too
    session = _session(
        world, submission["id"], len(video), filename="宣讲.mp4", sha256=hashlib.sha256(video).hexdigest()
    )
    assert (session["state"], session["received"], session["mode"]) == ("open", 0, "chunked")
    assert session["min_chunk_bytes"] == (5 * MIB if store == "s3" else 1)
    chunk = 5 * MIB
    assert _put(world, session["id"], video[:chunk], 0).json()["received"] == chunk

    # a chunk at the wrong offset is refused and says where to resume
    wrong = _put(world, session["id"], video[2 * chunk :], 2 * chunk)
    assert wrong.status_code == 409 and wrong.headers["Upload-Offset"] == str(chunk)
    assert wrong.json()["code"] == "offset_mismatch"
    # a chunk that arrives shorter than its Content-Range promised does not count (as after a cut)
    cut = world.client.put(
        f"/upload-sessions/{session['id']}",
        content=video[chunk : chunk + 1000],
        headers={"Content-Range": f"bytes {chunk}-{2 * chunk - 1}/{len(video)}"},
    )
    assert cut.status_code == 400 and cut.json()["code"] == "chunk_incomplete"
    head = world.client.head(f"/upload-sessions/{session['id']}")
    assert head.headers["Upload-Offset"] == str(chunk) and head.headers["Upload-Length"] == str(len(video))

    resumed = world.client.put(
        f"/upload-sessions/{session['id']}",
        content=video[chunk : 2 * chunk],
        headers={"Content-Range": f"bytes {chunk}-{2 * chunk - 1}/{len(video)}"},
    )
    assert resumed.status_code == 200 and resumed.json()["received"] == 2 * chunk
    early = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert early.status_code == 409 and early.json()["code"] == "upload_incomplete"
    assert _put(world, session["id"], video[2 * chunk :], 2 * chunk).json()["received"] == len(video)

    done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    evidence = done.json()
    assert evidence["sha256"] == hashlib.sha256(video).hexdigest() and evidence["size"] == len(video)
    assert evidence["duration_s"] == pytest.approx(3.0, abs=0.1) and evidence["upload_path"] == "chunked"
    assert evidence["filename"] == "宣讲.mp4"
    again = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert again.status_code == 200 and again.json()["id"] == evidence["id"]
    assert world.client.get(f"/upload-sessions/{session['id']}").json()["state"] == "completed"
    folder = f"{submission['unit_id']}/{submission['id']}/{evidence['id']}"
    assert world.stored_keys() == [
        f"evidence/{folder}.mp4",
        f"previews/{folder}.jpg",
    ]  # the video and its poster
    downloaded = world.client.get(f"/evidence/{evidence['id']}/content")
    assert hashlib.sha256(downloaded.content).hexdigest() == evidence["sha256"]


def test_s3_chunks_must_be_large_enough_except_the_last(make_world):
    world = make_world("s3")
    submission = world.submission()
    video = media.mp4(bytes(6 * MIB))
    session = _session(world, submission["id"], len(video))
    small = _put(world, session["id"], video[:MIB], 0)
    assert small.status_code == 400 and small.json()["code"] == "chunk_too_small"
    assert world.stored_keys() == []
    assert world.client.get(f"/upload-sessions/{session['id']}").json()["received"] == 0
    # the refused chunk's part is simply replaced when the offset is sent again, properly sized
    assert _put(world, session["id"], video[: 5 * MIB], 0).json()["received"] == 5 * MIB
    assert _put(world, session["id"], video[5 * MIB :], 5 * MIB).json()["received"] == len(video)
    done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(video).hexdigest()
    assert world.pending_uploads() == []


def test_first_chunk_is_sniffed_and_a_bad_type_ends_the_session(world):
    submission = world.submission()
    session = _session(world, submission["id"], 5000, filename="a.jpg")
    refused = _put(world, session["id"], b"MZ" + bytes(4998), 0)
    assert refused.status_code == 415 and refused.json()["code"] == "unsupported_media_type"
    assert world.client.get(f"/upload-sessions/{session['id']}").json()["state"] == "refused"
    assert _put(world, session["id"], b"MZ" + bytes(4998), 0).status_code == 410
    assert world.stored_keys() == [] and world.evidence_count() == 0 and world.pending_uploads() == []


def test_an_empty_first_chunk_is_refused_alone_and_the_session_stays_open(world):
    submission = world.submission()
    photo = media.photo(21)
    session = _session(world, submission["id"], len(photo))
    empty = _put(world, session["id"], b"", 0)  # as at any other offset: nothing to sniff, nothing refused
    assert empty.status_code == 400 and empty.json()["code"] == "empty_chunk"
    assert world.client.get(f"/upload-sessions/{session['id']}").json()["state"] == "open"
    assert _put(world, session["id"], photo, 0).json()["received"] == len(photo)
    done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    assert world.events("evidence.rejected") == []


@pytest.mark.parametrize("store", ["folder", "s3"])
def test_a_first_chunk_refused_after_a_cut_one_began_the_upload_leaves_nothing(make_world, store):
    world = make_world(store)
    submission = world.submission()
    session = _session(world, submission["id"], 6 * MIB)
    video = media.mp4(bytes(6 * MIB))
    cut = world.client.put(  # a first chunk that began the upload, then arrived short
        f"/upload-sessions/{session['id']}",
        content=video[:MIB],
        headers={"Content-Range": f"bytes 0-{5 * MIB - 1}/{6 * MIB}"},
    )
    assert cut.status_code == 400 and cut.json()["code"] == "chunk_incomplete"
    assert len(world.pending_uploads()) == 1
    exe = _put(world, session["id"], b"MZ" + bytes(5 * MIB), 0)  # then other bytes, not allowed
    assert exe.status_code == 415
    assert world.client.get(f"/upload-sessions/{session['id']}").json()["state"] == "refused"
    assert world.stored_keys() == [] and world.pending_uploads() == [] and world.evidence_count() == 0


def test_checksum_mismatch_and_damaged_upload_leave_nothing(world):
    submission = world.submission()
    photo = media.photo(20)
    session = _session(world, submission["id"], len(photo), sha256="0" * 64)
    _put(world, session["id"], photo, 0)
    refused = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert refused.status_code == 422 and refused.json()["code"] == "checksum_mismatch"
    assert world.client.get(f"/upload-sessions/{session['id']}").json()["state"] == "refused"

    cut_photo = photo[: len(photo) // 2]
    session = _session(world, submission["id"], len(cut_photo))
    _put(world, session["id"], cut_photo, 0)
    damaged = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert damaged.status_code == 422 and damaged.json()["code"] == "damaged_file"
    assert world.stored_keys() == [] and world.evidence_count() == 0
    assert [e["reason_code"] for e in world.events("evidence.rejected")] == [
        "checksum_mismatch",
        "damaged_file",
    ]


def test_sessions_expire_and_their_chunks_are_removed(make_world):
    clock = FixedClock(datetime(2020, 3, 10, 9, 0, tzinfo=UTC))
    world = make_world(clock=clock, evidence_session_ttl_s=3600)
    world.drive_job("evidence-upload-sessions")  # the test expires sessions itself
    submission = world.submission()
    video = media.mp4(bytes(3000))
    session = _session(world, submission["id"], len(video))
    _put(world, session["id"], video[:1000], 0)
    assert world.pending_uploads() != []  # the chunk is a part of the session's multipart upload
    clock.advance(timedelta(hours=2))
    gone = _put(world, session["id"], video[1000:], 1000)
    assert gone.status_code == 410 and gone.json()["code"] == "session_expired"
    assert expire_sessions(world.ctx) == 1
    assert world.stored_keys() == [] and world.pending_uploads() == []
    assert world.client.get(f"/upload-sessions/{session['id']}").json()["state"] == "expired"


@pytest.mark.parametrize("store", ["folder", "s3"])
def test_abort_removes_the_chunks_and_the_unfinished_upload(make_world, store):
    world = make_world(store)
    submission = world.submission()
    video = media.mp4(bytes(6 * MIB))
    session = _session(world, submission["id"], len(video))
    assert _put(world, session["id"], video[: 5 * MIB], 0).status_code == 200
    assert len(world.pending_uploads()) == 1
    assert world.client.delete(f"/upload-sessions/{session['id']}").status_code == 204
    assert world.stored_keys() == [] and world.pending_uploads() == []
    assert world.client.get(f"/upload-sessions/{session['id']}").json()["state"] == "aborted"


def test_session_filename_and_size_are_checked_up_front(world):
    submission = world.submission()
    bad = world.client.post(
        f"/submissions/{submission['id']}/upload-sessions", json={"size": 10, "filename": "../x.mp4"}
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_filename"
    huge = world.client.post(f"/submissions/{submission['id']}/upload-sessions", json={"size": 3 * 1024**3})
    assert huge.status_code == 413
    assert (
        world.client.post(f"/submissions/{submission['id']}/upload-sessions", json={"size": 0}).status_code
        == 422
    )


# --- presigned POST straight to S3 -------------------------------------------------------------------------


def _post_form(session: dict, data: bytes, content_type: str) -> httpx.Response:
    form = session["presigned"]
    return httpx.post(
        form["url"],
        data=form["fields"],
        files={"file": ("upload", data, content_type)},
        trust_env=False,
        timeout=30,
    )


def test_presigned_post_then_completion_checks_the_object(make_world):
    world = make_world("s3")
    submission = world.submission()
    photo = media.photo(21, taken="2020:03:12 11:00:00")
    session = _session(
        world,
        submission["id"],
        len(photo),
        mode="presigned",
        content_type="image/jpeg",
        filename="宣传栏.jpg",
    )
    form = session["presigned"]
    assert (
        form["fields"]["key"] == f"incoming/{session['id']}/upload"
        and form["fields"]["Content-Type"] == "image/jpeg"
    )
    assert "policy" in form["fields"] and form["url"].endswith("/" + world.s3.bucket)

    early = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert early.status_code == 409 and early.json()["code"] == "not_uploaded"
    assert _post_form(session, photo, "image/jpeg").status_code in (200, 201, 204)
    done = world.client.post(
        f"/upload-sessions/{session['id']}/complete", json={"sha256": hashlib.sha256(photo).hexdigest()}
    )
    assert done.status_code == 201, done.text
    evidence = done.json()
    assert evidence["upload_path"] == "presigned" and evidence["captured_at"] == "2020-03-12T11:00:00"
    assert evidence["sha256"] == hashlib.sha256(photo).hexdigest() and evidence["has_preview"]
    assert not [key for key in world.stored_keys() if key.startswith("incoming/")]


def test_a_presigned_upload_still_arriving_when_its_form_expires_can_be_completed(make_world):
    # The store checks the form's expiry when the POST begins; a video on a slow line arrives after it.
    clock = FixedClock(datetime(2020, 3, 12, 9, 0, tzinfo=UTC))
    world = make_world("s3", clock=clock)
    world.drive_job("evidence-upload-sessions")  # the test expires sessions itself
    photo = media.photo(22)
    session = _session(
        world, world.submission()["id"], len(photo), mode="presigned", content_type="image/jpeg"
    )
    assert _post_form(session, photo, "image/jpeg").status_code in (200, 201, 204)
    clock.advance(timedelta(seconds=world.ctx.settings.evidence_presign_ttl_s + 60))
    assert expire_sessions(world.ctx) == 0
    done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    clock.advance(timedelta(seconds=world.ctx.settings.evidence_session_ttl_s))
    abandoned = _session(world, world.submission()["id"], 10, mode="presigned", content_type="image/jpeg")
    clock.advance(timedelta(seconds=world.ctx.settings.evidence_presign_ttl_s + 1))
    assert expire_sessions(world.ctx) == 0  # a form that expired unused: kept for the same grace ...
    clock.advance(timedelta(seconds=world.ctx.settings.evidence_session_ttl_s))
    assert expire_sessions(world.ctx) == 1 and _session_row(world, abandoned["id"]).state == "expired"


def test_presigned_upload_that_lies_about_its_type_or_size_is_removed(make_world):
    world = make_world("s3")
    submission = world.submission()
    png = media.photo(22, fmt="PNG", size=(64, 64))
    session = _session(world, submission["id"], len(png), mode="presigned", content_type="image/jpeg")
    _post_form(session, png, "image/jpeg")
    refused = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert refused.status_code == 422 and refused.json()["code"] == "type_mismatch"

    jpeg = media.photo(23, size=(64, 64))
    session = _session(world, submission["id"], len(jpeg) + 10, mode="presigned", content_type="image/jpeg")
    _post_form(
        session, jpeg, "image/jpeg"
    )  # moto does not enforce the policy's length range; completion does
    short = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert short.status_code == 422 and short.json()["code"] == "size_mismatch"
    assert world.stored_keys() == [] and world.evidence_count() == 0


def test_presigned_sessions_need_an_allowed_type_and_an_s3_store(make_world):
    s3_world = make_world("s3")
    submission = s3_world.submission()
    svg = s3_world.client.post(
        f"/submissions/{submission['id']}/upload-sessions",
        json={"size": 100, "mode": "presigned", "content_type": "image/svg+xml"},
    )
    assert svg.status_code == 415
    big = s3_world.client.post(
        f"/submissions/{submission['id']}/upload-sessions",
        json={"size": 31 * MIB, "mode": "presigned", "content_type": "image/jpeg"},
    )
    assert big.status_code == 413
    folder = make_world("folder")
    submission = folder.submission()
    response = folder.client.post(
        f"/submissions/{submission['id']}/upload-sessions",
        json={"size": 100, "mode": "presigned", "content_type": "image/jpeg"},
    )
    assert response.status_code == 501
    detail = response.json()
    assert (
        detail["code"] == "presign_unsupported"
        and "不支持直传" in detail["message"]
        and "folder store" in detail["message_en"]
    )


@pytest.mark.parametrize("store", ["folder", "s3"])
def test_chunks_taken_by_another_process_are_hashed_from_the_store(make_world, store):
    world = make_world(store)
    submission = world.submission()
    video = media.mp4(bytes((7 * i) % 256 for i in range(256)) * (44 * 1024), seconds=2.0)  # ~11 MiB
    chunk = 5 * MIB
    session = _session(world, submission["id"], len(video), filename="宣讲.mp4")
    assert _put(world, session["id"], video[:chunk], 0).status_code == 200
    RUNNING_HASHES.forget(session["id"])  # as if the first chunk had gone to another API process
    assert _put(world, session["id"], video[chunk : 2 * chunk], chunk).status_code == 200
    assert _put(world, session["id"], video[2 * chunk :], 2 * chunk).status_code == 200
    assert RUNNING_HASHES.whole(session["id"], len(video)) is None
    done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(video).hexdigest()


# --- chunks as the parts of one multipart upload: restarts, retries, failures ------------------------------


def _restarted(world) -> TestClient:
    """Another API process on the same database and store (after a restart, or another replica): an API of its
    own, with nothing of the first one's memory (the running hashes are module state, so forgotten by the test)."""
    settings = world.ctx.settings
    if world.s3 is None:
        blobs = FolderBlobStore(settings.blob_folder)
    else:
        target = world.s3
        blobs = S3BlobStore(
            endpoint=target.endpoint,
            access_key=target.access_key,
            secret_key=target.secret_key,
            bucket=target.bucket,
            region=target.region,
            part_size=5 * MIB,
        )
    ctx = bootstrap(settings, blobs=blobs)
    client = TestClient(create_app(ctx))
    client.headers.update(world.client.headers)
    world.cleanups.insert(0, ctx.db.dispose)
    world.cleanups.insert(0, client.close)
    return client


@pytest.mark.parametrize("store", ["folder", "s3"])
def test_a_restarted_api_continues_the_upload_and_completes_it(make_world, store):
    world = make_world(store)
    submission = world.submission()
    video = media.mp4(bytes((5 * i) % 256 for i in range(256)) * (52 * 1024), seconds=2.0)  # ~13 MiB
    chunk = 5 * MIB
    session = _session(world, submission["id"], len(video), filename="重启.mp4")
    assert _put(world, session["id"], video[:chunk], 0).status_code == 200
    world.client.close()  # the first API goes away: its memory (the running hash) with it
    RUNNING_HASHES.forget(session["id"])

    other = _restarted(world)
    assert int(other.head(f"/upload-sessions/{session['id']}").headers["Upload-Offset"]) == chunk
    for start in (chunk, 2 * chunk):
        sent = other.put(
            f"/upload-sessions/{session['id']}",
            params={"offset": start},
            content=video[start : start + chunk],
            headers={"Content-Type": "application/octet-stream"},
        )
        assert sent.status_code == 200, sent.text
    done = other.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    evidence = done.json()
    assert (evidence["size"], evidence["sha256"]) == (len(video), hashlib.sha256(video).hexdigest())
    assert world.pending_uploads() == []
    assert (
        hashlib.sha256(other.get(f"/evidence/{evidence['id']}/content").content).hexdigest()
        == (evidence["sha256"])
    )
    folder = f"{submission['unit_id']}/{submission['id']}/{evidence['id']}"
    assert world.stored_keys() == [f"evidence/{folder}.mp4", f"previews/{folder}.jpg"]


@pytest.mark.parametrize("store", ["folder", "s3"])
def test_a_chunk_sent_twice_at_once_takes_the_same_part_number_once(make_world, store, monkeypatch):
    """A client that timed out sends the chunk again while the first request is still storing it: both store the
    same part number, one of them counts, and the upload completes with the bytes sent."""
    world = make_world(store)
    submission = world.submission()
    video = media.mp4(bytes((11 * i) % 256 for i in range(256)) * (28 * 1024), seconds=1.0)  # ~7 MiB
    chunk = 5 * MIB
    session = _session(world, submission["id"], len(video))
    assert _put(world, session["id"], video[:chunk], 0).status_code == 200

    both_stored = threading.Barrier(2, timeout=30)
    put_part = world.ctx.blobs.put_part

    def stored_then_wait(*args, **kwargs):
        part = put_part(*args, **kwargs)
        both_stored.wait()  # neither request claims the offset before both have written their part
        return part

    monkeypatch.setattr(world.ctx.blobs, "put_part", stored_then_wait)

    def send() -> object:
        try:
            return uploads.put_chunk(
                session["id"], io.BytesIO(video[chunk:]), offset=chunk, content_range=None, ctx=world.ctx
            ).received
        except ApiError as exc:
            return exc.info["code"]

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(map(str, pool.map(lambda _: send(), range(2))))
    assert outcomes == sorted([str(len(video)), "offset_mismatch"])
    monkeypatch.undo()
    with world.ctx.db.session() as uow:
        numbers = list(
            uow.scalars(
                select(UploadChunk.part_number)
                .where(UploadChunk.session_id == session["id"])
                .order_by(UploadChunk.offset)
            )
        )
    assert numbers == [1, 2]
    done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(video).hexdigest()
    assert world.pending_uploads() == []


def test_the_same_offset_sent_twice_at_once_with_other_bytes_is_refused_at_completion(
    make_world, monkeypatch
):
    """S3 keeps whichever part came last; when that is not the one the session recorded, its ETag says so and the
    upload is refused as a whole rather than stored with bytes nobody hashed."""
    world = make_world("s3")
    submission = world.submission()
    video = media.mp4(bytes(7 * MIB), seconds=1.0)
    chunk = 5 * MIB
    session = _session(world, submission["id"], len(video))
    assert _put(world, session["id"], video[:chunk], 0).status_code == 200
    put_part = world.ctx.blobs.put_part
    # what a losing request at the same offset leaves: its bytes under the part number the winner recorded
    assert _put(world, session["id"], video[chunk:], chunk).status_code == 200
    with world.ctx.db.session() as uow:
        upload_id = uow.get(UploadSession, session["id"]).upload_id
        key = uow.get(UploadSession, session["id"]).upload_key
    put_part(key, upload_id, 2, io.BytesIO(bytes(len(video) - chunk - 1) + b"!"))
    refused = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert refused.status_code == 409 and refused.json()["code"] == "upload_parts_changed"
    assert world.client.get(f"/upload-sessions/{session['id']}").json()["state"] == "refused"
    assert world.stored_keys() == [] and world.pending_uploads() == [] and world.evidence_count() == 0


@pytest.mark.parametrize("store", ["folder", "s3"])
def test_a_completion_that_fails_after_joining_keeps_the_joined_upload_for_a_retry(
    make_world, store, monkeypatch
):
    world = make_world(store)
    submission = world.submission()
    video = media.mp4(bytes((13 * i) % 256 for i in range(256)) * (28 * 1024), seconds=1.0)  # ~7 MiB
    session = _session(world, submission["id"], len(video))
    assert _put(world, session["id"], video[: 5 * MIB], 0).status_code == 200
    assert _put(world, session["id"], video[5 * MIB :], 5 * MIB).status_code == 200
    examine = ingest.examine

    def store_went_down(*args, **kwargs):
        raise BlobStoreUnavailable("the store went away during inspection")

    monkeypatch.setattr(ingest, "examine", store_went_down)
    failed = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert failed.status_code == 503 and failed.json()["code"] == "store_unavailable"
    state = world.client.get(f"/upload-sessions/{session['id']}").json()
    assert state["state"] == "open" and state["received"] == len(video)
    assert world.pending_uploads() == [] and len(world.stored_keys()) == 1  # joined; the parts are gone
    monkeypatch.setattr(ingest, "examine", examine)
    RUNNING_HASHES.forget(session["id"])  # and completed by another process: hashed from the store
    done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(video).hexdigest() and world.evidence_count() == 1


def test_a_session_begun_before_multipart_uploads_is_closed_and_its_chunk_objects_removed(make_world):
    clock = FixedClock(datetime(2020, 3, 10, 9, 0, tzinfo=UTC))
    world = make_world(clock=clock, evidence_session_ttl_s=3600)
    world.drive_job("evidence-upload-sessions")  # the test expires sessions itself
    submission = world.submission()
    video = media.mp4(bytes(3000))
    session = _session(world, submission["id"], len(video))
    # what the previous release left: a chunk stored as a staging object, no multipart upload on the session
    old_key = f"staging/sessions/{session['id']}/000000000000000-0a1b2c3d"
    world.ctx.blobs.put(old_key, io.BytesIO(video[:1000]), content_type="application/octet-stream")
    with world.ctx.db.transaction() as uow:
        uow.add(UploadChunk(session_id=session["id"], offset=0, size=1000, object_key=old_key))
        uow.get(UploadSession, session["id"]).received = 1000
    outdated = _put(world, session["id"], video[1000:], 1000)
    assert outdated.status_code == 410 and outdated.json()["code"] == "session_outdated"
    assert "系统升级" in outdated.json()["message"]
    clock.advance(timedelta(hours=2))
    assert expire_sessions(world.ctx) == 1
    assert world.stored_keys() == []


# --- a completion whose process stopped (kill -9, OOM, deploy): its lease ends and a retry takes it over ------


def _fully_received(world) -> tuple[dict, bytes]:
    """A chunked session with all its bytes, ready to complete."""
    submission = world.submission()
    video = media.mp4(bytes((17 * i) % 256 for i in range(256)) * (28 * 1024), seconds=1.0)  # ~7 MiB
    session = _session(world, submission["id"], len(video))
    assert _put(world, session["id"], video[: 5 * MIB], 0).status_code == 200
    assert _put(world, session["id"], video[5 * MIB :], 5 * MIB).status_code == 200
    return session, video


def _session_row(world, session_id: str) -> UploadSession:
    with world.ctx.db.session() as uow:
        return uow.get(UploadSession, session_id)


@pytest.mark.parametrize("store", ["folder", "s3"])
@pytest.mark.parametrize("died", ["before joining", "after joining"])
def test_a_completion_whose_process_stopped_is_taken_over_once_its_lease_ends(make_world, store, died):
    clock = FixedClock(datetime(2020, 3, 10, 9, 0, tzinfo=UTC))
    world = make_world(store, clock=clock)
    world.drive_job("evidence-upload-sessions")  # the test expires sessions itself
    session, video = _fully_received(world)
    # what a completing process leaves when it is killed: the session completing, maybe the upload joined
    uploads._set_state(world.ctx, session["id"], "open", "completing")
    if died == "after joining":
        row = _session_row(world, session["id"])
        uploads._assemble(world.ctx, row, uploads._submission(world.ctx, row))
        assert world.pending_uploads() == []
    RUNNING_HASHES.forget(session["id"])  # the process's memory went with it

    # while the lease lasts, the completion may still be running: nothing else gets the session
    busy = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert busy.status_code == 409 and busy.json()["code"] == "session_busy"
    assert _put(world, session["id"], video[-10:], len(video) - 10).status_code == 409
    assert world.client.delete(f"/upload-sessions/{session['id']}").status_code == 409

    clock.advance(timedelta(seconds=world.ctx.settings.evidence_complete_lease_s + 1))
    late = _put(world, session["id"], video[-10:], len(video) - 10)
    assert late.status_code == 409  # the bytes are all in: complete() alone takes over
    taken_before = REGISTRY.get_sample_value("cep_upload_completions_taken_over_total") or 0.0
    done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(video).hexdigest() and world.evidence_count() == 1
    assert REGISTRY.get_sample_value("cep_upload_completions_taken_over_total") == taken_before + 1
    row = _session_row(world, session["id"])
    assert (row.state, row.completing_until) == ("completed", None)
    assert world.pending_uploads() == []


def test_a_completion_taken_over_after_its_process_recorded_the_evidence_only_marks_the_session(make_world):
    clock = FixedClock(datetime(2020, 3, 10, 9, 0, tzinfo=UTC))
    world = make_world(clock=clock)
    session, _ = _fully_received(world)
    evidence, _ = uploads.complete(session["id"], sha256=None, ctx=world.ctx, actor=None)
    # killed between recording the evidence and marking the session completed
    with world.ctx.db.transaction() as uow:
        uow.execute(
            update(UploadSession)
            .where(UploadSession.id == session["id"])
            .values(state="completing", completing_until=clock.now() - timedelta(seconds=1))
        )
    again = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert again.status_code == 200 and again.json()["id"] == evidence.id
    assert _session_row(world, session["id"]).state == "completed" and world.evidence_count() == 1


def test_expiry_leaves_a_session_under_a_live_completion_lease_and_its_objects_alone(make_world):
    clock = FixedClock(datetime(2020, 3, 10, 9, 0, tzinfo=UTC))
    world = make_world(clock=clock, evidence_session_ttl_s=600)
    world.drive_job("evidence-upload-sessions")  # the test expires sessions itself
    session, video = _fully_received(world)
    inspect = ingest.inspect
    expired: list[int] = []

    def slow_inspection(*args, **kwargs):
        clock.advance(timedelta(seconds=601))  # past the session's expiry as its last chunk set it
        expired.append(expire_sessions(world.ctx))
        return inspect(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest, "inspect", slow_inspection)
        done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    assert expired == [0] and done.json()["sha256"] == hashlib.sha256(video).hexdigest()

    # however the expiry stands, a live lease keeps the session and its upload; once it ends, expiry goes on
    session, _ = _fully_received(world)
    uploads._set_state(world.ctx, session["id"], "open", "completing")
    with world.ctx.db.transaction() as uow:
        uow.execute(
            update(UploadSession)
            .where(UploadSession.id == session["id"])
            .values(expires_at=clock.now() - timedelta(seconds=1))
        )
    pending = world.pending_uploads()
    assert expire_sessions(world.ctx) == 0
    assert world.pending_uploads() == pending != []
    assert _session_row(world, session["id"]).state == "completing"
    clock.advance(timedelta(seconds=world.ctx.settings.evidence_complete_lease_s + 1))
    assert expire_sessions(world.ctx) == 1
    assert world.pending_uploads() == [] and _session_row(world, session["id"]).state == "expired"
