"""Blocking file-like readers used while streaming an upload into the blob store."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable

from shared.blobs.port import Readable


class UploadTooLarge(Exception):
    """The upload passed the configured size limit."""


def read_head(stream: Readable, size: int) -> bytes:
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

    def __init__(self, head: bytes, stream: Readable, max_bytes: int) -> None:
        self._head, self._stream, self._max = head, stream, max_bytes
        self._seen = 0

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes (n < 0: one chunk of the underlying stream)."""
        if self._head:
            data = self._head if n < 0 else self._head[:n]
            self._head = self._head[len(data) :]
        else:
            data = self._stream.read(n if n >= 0 else 1024 * 1024)
        self._seen += len(data)
        if self._seen > self._max:
            raise UploadTooLarge(self._seen)
        return data


TAKE_BYTES = 1024 * 1024  # handed to the worker thread per take: few thread hops, small copies


class ReadAhead:
    """Receives an async byte stream (a request body) on the event loop into a bounded buffer that a worker
    thread drains with take().

    The loop keeps receiving while the thread hashes and stores what it took, so the network and the store
    overlap, and one take hands over about a MiB instead of one small ASGI message per thread hop.
    Memory: at most limit bytes plus one message are buffered. An error of the stream (ClientDisconnect)
    is raised by the take that finds the buffer empty.
    """

    def __init__(self, chunks: AsyncIterator[bytes], limit: int) -> None:
        self._chunks, self._limit = chunks, limit
        self._buffer: deque[bytes] = deque()
        self._size = 0
        self._ended = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._space: asyncio.Event | None = None

    async def run(self) -> None:
        """Receive until the stream ends, fails or this task is cancelled; waits while the buffer is full."""
        self._loop, self._space = asyncio.get_running_loop(), asyncio.Event()
        try:
            async for chunk in self._chunks:
                if not chunk:
                    continue
                with self._ready:
                    self._buffer.append(chunk)
                    self._size += len(chunk)
                    self._ready.notify()
                while True:
                    with self._ready:
                        if self._size < self._limit:
                            break
                        self._space.clear()  # set again by the take that empties the buffer
                    await self._space.wait()
        except BaseException as exc:
            with self._ready:
                self._error = exc
                self._ready.notify()
            if not isinstance(exc, Exception):
                raise  # cancellation
            return
        with self._ready:
            self._ended = True
            self._ready.notify()

    def take(self) -> bytes:
        """The next buffered messages, about TAKE_BYTES of them, waiting for at least one byte; b"" at the end
        (for a worker thread)."""
        with self._ready:
            while not self._buffer and not self._ended and self._error is None:
                self._ready.wait()
            if not self._buffer:
                if self._error is not None:
                    raise self._error
                return b""
            taken: list[bytes] = []
            size = 0
            while self._buffer and size < TAKE_BYTES:  # whole messages; never one big join of the buffer
                taken.append(self._buffer.popleft())
                size += len(taken[-1])
            self._size -= size
            data = taken[0] if len(taken) == 1 else b"".join(taken)
        if self._loop is not None and self._space is not None:
            self._loop.call_soon_threadsafe(self._space.set)
        return data


class ChunkPullReader:
    """A blocking reader over a function that returns the next chunk (b"" at the end).

    Chunks are kept as they came and joined once per read, so a read of one S3 part costs one copy of it.
    """

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        self._next = next_chunk
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes; fewer only at the end of the stream."""
        while not self._eof and (n < 0 or self._size < n):
            chunk = self._next()
            if not chunk:
                self._eof = True
                break
            self._chunks.append(bytes(chunk))
            self._size += len(chunk)
            if n < 0:
                break
        if n < 0 or n >= self._size:
            taken, self._size = list(self._chunks), 0
            self._chunks.clear()
            return b"".join(taken)
        taken, need = [], n
        while need:
            chunk = self._chunks.popleft()
            if len(chunk) > need:
                self._chunks.appendleft(chunk[need:])
                chunk = chunk[:need]
            taken.append(chunk)
            need -= len(chunk)
        self._size -= n
        return b"".join(taken)


class BlobFile:
    """A read-only, seekable file over ranged reads of one stored object, with a small block cache.

    zipfile and the MP4 box walker seek around a file but read little of it; this fetches only what they read.
    """

    BLOCK = 64 * 1024
    CACHED_BLOCKS = 16

    def __init__(self, read_range: Callable[[int, int], bytes], size: int) -> None:
        self._read_range, self._size = read_range, size
        self._pos = 0
        self._blocks: dict[int, bytes] = {}

    def seekable(self) -> bool:
        """Always seekable."""
        return True

    def readable(self) -> bool:
        """Always readable."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position like a file."""
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes from the position (to the end when n < 0)."""
        end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        parts = []
        while self._pos < end:
            index, within = divmod(self._pos, self.BLOCK)
            block = self._block(index)
            if not block:
                break
            take = block[within : within + end - self._pos]
            parts.append(take)
            self._pos += len(take)
        return b"".join(parts)

    def pread(self, offset: int, n: int) -> bytes:
        """Read n bytes at offset without moving the position."""
        saved = self._pos
        self._pos = offset
        try:
            return self.read(n)
        finally:
            self._pos = saved

    def close(self) -> None:
        """Drop the cache."""
        self._blocks.clear()

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is None:
            block = self._read_range(index * self.BLOCK, self.BLOCK)
            if len(self._blocks) >= self.CACHED_BLOCKS:
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[index] = block
        return block
