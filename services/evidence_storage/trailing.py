"""Where an image really ends: bytes after its end marker make a polyglot (a JPEG that is also a ZIP), refused.

The platform refuses such files rather than stripping the extra bytes, so the stored bytes and their
SHA-256 are always exactly what the unit uploaded (docs/security.md). Zero padding after the end is
tolerated, and so are further JPEG images after the first (the MPF layout phones use for depth or gain maps).
"""

from __future__ import annotations

import struct

from services.evidence_storage import mp4, refusals
from services.evidence_storage.sniff import HEIC, HEIF, JPEG, PNG, WEBP, MediaKind

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length field (TEM, RSTn)


def check_no_trailing_data(data: bytes, kind: MediaKind) -> None:
    """Raise a Refusal when bytes other than zero padding follow the image's end; malformed images are left to Pillow."""
    if kind in (HEIC, HEIF):
        try:
            mp4.check_boxes(lambda offset, n: data[offset : offset + n], len(data))
        except mp4.StructureError as exc:
            raise refusals.malformed_boxes(kind.label, str(exc)) from exc
        return
    end = {JPEG: _jpeg_end, PNG: _png_end, WEBP: _webp_end}[kind](data)
    if end is None or end >= len(data):
        return
    rest = memoryview(data)[end:]
    if any(rest):
        raise refusals.trailing_data(kind.label, len(rest))


def _jpeg_end(data: bytes) -> int | None:
    """Offset just past the last of the JPEG images laid one after another (None when the first is malformed)."""
    end = _one_jpeg_end(data, 0)
    while end is not None and data.startswith(b"\xff\xd8", end):
        following = _one_jpeg_end(data, end)
        if following is None:
            break
        end = following
    return end


def _one_jpeg_end(data: bytes, start: int) -> int | None:
    """Offset just past the EOI marker of the JPEG starting at start, walking segments and entropy-coded data."""
    n, pos = len(data), start + 2
    while pos + 1 < n:
        if data[pos] != 0xFF:
            return None
        while pos + 1 < n and data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        if pos + 1 >= n:
            return None
        marker = data[pos + 1]
        if marker == 0xD9:
            return pos + 2
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > n:
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker that is not FF00 or RSTn
            scan_end = _scan_end(data, pos)
            if scan_end is None:
                return None
            pos = scan_end
    return None


def _scan_end(data: bytes, pos: int) -> int | None:
    n = len(data)
    while True:
        at = data.find(b"\xff", pos)
        if at < 0 or at + 1 >= n:
            return None
        following = data[at + 1]
        if following == 0x00 or following == 0xFF or 0xD0 <= following <= 0xD7:
            pos = at + 1
            continue
        return at


def _png_end(data: bytes) -> int | None:
    """Offset just past the IEND chunk."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    pos, n = len(_PNG_SIGNATURE), len(data)
    while pos + 12 <= n:
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        pos += 12 + length
        if kind == b"IEND":
            return pos if pos <= n else None
    return None


def _webp_end(data: bytes) -> int | None:
    """Offset just past the RIFF container (its size field counts everything after the first 8 bytes)."""
    if len(data) < 12 or data[:4] != b"RIFF":
        return None
    (size,) = struct.unpack("<I", data[4:8])
    return 8 + size + (size & 1)
