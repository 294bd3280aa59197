"""Sample evidence made on the spot (nothing downloaded, nothing binary committed): photos drawn with Pillow,
video clips encoded by ffmpeg (the system's or imageio-ffmpeg's), Word documents written with python-docx.
Used by `make demo`, the tests and the benchmarks."""

from __future__ import annotations

import functools
import io
import random
import struct
import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from services.evidence_storage.video import ffmpeg_exe

VIDEO_ENCODERS = {"h264": "libx264", "hevc": "libx265", "mpeg4": "mpeg4"}


@functools.lru_cache(maxsize=32)
def video_clip(
    seconds: float = 2.0,
    size: tuple[int, int] = (320, 240),
    *,
    codec: str = "h264",
    container: str = "mp4",
    audio: bool = True,
    faststart: bool = True,
    created: str | None = "2020-03-14T08:30:00Z",
    pattern: str = "testsrc2",
) -> bytes:
    """A short real video (moving test pattern, a tone) encoded by ffmpeg; created goes into the movie header."""
    ffmpeg = ffmpeg_exe()
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is needed to make sample videos (pip install imageio-ffmpeg)")
    width, height = size
    command = [
        ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"{pattern}=duration={seconds}:size={width}x{height}:rate=12",
    ]
    if audio:
        command += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}",
            "-c:a",
            "aac",
            "-b:a",
            "48k",
        ]
    command += ["-c:v", VIDEO_ENCODERS[codec], "-pix_fmt", "yuv420p", "-shortest"]
    if codec == "hevc":
        command += ["-tag:v", "hvc1", "-x265-params", "log-level=error"]
    if created:
        command += ["-metadata", f"creation_time={created}"]
    if faststart:
        command += ["-movflags", "+faststart"]
    with tempfile.TemporaryDirectory(prefix="sample-video-") as work:
        target = Path(work) / f"clip.{container}"
        subprocess.run([*command, str(target)], check=True, capture_output=True, timeout=120)
        return target.read_bytes()


def free_box(payload_size: int) -> bytes:
    """The header of an ISO-BMFF 'free' box of that many payload bytes (players skip it): pads a clip to any size."""
    if payload_size + 8 <= 0xFFFFFFFF:
        return struct.pack(">I4s", 8 + payload_size, b"free")
    return struct.pack(">I4sQ", 1, b"free", 16 + payload_size)


def padded_clip(total_size: int, **clip) -> bytes:
    """A real clip followed by a 'free' box of zeros, total_size bytes in all (a big but playable video)."""
    data = video_clip(**clip)
    head = free_box(max(total_size - len(data) - 8, 0))
    return data + head + bytes(max(total_size - len(data) - len(head), 0))


def scene(seed: int, size: tuple[int, int] = (800, 600), caption: str | None = None) -> Image.Image:
    """A made-up 'photo': a sky gradient, coloured shapes (a crowd, a banner) and fine noise, different per seed."""
    rng = random.Random(seed)
    width, height = size
    top = tuple(rng.randrange(120, 256) for _ in range(3))
    bottom = tuple(rng.randrange(0, 140) for _ in range(3))
    image = ImageOps.colorize(Image.linear_gradient("L").resize(size), top, bottom)
    draw = ImageDraw.Draw(image)
    banner = (rng.randrange(150, 256), rng.randrange(0, 60), rng.randrange(0, 60))
    draw.rectangle([width // 8, height // 6, width * 7 // 8, height // 6 + height // 8], fill=banner)
    for _ in range(rng.randrange(12, 30)):
        x, y = rng.randrange(width), rng.randrange(height // 2, height)
        r = rng.randrange(6, max(7, width // 30))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    if caption:
        draw.text((width // 8 + 10, height // 6 + 10), caption, fill=(255, 255, 255))
    noise = Image.frombytes("L", size, rng.randbytes(width * height)).convert("RGB")
    return Image.blend(image, noise, 0.05)


def photo(
    seed: int,
    *,
    size: tuple[int, int] = (800, 600),
    taken: str | None = None,
    caption: str | None = None,
    quality: int = 85,
) -> bytes:
    """A JPEG of scene(seed); taken like '2020:03:15 10:30:00' becomes EXIF DateTimeOriginal."""
    exif = Image.Exif()
    if taken:
        exif.get_ifd(0x8769)[36867] = taken
    out = io.BytesIO()
    scene(seed, size, caption).save(out, "JPEG", quality=quality, exif=exif)
    return out.getvalue()


def word_document(title: str, paragraphs: list[str]) -> bytes:
    """A .docx with a title and paragraphs (python-docx)."""
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
