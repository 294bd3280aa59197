"""Tell a file's type from its first bytes, never from its name or declared Content-Type."""
from __future__ import annotations

from dataclasses import dataclass

HEAD_BYTES = 64


@dataclass(frozen=True)
class MediaKind:
    """An allowed kind of evidence file."""

    media_type: str
    extension: str
    category: str  # photo, video or document


JPEG = MediaKind("image/jpeg", ".jpg", "photo")
PNG = MediaKind("image/png", ".png", "photo")
WEBP = MediaKind("image/webp", ".webp", "photo")
HEIC = MediaKind("image/heic", ".heic", "photo")
MP4 = MediaKind("video/mp4", ".mp4", "video")
MOV = MediaKind("video/quicktime", ".mov", "video")
PDF = MediaKind("application/pdf", ".pdf", "document")

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def sniff(head: bytes) -> MediaKind | None:
    """The allowed kind these leading bytes belong to, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"%PDF-"):
        return PDF
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return HEIC
        if brand == b"qt  ":
            return MOV
        return MP4
    return None
