"""A 200 MB video over a real HTTP server: streamed in one request, and again through a resumable session whose
connection is cut in the middle of a chunk; both store the same bytes."""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from services.evidence_storage.api import create_app
from services.evidence_storage.models import Evidence
from tests.evidence_storage.conftest import MIB
from tests.evidence_storage.media import BigVideo
from tests.helpers import wait_until
from tests.servers import free_port

# A real uvicorn server and 200 MB through it: too slow for the unit tier.
pytestmark = pytest.mark.integration

SIZE = 200 * MIB
CHUNK = 32 * MIB


@pytest.fixture
def served(world):
    """The world's API behind a real uvicorn server on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(world.ctx), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _stored_sha256(world, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in world.ctx.blobs.read(key):
        digest.update(chunk)
    return digest.hexdigest()


def _cut_chunk(
    base: str, session_id: str, offset: int, length: int, video: BigVideo, send: int, *, auth: dict
) -> None:
    """Start a PUT of length bytes at offset, send only `send` of them, and drop the connection."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            (
                f"PUT /upload-sessions/{session_id}?offset={offset} HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: {auth['Authorization']}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
            ).encode()
        )
        for piece in video.chunks(offset, offset + send):
            sock.sendall(piece)
        sock.shutdown(socket.SHUT_RDWR)


def test_200_mb_video_streamed_and_resumed_after_a_cut_store_the_same_bytes(world, served):
    submission = world.submission()
    video = BigVideo(SIZE)
    liaison = world.unit_token(submission["unit_id"])  # the unit uploads its own evidence
    with httpx.Client(base_url=served, timeout=120, trust_env=False, headers=liaison) as http:
        streamed = http.post(
            f"/submissions/{submission['id']}/evidence",
            params={"filename": "巡回宣讲.mp4"},
            content=video.chunks(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert streamed.status_code == 201, streamed.text
        first = streamed.json()
        assert (first["size"], first["sha256"]) == (SIZE, video.sha256)
        # probed by ffmpeg (moov after the media data, then 200 MB it skips), with a poster frame
        assert first["duration_s"] == pytest.approx(2.0, abs=0.1) and first["video_codec"] == "h264"
        assert first["has_preview"] is True and first["rendition"] is None

        session = http.post(
            f"/submissions/{submission['id']}/upload-sessions",
            json={"size": SIZE, "filename": "巡回宣讲（续传）.mp4"},
        ).json()
        for offset in range(0, 3 * CHUNK, CHUNK):
            sent = http.put(
                f"/upload-sessions/{session['id']}",
                params={"offset": offset},
                content=video.chunks(offset, offset + CHUNK),
            )
            assert sent.status_code == 200, sent.text
        _cut_chunk(served, session["id"], 3 * CHUNK, CHUNK, video, send=10 * MIB, auth=liaison)

        offset = int(http.head(f"/upload-sessions/{session['id']}").headers["Upload-Offset"])
        assert offset == 3 * CHUNK  # the chunk in flight was lost whole; everything before it is kept
        while offset < SIZE:
            end = min(offset + CHUNK, SIZE)
            sent = http.put(
                f"/upload-sessions/{session['id']}",
                content=video.chunks(offset, end),
                headers={"Content-Range": f"bytes {offset}-{end - 1}/{SIZE}"},
            )
            assert sent.status_code == 200, sent.text
            offset = sent.json()["received"]
        done = http.post(f"/upload-sessions/{session['id']}/complete", json={"sha256": video.sha256})
        assert done.status_code == 201, done.text
        second = done.json()

    assert (second["size"], second["sha256"]) == (SIZE, video.sha256)
    with world.ctx.db.session() as uow:
        keys = [uow.get(Evidence, first["id"]).object_key, uow.get(Evidence, second["id"]).object_key]
    assert [_stored_sha256(world, key) for key in keys] == [video.sha256, video.sha256]
    assert [
        (d["evidence_id"], d["match"], d["came_first"], d["same_unit"]) for d in second["duplicates"]
    ] == [(first["id"], "exact", "other", True)]
    # the cut chunk's partial object is gone, and the joined chunks too: only the two videos (and posters) remain
    deadline = time.monotonic() + 10
    while [k for k in world.stored_keys() if k.startswith("staging/")] and time.monotonic() < deadline:
        time.sleep(0.1)  # the server notices the dropped connection on its own schedule
    assert sorted(k for k in world.stored_keys() if not k.startswith("previews/")) == sorted(keys)
