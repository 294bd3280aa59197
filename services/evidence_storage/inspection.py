"""Deep inspection of a stored upload before it becomes evidence: is it whole and what it claims, and what
does it say about itself (size in pixels, duration, capture time and place)."""
from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from services.evidence_storage import refusals
from services.evidence_storage.documents import examine_office, examine_pdf
from services.evidence_storage.images import THUMBNAIL_PX, examine_image
from services.evidence_storage.mp4 import examine_video
from services.evidence_storage.sniff import PDF, MediaKind
from services.evidence_storage.streams import BlobFile
from shared.blobs.port import BlobStore, PresignUnsupported
from shared.settings import Settings

SPOOL_IN_MEMORY = 1024 * 1024
POSTER_TIMEOUT_S = 60
NO_FFMPEG = "ffmpeg not available: no poster frame (未安装 ffmpeg，无视频封面)"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Findings:
    """What inspection learned; kind may be more precise than the sniffed one (DOCX vs XLSX)."""

    kind: MediaKind
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    captured_at: str | None = None
    captured_on: date | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    phash: str | None = None
    preview: bytes | None = None  # a JPEG thumbnail (photo) or poster frame (video)
    preview_note: str | None = None


def examine(blobs: BlobStore, key: str, kind: MediaKind, size: int, *, settings: Settings) -> Findings:
    """Inspect the object under key as the sniffed kind; raises a Refusal for anything unsafe or broken."""
    local_tz = ZoneInfo(settings.evidence_timezone)
    if kind.category == "photo":
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            for chunk in blobs.read(key):
                spool.write(chunk)
            spool.seek(0)
            facts = examine_image(spool, kind, max_pixels=settings.evidence_max_image_pixels, local_tz=local_tz)
        return Findings(
            kind=kind, width=facts.width, height=facts.height, captured_at=facts.captured_at, captured_on=facts.captured_on,
            gps_lat=facts.gps_lat, gps_lon=facts.gps_lon, phash=facts.phash, preview=facts.thumbnail,
        )
    read = _ranged(blobs, key)
    if kind.category == "video":
        cached = BlobFile(read, size)  # box headers sit close together: one ranged read serves several
        video = examine_video(cached.pread, size)
        poster, poster_note = video_poster(blobs, key)
        notes = "; ".join(note for note in (video.note, poster_note) if note) or None
        captured = video.created_at
        return Findings(
            kind=kind, width=video.width, height=video.height, duration_s=video.duration_s,
            captured_at=captured.isoformat() if captured else None,
            captured_on=captured.astimezone(local_tz).date() if captured else None,
            preview=poster, preview_note=notes,
        )
    if kind is PDF:
        return Findings(kind=examine_pdf(read, size))
    source = BlobFile(read, size)
    try:
        return Findings(kind=examine_office(source))
    finally:
        source.close()


def video_poster(blobs: BlobStore, key: str) -> tuple[bytes | None, str | None]:
    """A JPEG frame from about one second in, where ffmpeg is installed; otherwise a note saying why not."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None, NO_FFMPEG
    with tempfile.TemporaryDirectory(prefix="poster-") as work:
        try:
            source = blobs.presigned_get_url(key, POSTER_TIMEOUT_S * 2)  # ffmpeg range-reads what it needs
        except PresignUnsupported:
            source = str(Path(work) / "video")
            with open(source, "wb") as out:
                for chunk in blobs.read(key):
                    out.write(chunk)
        target = Path(work) / "poster.jpg"
        for seek in ("1", "0"):  # a clip shorter than a second has no frame at 1 s
            command = [ffmpeg, "-nostdin", "-v", "error", "-y", "-ss", seek, "-i", source, "-frames:v", "1",
                       "-vf", f"scale={THUMBNAIL_PX}:-2", str(target)]
            try:
                subprocess.run(command, check=True, capture_output=True, timeout=POSTER_TIMEOUT_S)
            except (subprocess.SubprocessError, OSError) as exc:
                log.info("ffmpeg found no poster frame at %ss of %s: %s", seek, key, exc)
                continue
            if target.is_file() and target.stat().st_size:
                return target.read_bytes(), None
    return None, "ffmpeg could not decode a frame: no poster (视频无法解码，无封面)"


def _ranged(blobs: BlobStore, key: str):
    def read(offset: int, length: int) -> bytes:
        return blobs.read_range(key, offset, length)
    return read


def check_declared(kind: MediaKind, declared_media_type: str | None) -> None:
    """A presigned upload must be what its declared Content-Type said."""
    if declared_media_type and declared_media_type != kind.media_type:
        raise refusals.type_mismatch(declared_media_type, kind.media_type)
