"""Blob store on S3 or MinIO: streamed multipart puts, streamed reads, failures reported in seconds."""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from typing import BinaryIO, Iterator

import certifi
import urllib3
from minio import Minio
from minio.error import S3Error, ServerError

from shared.blobs.port import CHUNK, BlobNotFound, BlobStoreUnavailable, HashingReader, StoredObject, check_key

MIN_PART_SIZE = 5 * 1024 * 1024
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 30.0
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})
_TRANSIENT = frozenset({"ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout"})
_NETWORK = (urllib3.exceptions.HTTPError, OSError, ServerError)


class _WholeReads:
    """A stream whose read(n) returns n bytes unless it ends, remembering any error the stream raised.

    minio concatenates whatever read() returns into the part; a stream that returns small pieces would make
    that quadratic. The remembered error tells the caller's broken stream apart from a broken network.
    """

    def __init__(self, stream: HashingReader) -> None:
        self._stream = stream
        self.error: Exception | None = None

    def read(self, n: int = -1) -> bytes:
        """Read exactly n bytes, fewer only at the end of the stream."""
        try:
            data = self._stream.read(n)
            if n is None or n < 0 or len(data) >= n or not data:
                return bytes(data)  # minio insists on bytes; a no-op for bytes
            buffer = bytearray(data)
            while len(buffer) < n and (data := self._stream.read(n - len(buffer))):
                buffer += data
            return bytes(buffer)
        except Exception as exc:
            self.error = exc
            raise


def _http_client() -> urllib3.PoolManager:
    """A connection pool that gives up within seconds when the server is down."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )


class S3BlobStore:
    """Objects in one S3 bucket; the bucket is created on first put if missing."""

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str = "us-east-1",
        part_size: int = 16 * 1024 * 1024,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3 minimum), got {part_size}")
        self._endpoint = endpoint
        self._bucket = bucket
        self._region = region
        self._part_size = part_size
        self._bucket_ready = False
        # Building the client does no network I/O; a known region saves minio a bucket-location request.
        self._client = Minio(
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=_http_client(),
        )

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        with self._translated("bucket check"):
            if not self._client.bucket_exists(bucket_name=self._bucket):
                try:
                    self._client.make_bucket(bucket_name=self._bucket, location=self._region)
                except S3Error as exc:
                    if exc.code != "BucketAlreadyOwnedByYou":  # another process created it meanwhile
                        raise
        self._bucket_ready = True

    def put(self, key: str, stream: BinaryIO, *, content_type: str) -> StoredObject:
        """Upload the stream part by part; a failed upload is aborted, so nothing is left behind."""
        check_key(key)
        if not self._bucket_ready:
            self.ensure_bucket()
        reader = HashingReader(stream)
        source = _WholeReads(reader)
        try:
            # One part at a time: memory stays at about one part, and when the stream fails minio's abort
            # cannot race a part upload still running in a worker thread.
            self._client.put_object(
                bucket_name=self._bucket,
                object_name=key,
                data=source,
                length=-1,
                part_size=self._part_size,
                content_type=content_type,
                num_parallel_uploads=1,
            )
        except Exception as exc:
            # minio reads the whole first part before sending anything, and aborts a multipart upload on error.
            error = None if exc is source.error else self._port_error(exc, f"upload of {key!r}")
            if error is None:
                raise
            raise error from exc
        return StoredObject(key=key, size=reader.size, content_type=content_type, sha256=reader.sha256)

    def read(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Yield the object's bytes in chunks; raises BlobNotFound at once for a missing key."""
        check_key(key)
        with self._translated(f"read of {key!r}", key):
            response = self._client.get_object(bucket_name=self._bucket, object_name=key)
        return self._chunks(response, key, chunk_size)

    def _chunks(self, response, key: str, chunk_size: int) -> Iterator[bytes]:
        """Stream the response body, then hand its connection back to the pool."""
        try:
            with self._translated(f"read of {key!r}"):
                yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> StoredObject:
        """Size and type of an object; the SHA-256 is not known to S3, so it is None."""
        check_key(key)
        with self._translated(f"stat of {key!r}", key):
            info = self._client.stat_object(bucket_name=self._bucket, object_name=key)
        content_type = info.content_type or "application/octet-stream"
        return StoredObject(key=key, size=info.size or 0, content_type=content_type, sha256=None)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under key."""
        try:
            self.stat(key)
        except BlobNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Remove an object; deleting a missing key (or from a missing bucket) is not an error."""
        check_key(key)
        try:
            with self._translated(f"delete of {key!r}", key):
                self._client.remove_object(bucket_name=self._bucket, object_name=key)
        except BlobNotFound:
            pass

    def presigned_get_url(self, key: str, expires_s: int = 3600) -> str:
        """A URL that lets anyone holding it GET the object until it expires (signed locally, no request)."""
        check_key(key)
        return self._client.presigned_get_object(
            bucket_name=self._bucket, object_name=key, expires=timedelta(seconds=expires_s)
        )

    def health(self) -> dict:
        """Whether the server answers for the bucket; never raises."""
        state = {"backend": "s3", "endpoint": self._endpoint, "bucket": self._bucket}
        try:
            exists = self._client.bucket_exists(bucket_name=self._bucket)
        except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
            return {**state, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        return {**state, "ok": True, "bucket_exists": exists}

    @contextmanager
    def _translated(self, action: str, key: str | None = None) -> Iterator[None]:
        """Raise the port's exceptions instead of minio's and urllib3's."""
        try:
            yield
        except Exception as exc:
            error = self._port_error(exc, action, key)
            if error is None:
                raise
            raise error from exc

    def _port_error(self, exc: Exception, action: str, key: str | None = None) -> Exception | None:
        """The port's exception for a client error, or None to let it through unchanged."""
        code = exc.code if isinstance(exc, S3Error) else None
        if key is not None and code in _MISSING:
            return BlobNotFound(key)
        if isinstance(exc, _NETWORK) or code in _TRANSIENT:
            return BlobStoreUnavailable(f"S3 at {self._endpoint} (bucket {self._bucket!r}) unavailable: {action} failed: {exc}")
        return None
