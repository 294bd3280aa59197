"""The blob store port: streamed puts with a SHA-256, streamed reads, no whole file in memory."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

CHUNK = 1024 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,500}$")


class BlobNotFound(KeyError):
    """No object under that key."""


class BlobStoreUnavailable(RuntimeError):
    """The store could not be reached; the caller may retry later."""


class BlobStoreMisconfigured(RuntimeError):
    """The store's settings cannot work (bad bucket name, credentials refused, folder not writable): fix them and restart."""


class BlobExists(FileExistsError):
    """The target key already holds an object; a move never overwrites."""


class BlobLocked(PermissionError):
    """The store refused to remove an object under retention."""


class PresignUnsupported(NotImplementedError):
    """This store cannot hand out presigned URLs; bytes must go through the API."""


class UploadGone(LookupError):
    """The multipart upload is no longer in the store (aborted, or already completed)."""


class UploadPartsChanged(RuntimeError):
    """A part given to complete_upload() is not in the upload as recorded (missing, or overwritten since)."""


@dataclass(frozen=True)
class StoredObject:
    """What the store knows of one object."""

    key: str
    size: int
    content_type: str
    sha256: str | None = None


@dataclass(frozen=True)
class UploadedPart:
    """One stored part of a multipart upload: its number, the store's tag for its bytes, and its size."""

    number: int
    etag: str
    size: int


@dataclass(frozen=True)
class PresignedPost:
    """A browser-style POST form that uploads one object straight to the store."""

    url: str
    fields: dict[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None


class Readable(Protocol):
    """What put() needs of a stream: read(n) returning up to n bytes, b"" at the end (files, sockets, wrappers)."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to n bytes (all that is left for n < 0); b"" at the end."""
        ...


class BlobStore(Protocol):
    """Objects by server-chosen key."""

    min_compose_part: int  # smallest size of every compose() source and every upload part but the last

    @property
    def upload_part_size(self) -> int | None:
        """What a long run of bytes is cut into for put_part() (None: one part of any size, streamed). A part may
        run to upload_part_size + min_compose_part bytes, so that no part but the last is smaller than
        min_compose_part (S3: the SDK sends a part from memory, so this bounds the memory a part takes)."""

    def put(self, key: str, stream: Readable, *, content_type: str, digest: Any = None) -> StoredObject:
        """Store the stream's bytes under key, chunk by chunk; on any error nothing is left behind.

        The bytes are hashed once as they pass: into a fresh SHA-256 (the returned sha256), or, when digest is a
        hashlib object, into that one instead (a running hash over several objects; the caller reads it, and the
        returned sha256 is None because this object's own hash was not computed)."""

    def read(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Yield the object's bytes in chunks."""

    def stat(self, key: str) -> StoredObject:
        """Size and type of an object; raises BlobNotFound."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under key."""

    def delete(self, key: str) -> None:
        """Remove an object; deleting a missing key is not an error."""

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """Up to length bytes from offset (fewer at the end of the object); raises BlobNotFound."""

    def move(self, source: str, target: str) -> StoredObject:
        """Move an object to a new key inside the store; raises BlobExists if target is taken."""

    def compose(self, key: str, sources: Sequence[str], *, content_type: str) -> StoredObject:
        """Join objects, in order, into a new one inside the store; the sources stay."""

    def start_upload(self, key: str, *, content_type: str) -> str:
        """Begin a multipart upload that will become the object under key; returns its upload id."""

    def put_part(
        self, key: str, upload_id: str, number: int, stream: Readable, *, digest: Any = None
    ) -> UploadedPart:
        """Store the stream's bytes as part number of the upload (a part already under that number is replaced);
        raises UploadGone. When digest is a hashlib object, the bytes are fed into it as they pass (a running hash
        over several parts); a part's own SHA-256 is never computed."""

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> StoredObject:
        """Join the given parts, in order, into the object under key without copying them again; parts not given
        are dropped. Raises UploadGone, or UploadPartsChanged when a part is not as given."""

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Drop an unfinished upload and its parts; aborting a finished or missing upload is not an error."""

    def list_keys(self, prefix: str, *, modified_before: datetime | None = None) -> Iterator[str]:
        """Keys of the objects whose key starts with prefix (only those last written before modified_before, if given)."""

    def abort_unfinished_uploads(self, *, started_before: datetime, keep: Collection[str] = ()) -> int:
        """Abort uploads started before then and never finished (S3 multipart uploads, a folder's temporary files
        and unfinished uploads), except the multipart uploads whose ids are in keep (still in use)."""

    def retain(self, key: str, until: datetime, *, mode: str = "GOVERNANCE") -> bool:
        """Put the object under store-level retention until then; False when the store cannot."""

    def presigned_get_url(self, key: str, expires_s: int = 3600, *, download_name: str | None = None) -> str:
        """A URL that lets its holder GET the object until it expires; raises PresignUnsupported."""

    def local_path(self, key: str) -> str | None:
        """A file a program on this machine may read the object from (never write), or None when the store keeps
        no local file (S3); raises BlobNotFound."""

    def presigned_post(
        self, key: str, *, key_prefix: str, content_type: str, size: int, expires_s: int
    ) -> PresignedPost:
        """A POST form for exactly one upload under key_prefix; raises PresignUnsupported."""

    def health(self) -> dict[str, Any]:
        """The adapter's state for /healthz."""

    def check_config(self) -> None:
        """Verify the store works as configured (bucket valid and usable, folder writable): raises
        BlobStoreMisconfigured saying which setting is wrong, or BlobStoreUnavailable if it cannot be reached."""


def check_blob_store(store: BlobStore) -> dict[str, Any]:
    """The configuration check as a readiness probe: {"ok": bool, "problem": str | None}; never raises."""
    try:
        store.check_config()
    except (BlobStoreMisconfigured, BlobStoreUnavailable) as exc:
        return {"ok": False, "problem": str(exc)}
    return {"ok": True, "problem": None}


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's namespace."""
    if not _KEY.match(key) or ".." in key.split("/") or "//" in key:
        raise ValueError(f"invalid object key: {key!r}")
    return key


class HashingReader:
    """Wraps a binary stream, counting bytes and computing SHA-256 as they pass (into digest, if given)."""

    def __init__(self, stream: Readable, digest: Any = None) -> None:
        self._stream = stream
        self._hash = hashlib.sha256() if digest is None else digest
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes from the wrapped stream."""
        data = self._stream.read(n)
        if data:
            self._hash.update(data)
            self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        """Hex digest of everything read so far."""
        return self._hash.hexdigest()
