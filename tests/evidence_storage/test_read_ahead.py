"""streams.ReadAhead: the request body received on the event loop ahead of the worker thread that stores it."""

from __future__ import annotations

import asyncio

import pytest

from services.evidence_storage.streams import ChunkPullReader, ReadAhead


async def _body(pieces: list[bytes], log: list[int], error: Exception | None = None):
    for index, piece in enumerate(pieces):
        log.append(index)
        yield piece
    if error is not None:
        raise error


async def _drain(pump: ReadAhead, n: int) -> list[bytes]:
    """Run the pump and, in a worker thread, read n bytes at a time to the end; returns the reads."""
    task = asyncio.ensure_future(pump.run())
    reader = ChunkPullReader(pump.take)
    reads: list[bytes] = []

    def work() -> None:
        while data := reader.read(n):
            reads.append(data)

    await asyncio.to_thread(work)
    await task  # the body ended, so the pump did too
    return reads


def test_read_ahead_hands_over_every_byte_in_order():
    pieces = [bytes([i]) * (1000 + i) for i in range(200)]
    reads = asyncio.run(_drain(ReadAhead(_body(pieces, []), limit=10_000), 4096))
    assert b"".join(reads) == b"".join(pieces)
    assert all(len(r) == 4096 for r in reads[:-1])


def test_read_ahead_stops_receiving_while_the_buffer_is_full():
    received: list[int] = []

    async def scenario() -> int:
        pump = ReadAhead(_body([b"x" * 100] * 50, received), limit=300)
        task = asyncio.ensure_future(pump.run())
        await asyncio.sleep(0.05)  # nobody takes: the pump waits once 300 bytes are buffered
        waiting_at = len(received)
        assert not task.done()
        assert await asyncio.to_thread(pump.take) == b"x" * 300
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return waiting_at

    assert asyncio.run(scenario()) == 3


def test_read_ahead_raises_the_stream_error_after_the_bytes_before_it():
    class Cut(Exception):
        pass

    async def scenario() -> list[bytes]:
        pump = ReadAhead(_body([b"a" * 10, b"b" * 10], [], Cut()), limit=1000)
        task = asyncio.ensure_future(pump.run())
        taken = [await asyncio.to_thread(pump.take)]
        with pytest.raises(Cut):
            await asyncio.to_thread(pump.take)
        await task  # an error of the stream ends the pump quietly; the taker raises it
        return taken

    assert asyncio.run(scenario()) == [b"a" * 10 + b"b" * 10]
