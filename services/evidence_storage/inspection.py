"""Deep inspection of a stored upload before it becomes evidence: is it whole and what it claims, and what
does it say about itself (size in pixels, duration, capture time and place)."""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from services.evidence_storage import refusals, video
from services.evidence_storage.documents import examine_office, examine_pdf
from services.evidence_storage.images import THUMBNAIL_PX, examine_image
from services.evidence_storage.mp4 import StructureError, check_structure, cut_short, examine_video
from services.evidence_storage.sniff import PDF, MediaKind
from services.evidence_storage.streams import BlobFile
from services.evidence_storage.trailing import check_no_trailing_data
from shared.blobs.port import BlobStore, PresignUnsupported
from shared.settings import Settings

SPOOL_IN_MEMORY = 1024 * 1024
NO_FFMPEG = "ffmpeg not available: no probe or poster frame (未找到 ffmpeg，未检查视频、无封面)"
NO_POSTER = "ffmpeg could not take a frame: no poster (无法截取视频封面)"
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
    video_codec: str | None = None
    audio_codec: str | None = None
    needs_rendition: bool = False  # a video browsers cannot play as it is: the worker makes an H.264/AAC copy


def examine(blobs: BlobStore, key: str, kind: MediaKind, size: int, *, settings: Settings) -> Findings:
    """Inspect the object under key as the sniffed kind; raises a Refusal for anything unsafe or broken."""
    local_tz = ZoneInfo(settings.evidence_timezone)
    if kind.category == "photo":
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            for chunk in blobs.read(key):
                spool.write(chunk)
            spool.seek(0)
            check_no_trailing_data(spool.read(), kind)  # a photo is at most EVIDENCE_PHOTO_MAX_BYTES
            spool.seek(0)
            facts = examine_image(
                spool, kind, max_pixels=settings.evidence_max_image_pixels, local_tz=local_tz
            )
        return Findings(
            kind=kind,
            width=facts.width,
            height=facts.height,
            captured_at=facts.captured_at,
            captured_on=facts.captured_on,
            gps_lat=facts.gps_lat,
            gps_lon=facts.gps_lon,
            phash=facts.phash,
            preview=facts.thumbnail,
        )
    read = _ranged(blobs, key)
    if kind.category == "video":
        cached = BlobFile(read, size)  # box headers sit close together: one ranged read serves several
        try:
            check_structure(cached.pread, size)
        except StructureError as exc:
            refusal = (
                refusals.unplayable_video(kind.label)
                if exc.unplayable
                else refusals.malformed_boxes(kind.label, str(exc))
            )
            raise refusal from exc
        header = examine_video(cached.pread, size)  # the capture time is in the movie header
        if cut_short(cached.pread, size):  # ffmpeg would still play the frames before the cut
            raise refusals.damaged(kind.label, "a box runs past the end of the file")
        probed, poster, poster_note = look_at_video(blobs, key, kind)
        captured = header.created_at
        if probed is None:  # no ffmpeg: what the box headers say
            notes = "; ".join(note for note in (header.note, poster_note) if note) or None
            return Findings(
                kind=kind,
                width=header.width,
                height=header.height,
                duration_s=header.duration_s,
                captured_at=captured.isoformat() if captured else None,
                captured_on=captured.astimezone(local_tz).date() if captured else None,
                preview=poster,
                preview_note=notes,
            )
        return Findings(
            kind=kind,
            width=probed.width or header.width,
            height=probed.height or header.height,
            duration_s=probed.duration_s if probed.duration_s is not None else header.duration_s,
            captured_at=captured.isoformat() if captured else None,
            captured_on=captured.astimezone(local_tz).date() if captured else None,
            preview=poster,
            preview_note=poster_note,
            video_codec=probed.video_codec,
            audio_codec=probed.audio_codec,
            needs_rendition=not probed.web_playable(kind.media_type),
        )
    if kind is PDF:
        return Findings(kind=examine_pdf(read, size))  # also refuses JavaScript and launch actions
    source = BlobFile(read, size)
    try:
        return Findings(kind=examine_office(source))
    finally:
        source.close()


def look_at_video(
    blobs: BlobStore, key: str, kind: MediaKind
) -> tuple[video.VideoProbe | None, bytes | None, str | None]:
    """Probe the video with ffmpeg (refusing what it cannot decode) and take a poster frame: (probe, poster, note)."""
    ffmpeg = video.ffmpeg_exe()
    if ffmpeg is None:
        return None, None, NO_FFMPEG
    with tempfile.TemporaryDirectory(prefix="video-") as work:
        source = ffmpeg_source(blobs, key, Path(work), video.POSTER_TIMEOUT_S * 2)
        # Two ffmpeg runs side by side: each waits mostly on reading the object (from S3, ranged requests), so
        # the upload's answer comes sooner; a poster taken from a video then refused is thrown away.
        with ThreadPoolExecutor(1, thread_name_prefix="poster") as side:
            framed = side.submit(video.poster, ffmpeg, source, Path(work) / "poster.jpg", width=THUMBNAIL_PX)
            try:
                probed = video.probe(ffmpeg, source)
            except video.VideoUndecodable as exc:
                log.info("video %s refused, ffmpeg cannot decode it: %s", key, exc)
                raise refusals.undecodable_video(kind.label, str(exc)) from None
            poster = framed.result()
    return probed, poster, None if poster else NO_POSTER


def ffmpeg_source(blobs: BlobStore, key: str, work: Path, ttl_s: int) -> str:
    """What ffmpeg reads the object from: the store's own file (the folder store), a presigned URL (it
    range-reads what it needs) or else a local copy in work."""
    path = blobs.local_path(key)
    if path is not None:
        return path
    try:
        return blobs.presigned_get_url(key, ttl_s)
    except PresignUnsupported:
        source = work / "source"
        with open(source, "wb") as out:
            for chunk in blobs.read(key):
                out.write(chunk)
        return str(source)


def _ranged(blobs: BlobStore, key: str):
    def read(offset: int, length: int) -> bytes:
        return blobs.read_range(key, offset, length)

    return read


def check_declared(kind: MediaKind, declared_media_type: str | None) -> None:
    """A presigned upload must be what its declared Content-Type said."""
    if declared_media_type and declared_media_type != kind.media_type:
        raise refusals.type_mismatch(declared_media_type, kind.media_type)
