"""MP4/MOV structure check and facts from the box headers alone: duration and creation time (mvhd), frame size (the video tkhd).

Only box headers and a few small boxes are read, by offset, so a 2 GB video costs a handful of small reads
wherever its `moov` box sits (before or after the media data).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_BOXES = 4096  # per level: a file that claims more is not walked further
_EPOCH_1904 = datetime(1904, 1, 1, tzinfo=UTC)
_CONTAINERS = {b"mdia"}
# Boxes that hold only boxes, walked by check_structure (udta/meta are not: their layouts vary by writer).
STRICT_CONTAINERS = {
    b"moov",
    b"trak",
    b"mdia",
    b"minf",
    b"stbl",
    b"edts",
    b"dinf",
    b"mvex",
    b"moof",
    b"traf",
    b"mfra",
}
MAX_STRICT_BOXES = 50_000


@dataclass(frozen=True)
class Box:
    """One box: its type, where it starts, its header length and total size."""

    type: bytes
    start: int
    header: int
    size: int

    @property
    def payload(self) -> int:
        """Offset of the box's content."""
        return self.start + self.header

    @property
    def end(self) -> int:
        """Offset just past the box."""
        return self.start + self.size


@dataclass(frozen=True)
class VideoFacts:
    """What a video's headers say; None where they do not say it."""

    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    created_at: datetime | None = None
    note: str | None = None


def boxes(read: Callable[[int, int], bytes], start: int, end: int) -> Iterator[Box]:
    """The boxes laid one after another between start and end; stops at the first malformed one."""
    pos, count = start, 0
    while pos + 8 <= end and count < MAX_BOXES:
        head = read(pos, 16)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            if len(head) < 16:
                return
            size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif size == 0:
            size = end - pos  # extends to the end of its container
        if size < header or pos + size > end:
            return
        yield Box(kind, pos, header, size)
        pos += size
        count += 1


def check_boxes(read: Callable[[int, int], bytes], size: int) -> set[bytes]:
    """Walk every box strictly (each must fit its parent, the last ends at the file's end); the top-level box types.

    Raises StructureError for a box that does not fit, so nothing can hide after or around the boxes.
    """
    return _strict_level(read, 0, size, [MAX_STRICT_BOXES], top=True)


def check_structure(read: Callable[[int, int], bytes], size: int) -> None:
    """A video's boxes nest strictly and it has a `moov` box (else no player can play it); raises StructureError."""
    if b"moov" not in check_boxes(read, size):
        raise StructureError("no movie header (moov box): the video cannot be played", unplayable=True)


class StructureError(Exception):
    """An MP4/MOV/HEIF whose boxes do not nest properly (or that has no movie header)."""

    def __init__(self, reason: str, *, unplayable: bool = False) -> None:
        super().__init__(reason)
        self.unplayable = unplayable


def _strict_level(
    read: Callable[[int, int], bytes], start: int, end: int, budget: list[int], *, top: bool
) -> set[bytes]:
    """The box types laid between start and end; every box fits, the last ends exactly at end."""
    seen: set[bytes] = set()
    pos = start
    while pos < end:
        if end - pos < 8:
            if not top and not any(read(pos, end - pos)):
                return seen  # a few zero bytes closing a container (QuickTime writers do this)
            raise StructureError(f"{end - pos} stray bytes at offset {pos}")
        budget[0] -= 1
        if budget[0] < 0:
            raise StructureError(f"more than {MAX_STRICT_BOXES} boxes")
        head = read(pos, 16)
        if len(head) < 8:
            raise StructureError(f"box header cut short at offset {pos}")
        box_size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if box_size == 1:
            if len(head) < 16:
                raise StructureError(f"64-bit box size cut short at offset {pos}")
            box_size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif box_size == 0:
            if not top:
                raise StructureError(
                    f"box {kind!r} at offset {pos} claims to run to the end of the file inside a container"
                )
            box_size = end - pos
        if box_size < header or box_size > end - pos:
            raise StructureError(
                f"box {kind!r} at offset {pos} has size {box_size}, which does not fit in {end - pos} bytes"
            )
        seen.add(kind)
        if kind in STRICT_CONTAINERS:
            _strict_level(read, pos + header, pos + box_size, budget, top=False)
        pos += box_size
    return seen


def cut_short(read: Callable[[int, int], bytes], size: int) -> bool:
    """Whether a top-level box claims to run past the end of the file: a recording or upload cut off midway."""
    end = 0
    for box in boxes(read, 0, size):
        end = box.end
    if end >= size:
        return False
    head = read(end, 16)
    if len(head) < 8:
        return False
    claimed, kind = struct.unpack(">I4s", head[:8])
    if claimed == 1 and len(head) == 16:
        claimed = struct.unpack(">Q", head[8:16])[0]
    return kind.isascii() and kind.decode("ascii").isprintable() and end + claimed > size


def examine_video(read: Callable[[int, int], bytes], size: int) -> VideoFacts:
    """Duration, frame size and creation time of an MP4/MOV file; never raises on odd files."""
    moov = next((box for box in boxes(read, 0, size) if box.type == b"moov"), None)
    if moov is None:
        return VideoFacts(note="no movie header (moov box) found; duration unreadable")
    duration = created = None
    width = height = None
    for box in boxes(read, moov.payload, moov.end):
        if box.type == b"mvhd":
            duration, created = _mvhd(read(box.payload, min(box.size - box.header, 32)))
        elif box.type == b"trak" and width is None:
            width, height = _video_track_size(read, box)
    note = None if duration is not None else "movie header has no usable duration"
    return VideoFacts(duration_s=duration, width=width, height=height, created_at=created, note=note)


def _mvhd(data: bytes) -> tuple[float | None, datetime | None]:
    """(seconds, creation time) from a movie header's version 0 or 1 layout."""
    if len(data) < 20:
        return None, None
    if data[0] == 1:
        if len(data) < 32:
            return None, None
        created, _, timescale, duration = struct.unpack(">QQIQ", data[4:32])
        unknown = 0xFFFFFFFFFFFFFFFF
    else:
        created, _, timescale, duration = struct.unpack(">IIII", data[4:20])
        unknown = 0xFFFFFFFF
    seconds = round(duration / timescale, 3) if timescale and duration != unknown else None
    return seconds, _creation_time(created)


def _creation_time(seconds_since_1904: int) -> datetime | None:
    if not seconds_since_1904:
        return None
    try:
        created = _EPOCH_1904 + timedelta(seconds=seconds_since_1904)
    except OverflowError:
        return None
    return created if created.year >= 1990 else None


def _video_track_size(read: Callable[[int, int], bytes], trak: Box) -> tuple[int | None, int | None]:
    """Width and height from the track header, if the track's handler says it is video."""
    tkhd = handler = None
    for box in boxes(read, trak.payload, trak.end):
        if box.type == b"tkhd":
            tkhd = read(box.payload, min(box.size - box.header, 96))
        elif box.type in _CONTAINERS:
            for inner in boxes(read, box.payload, box.end):
                if inner.type == b"hdlr":
                    handler = read(inner.payload, 12)[8:12]
    if handler != b"vide" or not tkhd or len(tkhd) < 84:
        return None, None
    end = 96 if tkhd[0] == 1 else 84
    if len(tkhd) < end:
        return None, None
    width, height = struct.unpack(">II", tkhd[end - 8 : end])
    return (width >> 16) or None, (height >> 16) or None
