"""Blocking file-like readers used while streaming an upload into the blob store."""
from __future__ import annotations

from typing import BinaryIO, Callable


class UploadTooLarge(Exception):
    """The upload passed the configured size limit."""


def read_head(stream: BinaryIO, size: int) -> bytes:
    """Read up to size bytes, looping over short reads, so a type can be sniffed."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class PrefixedLimitedReader:
    """Replays already-read head bytes, then the rest of the stream; raises past max_bytes."""

    def __init__(self, head: bytes, stream: BinaryIO, max_bytes: int) -> None:
        self._head, self._stream, self._max = head, stream, max_bytes
        self._seen = 0

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes (n < 0: one chunk of the underlying stream)."""
        if self._head:
            data = self._head if n < 0 else self._head[:n]
            self._head = self._head[len(data):]
        else:
            data = self._stream.read(n if n >= 0 else 1024 * 1024)
        self._seen += len(data)
        if self._seen > self._max:
            raise UploadTooLarge(self._seen)
        return data


class ChunkPullReader:
    """A blocking reader over a function that returns the next chunk (b"" at the end)."""

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        self._next = next_chunk
        self._buffer = bytearray()
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes; fewer only at the end of the stream."""
        while not self._eof and (n < 0 or len(self._buffer) < n):
            chunk = self._next()
            if not chunk:
                self._eof = True
                break
            self._buffer += chunk
            if n < 0:
                break
        take = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        return data
