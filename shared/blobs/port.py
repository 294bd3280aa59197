"""The blob store port: streamed puts with a SHA-256, streamed reads, no whole file in memory."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Protocol

CHUNK = 1024 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,500}$")


class BlobNotFound(KeyError):
    """No object under that key."""


class BlobStoreUnavailable(RuntimeError):
    """The store could not be reached; the caller may retry later."""


@dataclass(frozen=True)
class StoredObject:
    """What the store knows of one object."""

    key: str
    size: int
    content_type: str
    sha256: str | None = None


class BlobStore(Protocol):
    """Objects by server-chosen key."""

    def put(self, key: str, stream: BinaryIO, *, content_type: str) -> StoredObject:
        """Store the stream's bytes under key, chunk by chunk; on any error nothing is left behind."""

    def read(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Yield the object's bytes in chunks."""

    def stat(self, key: str) -> StoredObject:
        """Size and type of an object; raises BlobNotFound."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under key."""

    def delete(self, key: str) -> None:
        """Remove an object; deleting a missing key is not an error."""

    def health(self) -> dict:
        """The adapter's state for /healthz."""


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's namespace."""
    if not _KEY.match(key) or ".." in key.split("/") or "//" in key:
        raise ValueError(f"invalid object key: {key!r}")
    return key


class HashingReader:
    """Wraps a binary stream, counting bytes and computing SHA-256 as they pass."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
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
