"""S3 going down in the middle of an upload: a 503 with a clear message, no rows, and the retry succeeds."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.evidence_storage import media
from tests.evidence_storage.conftest import MIB
from tests.evidence_storage.proxy import CuttableProxy
from tests.helpers import wait_until

HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def proxy(moto_s3):
    """A cuttable proxy in front of the moto server."""
    cut = CuttableProxy(moto_s3.endpoint)
    cut.up()
    yield cut
    cut.down()


def _body_that_cuts(data: bytes, proxy: CuttableProxy, after: int):
    """The upload body, taking the store down once `after` bytes have been handed over."""
    sent = 0
    for start in range(0, len(data), 256 * 1024):
        if sent >= after and proxy._listener is not None:
            proxy.down()
        piece = data[start : start + 256 * 1024]
        sent += len(piece)
        yield piece


def _assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    detail = response.json()
    assert detail["code"] == "store_unavailable"
    assert HAN.search(detail["message"]) and "retry" in detail["message_en"]


def test_store_down_mid_stream_gives_503_no_rows_and_the_retry_succeeds(make_world, proxy):
    world = make_world("s3", s3_endpoint=proxy.endpoint)
    submission = world.submission()
    video = media.mp4(
        bytes(range(256)) * (48 * 1024)
    )  # ~12 MiB: the store goes down after the first 5 MiB part
    world.upload(submission["id"], media.photo(1, size=(32, 32)), "warm.jpg")  # the bucket exists
    before = world.evidence_count()

    response = world.upload(submission["id"], _body_that_cuts(video, proxy, 7 * MIB), "宣讲.mp4")
    _assert_unavailable(response)
    assert world.evidence_count() == before
    assert world.events("evidence.stored") and len(world.events("evidence.stored")) == before

    proxy.up()
    retried = world.upload(submission["id"], video, "宣讲.mp4")
    assert retried.status_code == 201, retried.text
    assert retried.json()["sha256"] == hashlib.sha256(video).hexdigest()
    assert world.evidence_count() == before + 1
    # the aborted attempt left no object behind: only the two evidence files and the photo's preview
    evidence_keys = [key for key in world.stored_keys() if key.startswith("evidence/")]
    assert len(evidence_keys) == 2


def test_store_down_during_a_chunk_keeps_the_session_resumable(make_world, proxy):
    world = make_world("s3", s3_endpoint=proxy.endpoint)
    submission = world.submission()
    video = media.mp4(bytes(range(256)) * (28 * 1024))  # ~7 MiB: two chunks
    session = world.client.post(
        f"/submissions/{submission['id']}/upload-sessions", json={"size": len(video)}
    ).json()
    first = world.client.put(
        f"/upload-sessions/{session['id']}", params={"offset": 0}, content=video[: 5 * MIB]
    )
    assert first.status_code == 200, first.text

    proxy.down()
    _assert_unavailable(
        world.client.put(
            f"/upload-sessions/{session['id']}", params={"offset": 5 * MIB}, content=video[5 * MIB :]
        )
    )
    assert world.client.get(f"/upload-sessions/{session['id']}").json()["received"] == 5 * MIB

    proxy.up()
    assert (
        world.client.put(
            f"/upload-sessions/{session['id']}", params={"offset": 5 * MIB}, content=video[5 * MIB :]
        ).status_code
        == 200
    )
    done = world.client.post(f"/upload-sessions/{session['id']}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(video).hexdigest() and world.evidence_count() == 1


def test_a_store_that_accepts_connections_and_never_answers_gives_503_and_readyz_says_down(
    make_world, moto_s3
):
    """A black hole: the upload fails with store_unavailable within (connect + read timeout) x (1 + retries), and
    the readiness probe, with its own short client and budget, answers too (bench/faults prints the times)."""
    from tests.faults.proxy import FaultProxy

    hole = FaultProxy(moto_s3.endpoint)
    hole.set("pass")
    try:
        world = make_world(
            "s3", s3_endpoint=hole.endpoint, s3_read_timeout_s=1.0, s3_retries=1, health_probe_timeout_s=1.0
        )
        submission = world.submission()
        assert world.upload(submission["id"], media.photo(1, size=(32, 32)), "warm.jpg").status_code == 201
        assert world.client.get("/readyz", headers={"Authorization": ""}).json() == {
            "status": "up"
        }  # nothing more

        hole.set("blackhole")
        _assert_unavailable(world.upload(submission["id"], media.photo(2, size=(32, 32)), "hole.jpg"))
        ready = world.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "down"
        assert ready.json()["checks"]["blob_store"]["ok"] is False  # this client carries an admin token
        anonymous = world.client.get("/readyz", headers={"Authorization": ""})
        assert anonymous.status_code == 503 and anonymous.json() == {"status": "down"}
        assert world.client.get("/livez").status_code == 200  # the process is fine; only readiness fails

        hole.set("pass")
        wait_until(lambda: world.client.get("/readyz").status_code == 200, what="readiness to come back")
        assert world.upload(submission["id"], media.photo(2, size=(32, 32)), "hole.jpg").status_code == 201
    finally:
        hole.close()
