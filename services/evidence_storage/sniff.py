"""Tell a file's type from its first bytes, never from its name or declared Content-Type."""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEAD_BYTES = 512


@dataclass(frozen=True)
class MediaKind:
    """An allowed kind of evidence file."""

    media_type: str
    extension: str
    category: str  # photo, video or document
    label: str  # what users call it
    definitive: bool = True  # False: the bytes so far only say "a ZIP"; inspection decides DOCX or XLSX


JPEG = MediaKind("image/jpeg", ".jpg", "photo", "JPEG")
PNG = MediaKind("image/png", ".png", "photo", "PNG")
WEBP = MediaKind("image/webp", ".webp", "photo", "WebP")
HEIC = MediaKind("image/heic", ".heic", "photo", "HEIC")
HEIF = MediaKind("image/heif", ".heif", "photo", "HEIF")
MP4 = MediaKind("video/mp4", ".mp4", "video", "MP4")
MOV = MediaKind("video/quicktime", ".mov", "video", "MOV")
PDF = MediaKind("application/pdf", ".pdf", "document", "PDF")
DOCX = MediaKind(
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx", "document", "DOCX"
)
XLSX = MediaKind(
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx", "document", "XLSX"
)
OFFICE_ZIP = MediaKind("application/zip", ".zip", "document", "DOCX/XLSX", definitive=False)

ALLOWED = (JPEG, PNG, WEBP, HEIC, HEIF, MP4, MOV, PDF, DOCX, XLSX)
BY_MEDIA_TYPE = {kind.media_type: kind for kind in ALLOWED}
ALLOWED_TEXT = "JPEG、PNG、WebP、HEIC/HEIF 照片，MP4、MOV 视频，PDF、DOCX、XLSX 文档"
ALLOWED_TEXT_EN = "JPEG, PNG, WebP, HEIC/HEIF photos, MP4/MOV videos, PDF/DOCX/XLSX documents"

_HEVC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_MP4_BRANDS = {
    b"isom",
    b"iso2",
    b"iso3",
    b"iso4",
    b"iso5",
    b"iso6",
    b"mp41",
    b"mp42",
    b"mp71",
    b"avc1",
    b"M4V ",
    b"M4VH",
    b"M4VP",
    b"dash",
    b"MSNV",
    b"XAVC",
    b"mmp4",
    b"f4v ",
}


def sniff(head: bytes) -> MediaKind | None:
    """The allowed kind these leading bytes belong to, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return OFFICE_ZIP
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _iso_media(head)
    if len(head) >= 8 and head[4:8] in (b"moov", b"wide"):  # QuickTime files older than the ftyp box
        return MOV
    return None


def _iso_media(head: bytes) -> MediaKind | None:
    """HEIC/HEIF, MOV or MP4 by the ftyp box's major and compatible brands; AVIF and others are refused."""
    box_size = struct.unpack(">I", head[:4])[0]
    end = min(len(head), box_size if box_size >= 16 else 16)
    major = head[8:12]
    brands = {major} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & _HEVC_BRANDS:
        return HEIC
    if brands & _AVIF_BRANDS:
        return None
    if brands & _HEIF_BRANDS:
        return HEIF
    if major == b"qt  ":
        return MOV
    if brands & _MP4_BRANDS:
        return MP4
    return None
