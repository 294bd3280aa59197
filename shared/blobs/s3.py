"""Blob store on S3 or MinIO: streamed multipart puts, streamed reads, failures reported in seconds."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, BinaryIO, Literal, cast
from urllib.parse import quote

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource, CopySource
from minio.datatypes import Part, PostPolicy
from minio.error import S3Error, ServerError
from minio.retention import Retention

from shared.blobs.port import (
    CHUNK,
    BlobExists,
    BlobLocked,
    BlobNotFound,
    BlobStoreMisconfigured,
    BlobStoreUnavailable,
    HashingReader,
    PresignedPost,
    Readable,
    StoredObject,
    UploadedPart,
    UploadGone,
    UploadPartsChanged,
    check_key,
)

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000
MAX_COPY_SIZE = 5 * 1024**3  # largest single-request server-side copy S3 allows
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
RETRIES = 1
PROBE_TIMEOUT_S = 2.0  # the health probe's own client: one short try, never the request path's retries
_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})
_TRANSIENT = frozenset({"ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout"})
_NETWORK = (urllib3.exceptions.HTTPError, OSError, ServerError)
_CHANGED_PARTS = frozenset({"InvalidPart", "InvalidPartOrder"})
log = logging.getLogger(__name__)
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REFUSED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "InvalidBucketName"}
)


def bucket_name_problem(name: str) -> str | None:
    """Why name is not a valid S3 bucket name (AWS naming rules), or None if it is."""
    if not _BUCKET_NAME.match(name):
        return "3 to 63 characters, only lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "no two adjacent dots, and no dot next to a hyphen"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        return "not formatted as an IP address"
    return None


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


class _ComposeSource(ComposeSource):
    """minio 7.2.18's ComposeSource.object_size and .headers recurse into themselves; these read the fields."""

    @property
    def object_size(self) -> int | None:
        """Size of the source, known once build_headers() ran."""
        return self._object_size

    @property
    def headers(self) -> dict[str, str]:
        """Copy headers, known once build_headers() ran."""
        return dict(self._headers or {})


class _Translated:
    """A context that turns client errors into the port's; a class, because minio's S3Error is a frozen
    dataclass that @contextmanager cannot re-raise (it sets __traceback__ on the way out)."""

    def __init__(self, store: S3BlobStore, action: str, key: str | None) -> None:
        self._store, self._action, self._key = store, action, key

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None or not isinstance(exc, Exception):
            return False
        error = self._store._port_error(exc, self._action, self._key)
        if error is None:
            return False  # let it through unchanged
        raise error from exc


def _http_client(
    connect_s: float = CONNECT_TIMEOUT_S,
    read_s: float = READ_TIMEOUT_S,
    retries: int = RETRIES,
) -> urllib3.PoolManager:
    """A connection pool that gives up within seconds when the server is down or silent.

    One request fails for good within (connect_s + read_s) x (1 + retries) plus at most 0.2 s of backoff.
    """
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_s, read=read_s),
        retries=urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )


def _read_part(stream: Readable, limit: int) -> bytes:
    """All of a part's bytes (the SDK sends a part from one bytes object); ValueError past limit bytes."""
    data = stream.read(limit + 1)  # an io.BytesIO holding exactly the part hands over its own bytes, uncopied
    if len(data) > limit:
        raise ValueError(f"a part may hold at most {limit} bytes")
    if not data:
        return b""
    pieces = [data]
    size = len(data)
    while piece := stream.read(limit + 1 - size):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            raise ValueError(f"a part may hold at most {limit} bytes")
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class S3BlobStore:
    """Objects in one S3 bucket; the bucket is created on first put if missing (with Object Lock if asked)."""

    min_compose_part = MIN_PART_SIZE

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str = "us-east-1",
        part_size: int = 8 * 1024 * 1024,
        object_lock: bool = False,
        public_endpoint: str | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        retries: int = RETRIES,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(
                f"part_size must be at least {MIN_PART_SIZE} bytes (S3 minimum), got {part_size}"
            )
        self._endpoint = endpoint
        self._bucket = bucket
        self._region = region
        self._part_size = part_size
        self.upload_part_size = part_size
        self._object_lock = object_lock
        self._secure = secure
        self._bucket_ready = False
        self._features: dict[str, bool] | None = None
        # Building the client does no network I/O; a known region saves minio a bucket-location request.
        self._client = Minio(
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=_http_client(connect_timeout_s, read_timeout_s, retries),
        )
        probe_s = min(PROBE_TIMEOUT_S, connect_timeout_s, read_timeout_s)
        self._probe = Minio(
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=_http_client(probe_s, probe_s, 0),
        )
        # Presigned URLs must name the host clients reach (it is part of the signature); signing is local.
        self._public_endpoint = public_endpoint or endpoint
        self._signer = (
            self._client
            if not public_endpoint
            else Minio(
                endpoint=public_endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region,
            )
        )

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        with self._translated("bucket check"):
            if not self._client.bucket_exists(bucket_name=self._bucket):
                try:
                    self._client.make_bucket(
                        bucket_name=self._bucket, location=self._region, object_lock=self._object_lock
                    )
                except S3Error as exc:
                    if exc.code != "BucketAlreadyOwnedByYou":  # another process created it meanwhile
                        raise
        self._bucket_ready = True

    def put(self, key: str, stream: Readable, *, content_type: str, digest: Any = None) -> StoredObject:
        """Upload the stream part by part; a failed upload is aborted, so nothing is left behind."""
        check_key(key)
        if not self._bucket_ready:
            self.ensure_bucket()
        reader = HashingReader(stream, digest)
        source = _WholeReads(reader)
        try:
            # One part at a time: memory stays at about one part, and when the stream fails minio's abort
            # cannot race a part upload still running in a worker thread.
            self._client.put_object(
                bucket_name=self._bucket,
                object_name=key,
                data=cast(BinaryIO, source),  # minio annotates BinaryIO but only calls read(n)
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
        sha256 = reader.sha256 if digest is None else None
        return StoredObject(key=key, size=reader.size, content_type=content_type, sha256=sha256)

    def read(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Yield the object's bytes in chunks; raises BlobNotFound at once for a missing key."""
        check_key(key)
        with self._translated(f"read of {key!r}", key):
            response = self._client.get_object(bucket_name=self._bucket, object_name=key)
        return self._chunks(response, key, chunk_size)

    def _chunks(self, response: urllib3.BaseHTTPResponse, key: str, chunk_size: int) -> Iterator[bytes]:
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
        """Remove an object, every version of it in a versioned bucket; a missing key is not an error."""
        check_key(key)
        try:
            with self._translated(f"delete of {key!r}", key):
                if not self._bucket_features()["versioned"]:
                    self._client.remove_object(bucket_name=self._bucket, object_name=key)
                    return
                for item in self._client.list_objects(
                    bucket_name=self._bucket, prefix=key, include_version=True
                ):
                    if item.object_name == key:
                        self._client.remove_object(
                            bucket_name=self._bucket, object_name=key, version_id=item.version_id
                        )
        except BlobNotFound:
            pass

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """A ranged GET; fewer bytes (or none) past the end of the object."""
        check_key(key)
        if length <= 0:
            return b""
        with self._translated(f"ranged read of {key!r}", key):
            try:
                response = self._client.get_object(
                    bucket_name=self._bucket, object_name=key, offset=max(offset, 0), length=length
                )
            except S3Error as exc:
                if exc.code != "InvalidRange":
                    raise
                self.stat(key)  # past the end of an existing object, or a missing one
                return b""
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def move(self, source: str, target: str) -> StoredObject:
        """Server-side copy, then delete the source; no byte passes through this process."""
        check_key(source)
        check_key(target)
        if self.exists(target):
            raise BlobExists(target)
        info = self.stat(source)
        with self._translated(f"move of {source!r}", source):
            if info.size <= MAX_COPY_SIZE:
                self._client.copy_object(
                    bucket_name=self._bucket,
                    object_name=target,
                    source=CopySource(bucket_name=self._bucket, object_name=source),
                )
            else:  # a ranged source makes minio copy part by part
                self._client.compose_object(
                    bucket_name=self._bucket,
                    object_name=target,
                    sources=[_ComposeSource(bucket_name=self._bucket, object_name=source, offset=0)],
                )
        self.delete(source)
        return StoredObject(key=target, size=info.size, content_type=info.content_type)

    def compose(self, key: str, sources: Sequence[str], *, content_type: str) -> StoredObject:
        """A multipart upload whose parts are server-side copies of the sources (each but the last >= 5 MiB)."""
        check_key(key)
        if not sources:
            raise ValueError("compose needs at least one source")
        parts = [_ComposeSource(bucket_name=self._bucket, object_name=source, offset=0) for source in sources]
        # minio stats every source first (and raises ValueError for a small middle one before starting the
        # upload), so the sizes come from its stats rather than a second HEAD per source.
        with self._translated(f"compose of {key!r}"):
            try:
                self._client.compose_object(
                    bucket_name=self._bucket,
                    object_name=key,
                    sources=cast(list[ComposeSource], parts),
                    metadata={"Content-Type": content_type},
                )
            except S3Error as exc:
                if exc.code not in _MISSING:
                    raise
                missing = next((part.object_name for part in parts if part.object_size is None), key)
                raise BlobNotFound(missing) from exc
            except ValueError as exc:
                raise ValueError(
                    f"every compose source but the last must be at least {MIN_PART_SIZE} bytes: {exc}"
                ) from exc
        size = sum(part.object_size or 0 for part in parts)
        return StoredObject(key=key, size=size, content_type=content_type)

    def start_upload(self, key: str, *, content_type: str) -> str:
        """CreateMultipartUpload: the object's type is fixed now; the parts follow, in any order."""
        check_key(key)
        if not self._bucket_ready:
            self.ensure_bucket()
        with self._translated(f"start of an upload to {key!r}"):
            # minio has no public call for these; the private ones are held steady by the minio pin in pyproject
            # (<8, and not 7.2.19, which changed them); they are called with keyword arguments.
            return self._client._create_multipart_upload(
                bucket_name=self._bucket, object_name=key, headers={"Content-Type": content_type}
            )

    def put_part(
        self, key: str, upload_id: str, number: int, stream: Readable, *, digest: Any = None
    ) -> UploadedPart:
        """UploadPart from memory (below upload_part_size + 5 MiB); S3 replaces a part sent again under its number."""
        check_key(key)
        if not 1 <= number <= MAX_PART_NUMBER:
            raise ValueError(f"S3 part numbers run from 1 to {MAX_PART_NUMBER}, got {number}")
        data = _read_part(stream, self.upload_part_size + MIN_PART_SIZE)
        if digest is not None:
            digest.update(data)
        with self._translated(f"part {number} of the upload to {key!r}"):
            try:
                etag = self._client._upload_part(
                    bucket_name=self._bucket,
                    object_name=key,
                    data=data,
                    headers=None,
                    upload_id=upload_id,
                    part_number=number,
                )
            except S3Error as exc:
                if exc.code == "NoSuchUpload":
                    raise UploadGone(f"upload {upload_id} of {key!r}") from exc
                raise
        return UploadedPart(number=number, etag=etag, size=len(data))

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> StoredObject:
        """CompleteMultipartUpload: S3 joins the parts where they lie (no byte is copied) after checking each ETag."""
        check_key(key)
        if not parts:
            raise ValueError("an upload needs at least one part")
        with self._translated(f"completion of the upload to {key!r}"):
            try:
                self._client._complete_multipart_upload(
                    bucket_name=self._bucket,
                    object_name=key,
                    upload_id=upload_id,
                    parts=[Part(part_number=part.number, etag=part.etag) for part in parts],
                )
            except S3Error as exc:
                if exc.code == "NoSuchUpload":
                    raise UploadGone(f"upload {upload_id} of {key!r}") from exc
                if exc.code in _CHANGED_PARTS:
                    raise UploadPartsChanged(
                        f"upload {upload_id} of {key!r}: {exc.code}: {exc.message}"
                    ) from exc
                if exc.code == "EntityTooSmall":
                    raise ValueError(
                        f"every part but the last must be at least {MIN_PART_SIZE} bytes"
                    ) from exc
                raise
        return self.stat(key)

    def abort_upload(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload already gone (finished, aborted) is not an error."""
        check_key(key)
        with self._translated(f"abort of the upload to {key!r}"):
            try:
                self._client._abort_multipart_upload(
                    bucket_name=self._bucket, object_name=key, upload_id=upload_id
                )
            except S3Error as exc:
                if exc.code != "NoSuchUpload":
                    raise

    def list_keys(self, prefix: str, *, modified_before: datetime | None = None) -> Iterator[str]:
        """Keys under prefix, listed page by page."""
        with self._translated(f"listing of {prefix!r}"):
            if not self._client.bucket_exists(bucket_name=self._bucket):
                return
            items = self._client.list_objects(bucket_name=self._bucket, prefix=prefix, recursive=True)
            for item in items:
                if modified_before is None or (item.last_modified and item.last_modified < modified_before):
                    yield item.object_name

    def abort_unfinished_uploads(self, *, started_before: datetime, keep: Collection[str] = ()) -> int:
        """Abort multipart uploads initiated before then (their process died mid-upload; S3 keeps their parts),
        except those in keep."""
        aborted, key_marker, upload_marker = 0, None, None
        with self._translated("listing of unfinished uploads"):
            if not self._client.bucket_exists(bucket_name=self._bucket):
                return 0
            while True:
                # minio has no public call for these; the private ones are pinned by minio<7.2.19 in pyproject.
                page = self._client._list_multipart_uploads(
                    bucket_name=self._bucket, key_marker=key_marker, upload_id_marker=upload_marker
                )
                for upload in page.uploads:
                    if (
                        upload.upload_id
                        and upload.upload_id not in keep
                        and upload.initiated_time
                        and upload.initiated_time < started_before
                    ):
                        log.info("aborting unfinished upload %s of %s", upload.upload_id, upload.object_name)
                        self._client._abort_multipart_upload(
                            bucket_name=self._bucket,
                            object_name=upload.object_name,
                            upload_id=upload.upload_id,
                        )
                        aborted += 1
                if not page.is_truncated:
                    return aborted
                key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker

    def retain(self, key: str, until: datetime, *, mode: str = "GOVERNANCE") -> bool:
        """S3 Object Lock retention on the object, when the bucket was created with Object Lock."""
        check_key(key)
        with self._translated(f"retention of {key!r}", key):
            self.stat(key)
            if not self._bucket_features()["locking"]:
                return False
            until = until.astimezone(UTC).replace(microsecond=0)
            self._client.set_object_retention(
                bucket_name=self._bucket, object_name=key, config=Retention(mode, until)
            )
        return True

    def presigned_get_url(self, key: str, expires_s: int = 3600, *, download_name: str | None = None) -> str:
        """A URL that lets anyone holding it GET the object until it expires (signed locally, no request)."""
        check_key(key)
        headers: dict[str, str | list[str] | tuple[str]] | None = None
        if download_name:
            headers = {"response-content-disposition": f"attachment; filename*=UTF-8''{quote(download_name)}"}
        return self._signer.presigned_get_object(
            bucket_name=self._bucket,
            object_name=key,
            expires=timedelta(seconds=expires_s),
            response_headers=headers,
        )

    def local_path(self, key: str) -> str | None:
        """None: S3 keeps no file on this machine (read through presigned_get_url instead)."""
        check_key(key)
        return None

    def presigned_post(
        self, key: str, *, key_prefix: str, content_type: str, size: int, expires_s: int
    ) -> PresignedPost:
        """A POST policy limited to keys under key_prefix, exactly size bytes and this Content-Type (signed locally)."""
        check_key(key)
        if not key.startswith(key_prefix):
            raise ValueError(f"key {key!r} is not under {key_prefix!r}")
        if not self._bucket_ready:
            self.ensure_bucket()  # the form is useless if the bucket is not there to take it
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=expires_s)
        policy = PostPolicy(self._bucket, expires_at)
        policy.add_starts_with_condition("key", key_prefix)
        policy.add_equals_condition("Content-Type", content_type)
        policy.add_content_length_range_condition(size, size)
        fields = self._signer.presigned_post_policy(policy=policy)
        scheme = "https" if self._secure else "http"
        return PresignedPost(
            url=f"{scheme}://{self._public_endpoint}/{self._bucket}",
            fields={**fields, "key": key, "Content-Type": content_type},
            expires_at=expires_at,
        )

    def _bucket_features(self) -> dict[str, bool]:
        """Whether the bucket has Object Lock and versioning (asked once; Object Lock implies versioning)."""
        if self._features is None:
            if not self._client.bucket_exists(bucket_name=self._bucket):
                return {"locking": False, "versioned": False}
            try:
                self._client.get_object_lock_config(bucket_name=self._bucket)
                locking = True
            except S3Error as exc:
                if exc.code not in ("ObjectLockConfigurationNotFoundError", "NotImplemented"):
                    raise
                locking = False
            versioned = (
                locking or self._client.get_bucket_versioning(bucket_name=self._bucket).status == "Enabled"
            )
            self._features = {"locking": locking, "versioned": versioned}
        return self._features

    def health(self) -> dict[str, Any]:
        """Whether the server answers for the bucket, asked with a client of its own that gives up in seconds; never raises."""
        state = {"backend": "s3", "endpoint": self._endpoint, "bucket": self._bucket}
        problem = bucket_name_problem(self._bucket)
        if problem:
            return {**state, "ok": False, "error": f"invalid bucket name: {problem}"}
        try:
            exists = self._probe.bucket_exists(bucket_name=self._bucket)
        except Exception as exc:
            return {**state, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        return {**state, "ok": True, "bucket_exists": exists}

    def check_config(self) -> None:
        """The bucket name is valid, the credentials are accepted and the bucket exists or can be created."""
        problem = bucket_name_problem(self._bucket)
        if problem:
            raise BlobStoreMisconfigured(
                f"S3_BUCKET {self._bucket!r} is not a valid bucket name: {problem} "
                f"（存储桶名称不合法，请修改 S3_BUCKET）"
            )
        try:
            self.ensure_bucket()
        except BlobStoreUnavailable:
            raise
        except S3Error as exc:
            hint = (
                "check S3_ACCESS_KEY / S3_SECRET_KEY and the key's rights on the bucket（请检查对象存储的访问密钥与权限）"
                if exc.code in _REFUSED
                else "（对象存储拒绝了该存储桶，请检查 S3_BUCKET、S3_REGION）"
            )
            raise BlobStoreMisconfigured(
                f"S3 at {self._endpoint} refused bucket {self._bucket!r}: {exc.code}: {exc.message}; {hint}"
            ) from None
        except ValueError as exc:  # minio's own argument checks
            raise BlobStoreMisconfigured(f"S3 settings rejected: {exc}（对象存储配置有误）") from None

    def _translated(self, action: str, key: str | None = None) -> _Translated:
        """Raise the port's exceptions instead of minio's and urllib3's."""
        return _Translated(self, action, key)

    def _port_error(self, exc: Exception, action: str, key: str | None = None) -> Exception | None:
        """The port's exception for a client error, or None to let it through unchanged."""
        code = exc.code if isinstance(exc, S3Error) else None
        if key is not None and code in _MISSING:
            return BlobNotFound(key)
        if key is not None and code == "AccessDenied" and self._features and self._features["locking"]:
            return BlobLocked(f"{key!r} is under retention in bucket {self._bucket!r}")
        if isinstance(exc, _NETWORK) or code in _TRANSIENT:
            return BlobStoreUnavailable(
                f"S3 at {self._endpoint} (bucket {self._bucket!r}) unavailable: {action} failed: {exc}"
            )
        return None
