"""Photo inspection with Pillow: decodes within a pixel budget, reads EXIF capture time and GPS, makes a
thumbnail and a perceptual hash. A file Pillow cannot decode completely is refused as damaged."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

from services.evidence_storage import perceptual, refusals
from services.evidence_storage.sniff import HEIC, HEIF, JPEG, PNG, WEBP, MediaKind

THUMBNAIL_PX = 320
_PIL_FORMATS = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP", HEIC: "HEIF", HEIF: "HEIF"}
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED, _DATETIME, _OFFSET_ORIGINAL = 36867, 36868, 306, 36881
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_heif_ready = False


@dataclass(frozen=True)
class ImageFacts:
    """What a photo says about itself."""

    width: int
    height: int
    captured_at: str | None
    captured_on: date | None
    gps_lat: float | None
    gps_lon: float | None
    phash: str
    thumbnail: bytes


def examine_image(source: IO[bytes], kind: MediaKind, *, max_pixels: int, local_tz: tzinfo) -> ImageFacts:
    """Check the photo decodes whole within max_pixels; raises a Refusal otherwise."""
    _enable_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", Image.DecompressionBombWarning
            )  # our own, lower limit applies below
            image = Image.open(source, formats=[_PIL_FORMATS[kind]])
    except Image.DecompressionBombError as exc:
        raise refusals.too_many_pixels(None, None, max_pixels) from exc
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise refusals.damaged(kind.label, str(exc)) from exc
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise refusals.damaged(kind.label, "no pixels")
        if width * height > max_pixels:
            raise refusals.too_many_pixels(width, height, max_pixels)
        exif = _exif(image)
        if kind is JPEG:
            image.draft(
                "RGB", (THUMBNAIL_PX, THUMBNAIL_PX)
            )  # decode at 1/2..1/8 scale: all the data, less memory
        try:
            image.load()
        except (Image.DecompressionBombError, *_DECODE_ERRORS) as exc:
            raise refusals.damaged(kind.label, str(exc)) from exc
        if exif is not None:
            ImageOps.exif_transpose(image, in_place=True)
        image.thumbnail(
            (THUMBNAIL_PX, THUMBNAIL_PX)
        )  # in place: the full-size pixels are not needed any more
        small = image if image.mode == "RGB" else image.convert("RGB")
        captured_at, captured_on = _capture_time(exif, local_tz)
        lat, lon = _gps(exif)
        return ImageFacts(
            width=width,
            height=height,
            captured_at=captured_at,
            captured_on=captured_on,
            gps_lat=lat,
            gps_lon=lon,
            phash=perceptual.to_hex(perceptual.phash(small)),
            thumbnail=_jpeg(small),
        )


def _enable_heif() -> None:
    """Register the HEIC/HEIF decoder with Pillow on first use (not at import)."""
    global _heif_ready
    if not _heif_ready:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _heif_ready = True


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def _exif(image: Image.Image):
    try:
        exif = image.getexif()
    except _DECODE_ERRORS:
        return None
    return exif if exif else None


def _capture_time(exif, local_tz: tzinfo) -> tuple[str | None, date | None]:
    """When the photo was taken, as written, and its local date (EXIF times are local unless an offset says)."""
    if exif is None:
        return None, None
    try:
        details = exif.get_ifd(_EXIF_IFD)
        text = details.get(_DATETIME_ORIGINAL) or details.get(_DATETIME_DIGITIZED) or exif.get(_DATETIME)
        offset = details.get(_OFFSET_ORIGINAL)
        if not text:
            return None, None
        taken = datetime.strptime(str(text).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
        if offset:
            aware = datetime.fromisoformat(f"{taken.isoformat()}{str(offset).strip()}")
            return aware.isoformat(), aware.astimezone(local_tz).date()
        return taken.isoformat(), taken.date()
    except (ValueError, TypeError, KeyError, *_DECODE_ERRORS):
        return None, None


def _gps(exif) -> tuple[float | None, float | None]:
    """Decimal degrees from the EXIF GPS block, if present and sane."""
    if exif is None:
        return None, None
    try:
        gps = exif.get_ifd(_GPS_IFD)
        if not gps or 2 not in gps or 4 not in gps:
            return None, None
        lat = _degrees(gps[2]) * (-1 if str(gps.get(1, "N")).upper().startswith("S") else 1)
        lon = _degrees(gps[4]) * (-1 if str(gps.get(3, "E")).upper().startswith("W") else 1)
    except (ValueError, TypeError, ZeroDivisionError, KeyError, *_DECODE_ERRORS):
        return None, None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    return round(lat, 7), round(lon, 7)


def _degrees(dms) -> float:
    degrees, minutes, seconds = (float(part) for part in dms)
    return degrees + minutes / 60 + seconds / 3600
