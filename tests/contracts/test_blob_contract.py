"""The BlobStore contract: the folder and S3 adapters must pass the same suite."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.blobs.folder import FolderBlobStore
from shared.blobs.port import (
    BlobExists,
    BlobLocked,
    BlobNotFound,
    BlobStoreMisconfigured,
    BlobStoreUnavailable,
    PresignUnsupported,
    UploadedPart,
    UploadGone,
    UploadPartsChanged,
    check_blob_store,
)
from shared.blobs.s3 import S3BlobStore, bucket_name_problem
from tests.servers import free_port

MiB = 1024 * 1024
PART = 5 * MiB


class BrokenUpload(OSError):
    """What a client disconnecting mid-upload looks like to the store (an OSError, on purpose)."""


class GeneratedStream:
    """A readable stream of pseudo-random bytes, made chunk by chunk, that may fail after some bytes."""

    def __init__(
        self, size: int, *, seed: int = 7, fail_after: int | None = None, chunk: int = 64 * 1024
    ) -> None:
        self._left = size
        self._random = random.Random(seed)
        self._fail_after = fail_after
        self._chunk = chunk
        self._sent = 0
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        """Up to min(n, chunk) bytes; short reads on purpose, like a socket."""
        if self._fail_after is not None and self._sent >= self._fail_after:
            raise BrokenUpload("client went away")
        size = min(self._chunk if n is None or n < 0 else n, self._chunk, self._left)
        data = self._random.randbytes(size) if size else b""
        self._left -= size
        self._sent += size
        self.sha256.update(data)
        return data


def s3_store(target, **overrides) -> S3BlobStore:
    """An S3BlobStore on the moto server, with the smallest part size S3 allows."""
    settings = dict(
        endpoint=target.endpoint,
        access_key=target.access_key,
        secret_key=target.secret_key,
        bucket=target.bucket,
        region=target.region,
        part_size=PART,
    )
    return S3BlobStore(**{**settings, **overrides})


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path):
    """Each adapter in turn, on an empty namespace."""
    if request.param == "folder":
        return FolderBlobStore(tmp_path / "blobs")
    return s3_store(request.getfixturevalue("s3"))


def read_all(store, key: str, chunk_size: int = 256 * 1024) -> tuple[int, str]:
    """Size and SHA-256 of an object, read chunk by chunk."""
    digest, size = hashlib.sha256(), 0
    for chunk in store.read(key, chunk_size):
        assert 0 < len(chunk) <= chunk_size
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def test_put_then_read_gives_the_same_bytes(store):
    data = "安全生产宣传月 evidence ".encode() * 5000 + bytes(range(256))
    stored = store.put("submissions/1/photo.jpg", io.BytesIO(data), content_type="image/jpeg")
    assert (stored.key, stored.size, stored.content_type) == (
        "submissions/1/photo.jpg",
        len(data),
        "image/jpeg",
    )
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert b"".join(store.read("submissions/1/photo.jpg", 4096)) == data


def test_put_can_feed_a_running_hash_instead_of_its_own(store):
    first, second = b"first object " * 1000, GeneratedStream(PART + 1234, seed=3)
    running = hashlib.sha256(first)  # as if the first object had been fed into it before
    stored = store.put("chunks/2", second, content_type="application/octet-stream", digest=running)
    assert (stored.size, stored.sha256) == (PART + 1234, None)  # hashed once, into the running hash only
    assert running.hexdigest() == hashlib.sha256(first + _bytes_of(store, "chunks/2")).hexdigest()
    assert read_all(store, "chunks/2") == (PART + 1234, second.sha256.hexdigest())
    assert store.stat("chunks/2").sha256 is None  # the store does not claim a hash it never computed


def _bytes_of(store, key: str) -> bytes:
    return b"".join(store.read(key))


def test_local_path_is_the_object_or_none(store):
    data = b"ffmpeg reads this " * 100
    store.put("videos/v.mp4", io.BytesIO(data), content_type="video/mp4")
    path = store.local_path("videos/v.mp4")
    if isinstance(store, FolderBlobStore):
        with open(path, "rb") as handle:
            assert handle.read() == data
        with pytest.raises(BlobNotFound):
            store.local_path("videos/absent.mp4")
    else:
        assert path is None  # S3 keeps no local file
    with pytest.raises(ValueError):
        store.local_path("../escape")


def test_empty_object_round_trips(store):
    stored = store.put("empty.bin", io.BytesIO(b""), content_type="application/octet-stream")
    assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert b"".join(store.read("empty.bin")) == b""
    assert store.stat("empty.bin").size == 0


def test_multipart_sized_stream_round_trips(store):
    stream = GeneratedStream(12 * MiB + 12345)
    stored = store.put("videos/big.mp4", stream, content_type="video/mp4")
    assert stored.size == 12 * MiB + 12345
    assert stored.sha256 == stream.sha256.hexdigest()
    assert read_all(store, "videos/big.mp4") == (stored.size, stored.sha256)


def test_s3_uses_a_multipart_upload_for_large_streams(s3):
    store = s3_store(s3)
    store.put("videos/big.mp4", GeneratedStream(12 * MiB), content_type="video/mp4")
    etag = s3.client().stat_object(bucket_name=s3.bucket, object_name="videos/big.mp4").etag
    assert etag.endswith("-3"), f"expected a 3-part multipart ETag, got {etag!r}"


def test_stat_exists_delete(store):
    data = b"\xff\xd8\xff" + bytes(5000)
    store.put("a/b.jpg", io.BytesIO(data), content_type="image/jpeg")
    info = store.stat("a/b.jpg")
    assert (info.key, info.size, info.content_type) == ("a/b.jpg", len(data), "image/jpeg")
    assert info.sha256 in (None, hashlib.sha256(data).hexdigest())  # S3 does not know it; the DB does
    assert store.exists("a/b.jpg")
    store.delete("a/b.jpg")
    assert not store.exists("a/b.jpg")
    store.delete("a/b.jpg")  # deleting again is fine


def test_missing_keys(store):
    assert not store.exists("never/put.jpg")
    with pytest.raises(BlobNotFound):
        store.read("never/put.jpg")  # raised on the call, before any iteration
    with pytest.raises(BlobNotFound):
        store.stat("never/put.jpg")
    store.delete("never/put.jpg")


def test_missing_key_in_an_existing_bucket(store):
    store.put("present.txt", io.BytesIO(b"x"), content_type="text/plain")
    with pytest.raises(BlobNotFound):
        store.read("absent.txt")
    with pytest.raises(BlobNotFound):
        store.stat("absent.txt")


@pytest.mark.parametrize(
    "size, fail_after", [(100_000, 30_000), (12 * MiB, 7 * MiB)], ids=["small", "multipart"]
)
def test_stream_failing_midway_leaves_nothing(store, request, size, fail_after):
    with pytest.raises(BrokenUpload):
        store.put("broken.mp4", GeneratedStream(size, fail_after=fail_after), content_type="video/mp4")
    assert not store.exists("broken.mp4")
    if isinstance(store, S3BlobStore):
        assert request.getfixturevalue("s3").pending_uploads() == []
    else:
        assert store.count_objects() == 0


def test_failed_overwrite_keeps_the_old_object(store):
    store.put("k.bin", io.BytesIO(b"old"), content_type="application/octet-stream")
    with pytest.raises(BrokenUpload):
        store.put(
            "k.bin", GeneratedStream(12 * MiB, fail_after=6 * MiB), content_type="application/octet-stream"
        )
    assert b"".join(store.read("k.bin")) == b"old"


@pytest.mark.parametrize("key", ["../x", "/abs", "", "a/../b", "a//b", "x/.."])
def test_invalid_keys_are_refused(store, key):
    with pytest.raises(ValueError):
        store.put(key, io.BytesIO(b"x"), content_type="text/plain")
    for call in (store.read, store.stat, store.exists, store.delete):
        with pytest.raises(ValueError):
            call(key)


def test_health_is_ok(store):
    health = store.health()
    assert health["ok"] is True
    assert health["backend"] in ("folder", "s3")


def test_config_check_passes_on_a_working_store(store):
    store.check_config()  # creates the bucket (S3) or the folder, as the first write would
    assert check_blob_store(store) == {"ok": True, "problem": None}
    stored = store.put("probe/after-check.txt", io.BytesIO(b"ok"), content_type="text/plain")
    assert stored.size == 2


@pytest.mark.parametrize(
    "bucket", ["Campaign_Evidence", "ab", "-evidence", "evidence..files", "192.168.1.1", "x" * 64]
)
def test_config_check_names_an_invalid_bucket_before_any_request(bucket):
    # nothing listens on this port: the name alone is refused, without waiting for the network
    store = S3BlobStore(
        endpoint=f"127.0.0.1:{free_port()}", access_key="k", secret_key="s", bucket=bucket, part_size=PART
    )
    with pytest.raises(BlobStoreMisconfigured, match="S3_BUCKET") as refused:
        store.check_config()
    assert bucket in str(refused.value) and "存储桶名称不合法" in str(refused.value)
    assert store.health()["ok"] is False and "invalid bucket name" in store.health()["error"]
    assert check_blob_store(store)["ok"] is False


def test_valid_bucket_names_pass_the_name_rule():
    assert [bucket_name_problem(name) for name in ("campaign-evidence", "abc", "a.b-c", "x" * 63)] == [
        None
    ] * 4


def test_config_check_on_an_unreachable_store_says_unavailable():
    store = S3BlobStore(
        endpoint=f"127.0.0.1:{free_port()}", access_key="k", secret_key="s", bucket="evidence", part_size=PART
    )
    with pytest.raises(BlobStoreUnavailable, match=r"127\.0\.0\.1"):
        store.check_config()
    assert "unavailable" in check_blob_store(store)["problem"]


def test_config_check_refuses_a_folder_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's root should be")
    with pytest.raises(BlobStoreMisconfigured, match="BLOB_DIR"):
        FolderBlobStore(blocker / "blobs").check_config()


def test_s3_down_is_reported_quickly():
    store = S3BlobStore(
        endpoint=f"127.0.0.1:{free_port()}",
        access_key="testing",
        secret_key="testing",
        bucket="nowhere",
        part_size=PART,
    )
    for attempt in (
        lambda: store.put("k.jpg", io.BytesIO(b"data"), content_type="image/jpeg"),
        lambda: store.read("k.jpg"),
        lambda: store.stat("k.jpg"),
        lambda: store.delete("k.jpg"),
    ):
        started = time.monotonic()
        with pytest.raises(BlobStoreUnavailable, match=r"127\.0\.0\.1"):
            attempt()
        assert time.monotonic() - started < 5
    started = time.monotonic()
    health = store.health()
    assert health["ok"] is False and health["backend"] == "s3" and health["bucket"] == "nowhere"
    assert time.monotonic() - started < 5


def test_s3_presigned_url_serves_the_object(s3):
    import httpx

    store = s3_store(s3)
    data = "宣传照片".encode() + bytes(range(256)) * 40
    store.put("photos/p.jpg", io.BytesIO(data), content_type="image/jpeg")
    url = store.presigned_get_url("photos/p.jpg", 300)
    assert url.startswith(f"http://{s3.endpoint}/{s3.bucket}/photos/p.jpg?") and "X-Amz-Signature=" in url
    response = httpx.get(url, timeout=10, trust_env=False)  # no proxy from the machine
    assert response.status_code == 200
    assert response.content == data


def test_read_range(store):
    data = bytes(range(256)) * 100
    store.put("r/k.bin", io.BytesIO(data), content_type="application/octet-stream")
    assert store.read_range("r/k.bin", 0, 10) == data[:10]
    assert store.read_range("r/k.bin", 1000, 300) == data[1000:1300]
    assert store.read_range("r/k.bin", len(data) - 5, 100) == data[-5:]
    assert store.read_range("r/k.bin", len(data), 10) == b""
    assert store.read_range("r/k.bin", 3, 0) == b""
    with pytest.raises(BlobNotFound):
        store.read_range("r/absent.bin", 0, 10)


def test_move_renames_and_never_overwrites(store):
    data = "移动".encode() * 1000
    store.put("staging/a", io.BytesIO(data), content_type="image/jpeg")
    store.put("final/taken.jpg", io.BytesIO(b"old"), content_type="image/jpeg")
    moved = store.move("staging/a", "final/a.jpg")
    assert (moved.key, moved.size, moved.content_type) == ("final/a.jpg", len(data), "image/jpeg")
    assert not store.exists("staging/a")
    assert b"".join(store.read("final/a.jpg")) == data
    store.put("staging/b", io.BytesIO(b"new"), content_type="image/jpeg")
    with pytest.raises(BlobExists):
        store.move("staging/b", "final/taken.jpg")
    assert b"".join(store.read("final/taken.jpg")) == b"old" and store.exists("staging/b")
    with pytest.raises(BlobNotFound):
        store.move("staging/absent", "final/x.jpg")


def test_compose_joins_sources_in_order(store):
    first, second = GeneratedStream(PART + 1000, seed=1), GeneratedStream(4321, seed=2)
    store.put("parts/1", first, content_type="application/octet-stream")
    store.put("parts/2", second, content_type="application/octet-stream")
    expected = hashlib.sha256()
    for key in ("parts/1", "parts/2"):
        for chunk in store.read(key):
            expected.update(chunk)
    joined = store.compose("joined.mp4", ["parts/1", "parts/2"], content_type="video/mp4")
    assert (joined.size, joined.content_type) == (PART + 1000 + 4321, "video/mp4")
    assert joined.sha256 in (None, expected.hexdigest())
    assert read_all(store, "joined.mp4") == (PART + 1000 + 4321, expected.hexdigest())
    assert store.stat("joined.mp4").content_type == "video/mp4"
    assert store.exists("parts/1") and store.exists("parts/2")
    with pytest.raises(BlobNotFound):
        store.compose("joined2.mp4", ["parts/1", "parts/absent"], content_type="video/mp4")
    assert not store.exists("joined2.mp4")


def test_s3_compose_refuses_small_middle_parts(s3):
    store = s3_store(s3)
    assert store.min_compose_part == PART
    store.put("p/1", io.BytesIO(b"x" * 100), content_type="application/octet-stream")
    store.put("p/2", io.BytesIO(b"y" * 100), content_type="application/octet-stream")
    with pytest.raises(ValueError):
        store.compose("p/joined", ["p/1", "p/2"], content_type="application/octet-stream")
    assert not store.exists("p/joined")


# --- multipart uploads: what a resumable session's chunks are written as ---------------------------------------


def unfinished(store, request) -> list[str]:
    """Target keys of the store's multipart uploads neither completed nor aborted."""
    if isinstance(store, S3BlobStore):
        return sorted(request.getfixturevalue("s3").pending_uploads())
    return store.unfinished_uploads()


def test_multipart_upload_joins_its_parts_in_order_and_is_then_gone(store, request):
    first, second = GeneratedStream(PART + 1000, seed=11), GeneratedStream(4321, seed=12)
    upload_id = store.start_upload("videos/joined.mp4", content_type="video/mp4")
    assert unfinished(store, request) == ["videos/joined.mp4"]
    assert not store.exists("videos/joined.mp4")  # nothing to read before completion
    running = hashlib.sha256()
    parts = [
        store.put_part("videos/joined.mp4", upload_id, 1, first, digest=running),
        store.put_part("videos/joined.mp4", upload_id, 2, second, digest=running),
    ]
    assert [(part.number, part.size) for part in parts] == [(1, PART + 1000), (2, 4321)]
    assert all(part.etag for part in parts)
    expected = running.hexdigest()  # fed by both parts, in order
    assert (
        expected
        == hashlib.sha256(
            _bytes_of_stream(GeneratedStream(PART + 1000, seed=11))
            + _bytes_of_stream(GeneratedStream(4321, seed=12))
        ).hexdigest()
    )
    joined = store.complete_upload("videos/joined.mp4", upload_id, parts)
    assert (joined.key, joined.size, joined.content_type) == (
        "videos/joined.mp4",
        PART + 1000 + 4321,
        "video/mp4",
    )
    assert joined.sha256 in (None, expected)  # the folder store hashes while joining; S3 does not
    assert read_all(store, "videos/joined.mp4") == (PART + 1000 + 4321, expected)
    assert store.stat("videos/joined.mp4").content_type == "video/mp4"
    assert unfinished(store, request) == []
    try:  # completing again: the folder store says the upload is gone, S3 (moto) answers as the first time
        again = store.complete_upload("videos/joined.mp4", upload_id, parts)
    except UploadGone:
        pass
    else:
        assert again.size == joined.size
    if not isinstance(
        store, S3BlobStore
    ):  # moto answers a part for a finished upload with a 500, not NoSuchUpload
        with pytest.raises(UploadGone):
            store.put_part("videos/joined.mp4", upload_id, 3, io.BytesIO(b"late"))


def test_a_part_sent_again_replaces_the_one_before_and_parts_not_given_are_dropped(store, request):
    upload_id = store.start_upload("docs/retried.bin", content_type="application/octet-stream")
    store.put_part("docs/retried.bin", upload_id, 1, GeneratedStream(PART, seed=1))  # cut off, as it were
    again = store.put_part("docs/retried.bin", upload_id, 1, GeneratedStream(PART, seed=2))
    stray = store.put_part("docs/retried.bin", upload_id, 2, io.BytesIO(b"never listed"))
    last = store.put_part("docs/retried.bin", upload_id, 3, io.BytesIO(b"the end"))
    assert stray.number == 2
    store.complete_upload("docs/retried.bin", upload_id, [again, last])
    assert (
        b"".join(store.read("docs/retried.bin"))
        == _bytes_of_stream(GeneratedStream(PART, seed=2)) + b"the end"
    )
    assert unfinished(store, request) == []


def _bytes_of_stream(stream: GeneratedStream) -> bytes:
    return b"".join(iter(lambda: stream.read(1 << 20), b""))


def test_a_part_not_as_recorded_is_refused_at_completion(store, request):
    upload_id = store.start_upload("p/changed.bin", content_type="application/octet-stream")
    first = store.put_part("p/changed.bin", upload_id, 1, GeneratedStream(PART, seed=3))
    last = store.put_part("p/changed.bin", upload_id, 2, io.BytesIO(b"tail"))
    with pytest.raises(UploadPartsChanged):
        store.complete_upload("p/changed.bin", upload_id, [first, UploadedPart(2, "0" * 32, last.size)])
    assert not store.exists("p/changed.bin")
    store.complete_upload("p/changed.bin", upload_id, [first, last])  # the upload is still there, whole
    assert store.stat("p/changed.bin").size == PART + 4


def test_abort_upload_drops_the_parts_and_may_be_repeated(store, request):
    upload_id = store.start_upload("v/aborted.mp4", content_type="video/mp4")
    store.put_part("v/aborted.mp4", upload_id, 1, GeneratedStream(PART, seed=4))
    store.abort_upload("v/aborted.mp4", upload_id)
    assert unfinished(store, request) == [] and not store.exists("v/aborted.mp4")
    store.abort_upload("v/aborted.mp4", upload_id)  # again: not an error
    if not isinstance(
        store, S3BlobStore
    ):  # moto answers a part for an aborted upload with a 500, not NoSuchUpload
        with pytest.raises(UploadGone):
            store.put_part("v/aborted.mp4", upload_id, 2, io.BytesIO(b"x"))


def test_unfinished_uploads_are_aborted_except_those_kept(store, request):
    kept = store.start_upload("u/live.mp4", content_type="video/mp4")
    store.put_part("u/live.mp4", kept, 1, io.BytesIO(LIVE_CHUNK))
    dead = store.start_upload("u/dead.mp4", content_type="video/mp4")
    store.put_part("u/dead.mp4", dead, 1, io.BytesIO(b"a dead process's chunk"))
    if not isinstance(store, S3BlobStore):  # moto reports every upload as initiated in 2010
        assert store.abort_unfinished_uploads(started_before=datetime.now(UTC) - timedelta(hours=1)) == 0
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert store.abort_unfinished_uploads(started_before=later, keep={kept}) == 1
    assert unfinished(store, request) == ["u/live.mp4"]
    part = store.put_part("u/live.mp4", kept, 2, io.BytesIO(b"!"))
    store.complete_upload(
        "u/live.mp4", kept, [UploadedPart(1, _etag_of(store, kept, 1), len(LIVE_CHUNK)), part]
    )
    assert b"".join(store.read("u/live.mp4")) == LIVE_CHUNK + b"!"


LIVE_CHUNK = b"a live session's chunk " * (PART // 23 + 1)  # every part but the last: at least 5 MiB on S3


def _etag_of(store, upload_id: str, number: int) -> str:
    """The ETag of a stored part, as the session's rows would have kept it."""
    if isinstance(store, S3BlobStore):
        return hashlib.md5(LIVE_CHUNK).hexdigest()  # S3's ETag of a plain part: its MD5
    folder = store._root / "uploads" / upload_id
    return next(folder.glob(f"{number:08d}-*")).name.split("-", 1)[1]


def test_s3_completion_joins_the_parts_without_copying_them(s3):
    store = s3_store(s3)
    upload_id = store.start_upload("v/two.mp4", content_type="video/mp4")
    parts = [
        store.put_part("v/two.mp4", upload_id, 1, GeneratedStream(PART, seed=5)),
        store.put_part("v/two.mp4", upload_id, 2, GeneratedStream(1000, seed=6)),
    ]
    store.complete_upload("v/two.mp4", upload_id, parts)
    etag = s3.client().stat_object(bucket_name=s3.bucket, object_name="v/two.mp4").etag
    assert etag.endswith("-2"), f"expected the 2-part upload itself, got ETag {etag!r}"


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "read-and-hash"])
def test_folder_completion_joins_the_parts_in_the_kernel_or_else_by_reading(
    tmp_path, monkeypatch, kernel_copy
):
    store = FolderBlobStore(tmp_path / "blobs")
    if not kernel_copy:  # what a file system without copy_file_range answers

        def cannot(*_args, **_kwargs):
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "copy_file_range", cannot, raising=False)
    elif not hasattr(os, "copy_file_range"):
        pytest.skip("no copy_file_range on this system: the folder store reads the parts instead")
    upload_id = store.start_upload("v/three.mp4", content_type="video/mp4")
    sizes = [PART, 1000, 7]
    parts = [
        store.put_part("v/three.mp4", upload_id, number, GeneratedStream(size, seed=20 + number))
        for number, size in enumerate(sizes, start=1)
    ]
    expected = hashlib.sha256(
        b"".join(_bytes_of_stream(GeneratedStream(size, seed=21 + n)) for n, size in enumerate(sizes))
    ).hexdigest()
    joined = store.complete_upload("v/three.mp4", upload_id, parts)
    assert joined.size == sum(sizes)
    assert joined.sha256 == (None if kernel_copy else expected)  # copied by the kernel, nothing hashed it
    assert read_all(store, "v/three.mp4") == (sum(sizes), expected)
    assert store.stat("v/three.mp4").content_type == "video/mp4"
    assert sorted(p.name for p in (tmp_path / "blobs" / "tmp").iterdir()) == []  # no temporary file left


def test_folder_store_syncs_the_folder_of_every_name_it_creates(tmp_path, monkeypatch):
    """A renamed or created file's name is on disk only once its folder is synced: an acknowledged part, an
    upload's folder and an object must survive a power loss."""
    store = FolderBlobStore(tmp_path / "blobs")
    synced: list[tuple[int, int]] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        stat = os.fstat(fd)
        synced.append((stat.st_dev, stat.st_ino))
        fsync(fd)

    def inode(path) -> tuple[int, int]:
        stat = os.stat(path)
        return stat.st_dev, stat.st_ino

    monkeypatch.setattr(os, "fsync", recording)
    upload_id = store.start_upload("v/a.mp4", content_type="video/mp4")
    folder = tmp_path / "blobs" / "uploads" / upload_id
    assert {inode(folder / "upload"), inode(folder), inode(folder.parent)} <= set(synced)
    synced.clear()
    part = store.put_part("v/a.mp4", upload_id, 1, io.BytesIO(b"x" * 1000))
    assert synced == [inode(folder / f"{1:08d}-{part.etag}"), inode(folder)]  # the bytes, then the name
    synced.clear()
    store.put("e/b.jpg", io.BytesIO(b"y"), content_type="image/jpeg")
    placed = tmp_path / "blobs" / "objects" / "e" / "b.jpg"
    assert {inode(placed), inode(placed.parent.parent)} <= set(synced)  # the object, the folder made for it
    assert synced[-1] == inode(placed.parent)


def test_s3_parts_are_bounded_in_memory(s3):
    store = s3_store(s3)
    upload_id = store.start_upload("v/big.mp4", content_type="video/mp4")
    assert store.upload_part_size == PART
    with pytest.raises(ValueError):  # a part past part size + the smallest part is the caller's mistake
        store.put_part("v/big.mp4", upload_id, 1, GeneratedStream(2 * PART + 1, seed=7))
    store.abort_upload("v/big.mp4", upload_id)


def test_list_keys_by_prefix(store):
    for key in ("l/a/1.jpg", "l/a/2.jpg", "l/ab/3.jpg", "l/b/4.jpg", "other/5.jpg"):
        store.put(key, io.BytesIO(b"x"), content_type="image/jpeg")
    assert sorted(store.list_keys("l/a/")) == ["l/a/1.jpg", "l/a/2.jpg"]
    assert sorted(store.list_keys("l/a")) == ["l/a/1.jpg", "l/a/2.jpg", "l/ab/3.jpg"]
    assert sorted(store.list_keys("l/")) == ["l/a/1.jpg", "l/a/2.jpg", "l/ab/3.jpg", "l/b/4.jpg"]
    assert list(store.list_keys("nothing/")) == []


def test_retention_is_reported_honestly(store):
    store.put("keep/1.jpg", io.BytesIO(b"proof"), content_type="image/jpeg")
    until = datetime.now(UTC) + timedelta(days=1)
    assert store.retain("keep/1.jpg", until) is False  # neither a folder nor a bucket without Object Lock can
    with pytest.raises(BlobNotFound):
        store.retain("keep/absent.jpg", until)


def test_presigned_post_is_refused_or_works(store):
    import httpx

    data = b"\xff\xd8\xff" + bytes(range(256)) * 20
    if not isinstance(store, S3BlobStore):
        with pytest.raises(PresignUnsupported):
            store.presigned_post(
                "incoming/1/upload",
                key_prefix="incoming/1/",
                content_type="image/jpeg",
                size=len(data),
                expires_s=600,
            )
        with pytest.raises(PresignUnsupported):
            store.presigned_get_url("incoming/1/upload", 60)
        return
    store.put("placeholder", io.BytesIO(b""), content_type="text/plain")  # the bucket exists
    form = store.presigned_post(
        "incoming/1/upload",
        key_prefix="incoming/1/",
        content_type="image/jpeg",
        size=len(data),
        expires_s=600,
    )
    assert form.fields["key"] == "incoming/1/upload" and form.fields["Content-Type"] == "image/jpeg"
    assert "policy" in form.fields and form.expires_at > datetime.now(UTC)
    response = httpx.post(
        form.url, data=form.fields, files={"file": ("x.jpg", data, "image/jpeg")}, trust_env=False
    )
    assert response.status_code in (200, 201, 204), response.text
    assert b"".join(store.read("incoming/1/upload")) == data


def test_s3_object_lock_retains_and_delete_is_refused(moto_s3):
    target = moto_s3.fresh()  # not the `s3` fixture: its clean-up cannot empty a locked bucket early
    store = s3_store(target, object_lock=True)
    store.put("proof/1.jpg", io.BytesIO(b"proof"), content_type="image/jpeg")
    store.put("staging/x", io.BytesIO(b"scratch"), content_type="image/jpeg")
    store.delete("staging/x")  # every version goes, not just hidden behind a delete marker
    assert (
        list(target.client().list_objects(bucket_name=target.bucket, prefix="staging/", include_version=True))
        == []
    )
    until = datetime.now(UTC) + timedelta(seconds=2)
    assert store.retain("proof/1.jpg", until) is True
    with pytest.raises(BlobLocked):
        store.delete("proof/1.jpg")
    assert b"".join(store.read("proof/1.jpg")) == b"proof"
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.1)  # let the retention lapse
    store.delete("proof/1.jpg")
    target.client().remove_bucket(bucket_name=target.bucket)


def test_s3_presigned_urls_name_the_public_endpoint(s3):
    import httpx

    from tests.evidence_storage.proxy import CuttableProxy

    public = CuttableProxy(s3.endpoint)  # what clients reach, e.g. a gateway in front of MinIO
    public.up()
    try:
        store = s3_store(s3, public_endpoint=public.endpoint)
        store.put("p/q.jpg", io.BytesIO(b"visible"), content_type="image/jpeg")
        url = store.presigned_get_url("p/q.jpg", 60)
        assert url.startswith(f"http://{public.endpoint}/{s3.bucket}/p/q.jpg?")
        assert httpx.get(url, timeout=10, trust_env=False).content == b"visible"
        form = store.presigned_post(
            "in/1/u", key_prefix="in/1/", content_type="image/jpeg", size=3, expires_s=60
        )
        assert form.url == f"http://{public.endpoint}/{s3.bucket}"
    finally:
        public.down()
