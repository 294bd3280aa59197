"""Real test media made on the fly (nothing binary is committed): photos with EXIF, HEIC, MP4 box layouts,
DOCX/XLSX packages, and large deterministic video streams."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zipfile
from collections.abc import Iterator

from PIL import Image, ImageDraw, ImageOps

from deploy.samples import free_box, video_clip

MIB = 1024 * 1024


def scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A synthetic 'photo': a gradient sky, coloured shapes and fine noise, different for every seed."""
    rng = random.Random(seed)
    width, height = size
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    image = ImageOps.colorize(Image.linear_gradient("L").resize(size), top, bottom)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randrange(6, 14)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(2, max(3, width // 2)), y0 + rng.randrange(2, max(3, height // 2))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    noise = Image.frombytes("L", size, rng.randbytes(width * height)).convert("RGB")
    return Image.blend(image, noise, 0.06)


def photo(
    seed: int = 1,
    *,
    size: tuple[int, int] = (640, 480),
    fmt: str = "JPEG",
    quality: int = 90,
    taken: str | None = None,
    offset: str | None = None,
    gps: tuple[float, float] | None = None,
) -> bytes:
    """A photo file; taken like '2020:03:15 10:30:00' goes into EXIF DateTimeOriginal, gps as (lat, lon)."""
    image = scene(seed, size)
    exif = Image.Exif()
    if taken:
        details = exif.get_ifd(0x8769)
        details[36867] = taken
        if offset:
            details[36881] = offset
    if gps:
        block = exif.get_ifd(0x8825)
        lat, lon = gps
        block[1], block[2] = ("N" if lat >= 0 else "S"), _dms(abs(lat))
        block[3], block[4] = ("E" if lon >= 0 else "W"), _dms(abs(lon))
    out = io.BytesIO()
    if fmt == "HEIC":
        import pillow_heif

        pillow_heif.from_pillow(image).save(out, quality=60, exif=exif.tobytes() if (taken or gps) else None)
    elif fmt == "JPEG":
        image.save(out, "JPEG", quality=quality, exif=exif)
    else:
        image.save(out, fmt, exif=exif)
    return out.getvalue()


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
    return float(degrees), float(minutes), seconds


# --- MP4 ------------------------------------------------------------------------------------------------------


def box(kind: bytes, payload: bytes) -> bytes:
    """One ISO-BMFF box with a 32-bit size."""
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def ftyp(
    major: bytes = b"isom", compatible: tuple[bytes, ...] = (b"isom", b"iso2", b"avc1", b"mp41")
) -> bytes:
    """The file-type box that opens an MP4 (or MOV, with major b'qt  ')."""
    return box(b"ftyp", major + struct.pack(">I", 512) + b"".join(compatible))


def moov(
    *,
    timescale: int = 1000,
    duration: int = 83_250,
    width: int = 1920,
    height: int = 1080,
    created: int = 3_667_000_000,
    version: int = 0,
) -> bytes:
    """A movie box: mvhd (duration, creation time) and one video track (tkhd with frame size, hdlr 'vide')."""
    rest = struct.pack(">IH", 0x00010000, 0x0100) + bytes(10) + bytes(36) + bytes(24) + struct.pack(">I", 2)
    if version == 1:
        mvhd = b"\x01\x00\x00\x00" + struct.pack(">QQIQ", created, created, timescale, duration) + rest
    else:
        mvhd = b"\x00\x00\x00\x00" + struct.pack(">IIII", created, created, timescale, duration) + rest
    tkhd = (
        b"\x00\x00\x00\x03"
        + struct.pack(">IIIII", created, created, 1, 0, duration)
        + bytes(8)
        + bytes(8)
        + bytes(36)
        + struct.pack(">II", width << 16, height << 16)
    )
    hdlr = bytes(4) + bytes(4) + b"vide" + bytes(12) + b"VideoHandler\x00"
    sound = box(
        b"trak",
        box(b"tkhd", tkhd[:76] + bytes(8)) + box(b"mdia", box(b"hdlr", bytes(8) + b"soun" + bytes(13))),
    )
    video = box(b"trak", box(b"tkhd", tkhd) + box(b"mdia", box(b"mdhd", bytes(24)) + box(b"hdlr", hdlr)))
    return box(b"moov", box(b"mvhd", mvhd) + sound + video)


def mp4(extra: bytes = b"", *, moov_first: bool = True, **clip) -> bytes:
    """A real MP4 made by ffmpeg (moov before or after the media data), then extra bytes in a trailing 'free' box."""
    data = video_clip(faststart=moov_first, **clip)
    return data + free_box(len(extra)) + extra if extra else data


def box_mp4(
    media: bytes = b"\x00" * 4096, *, moov_first: bool = True, large_mdat: bool = False, **movie
) -> bytes:
    """An MP4 of boxes only (no decodable frame), for the box-header parser: ftyp, then moov and mdat in either
    order (mdat optionally with a 64-bit size)."""
    movie_box = moov(**movie)
    mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(media)) + media if large_mdat else box(b"mdat", media)
    return ftyp() + (movie_box + mdat if moov_first else mdat + movie_box)


class BigVideo:
    """A deterministic, playable MP4 of any size, generated 1 MiB at a time: a real clip (moov after the media data,
    as cameras write), then a 'free' box of random bytes up to the size."""

    def __init__(self, size: int, seed: int = 2020) -> None:
        self.size, self.seed = size, seed
        self._head = video_clip(2.0, (320, 240), faststart=False)
        self._media = size - len(self._head) - 8
        digest = hashlib.sha256()
        for piece in self._pieces():
            digest.update(piece)
        self.sha256 = digest.hexdigest()

    def chunks(self, start: int = 0, stop: int | None = None, chunk: int = MIB) -> Iterator[bytes]:
        """The bytes from start to stop, in pieces of at most chunk bytes."""
        stop = self.size if stop is None else stop
        position = 0
        for piece in self._pieces():
            end = position + len(piece)
            low, high = max(position, start), min(end, stop)
            if low < high:
                view = piece[low - position : high - position]
                for offset in range(0, len(view), chunk):
                    yield view[offset : offset + chunk]
            position = end
            if position >= stop:
                return

    def _pieces(self) -> Iterator[bytes]:
        rng = random.Random(self.seed)
        yield self._head + free_box(self._media)
        left = self._media
        while left:
            take = min(MIB, left)
            yield rng.randbytes(take)
            left -= take


# --- documents ----------------------------------------------------------------------------------------------

_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    b'relationships/officeDocument" Target="%s"/></Relationships>'
)
_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/'
    b'2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/><Override PartName="/%s" ContentType="%s"/></Types>'
)
_WORD_MAIN = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_WORD_MACRO = b"application/vnd.ms-word.document.macroEnabled.main+xml"
_SHEET_MAIN = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"


def docx(text: str = "宣传月工作总结", *, macro: bool = False, bomb_mib: int = 0) -> bytes:
    """A minimal Word package; macro=True makes it a .docm, bomb_mib adds a part of that many MiB of zeros."""
    body = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
        f'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>'
    ).encode()
    parts = {"word/document.xml": body}
    if macro:
        parts["word/vbaProject.bin"] = b"\xd0\xcf\x11\xe0" + bytes(512)
    return _package("word/document.xml", _WORD_MACRO if macro else _WORD_MAIN, parts, bomb_mib=bomb_mib)


def xlsx() -> bytes:
    """A minimal Excel package."""
    workbook = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="http://schemas.openxmlformats.org/'
        b'spreadsheetml/2006/main"><sheets/></workbook>'
    )
    return _package("xl/workbook.xml", _SHEET_MAIN, {"xl/workbook.xml": workbook})


def plain_zip() -> bytes:
    """A ZIP archive that is no office document."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("readme.txt", "hello")
    return out.getvalue()


def _package(main: str, content_type: bytes, parts: dict[str, bytes], *, bomb_mib: int = 0) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _TYPES % (main.encode(), content_type))
        archive.writestr("_rels/.rels", _RELS % main.encode())
        for name, data in parts.items():
            archive.writestr(name, data)
        if bomb_mib:
            with archive.open("word/media/image1.bin", "w", force_zip64=True) as bomb:
                zeros = bytes(MIB)
                for _ in range(bomb_mib):
                    bomb.write(zeros)
    return out.getvalue()
