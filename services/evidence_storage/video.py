"""Video through ffmpeg: the system's ffmpeg where installed, else the binary shipped in the imageio-ffmpeg wheel.

probe() reads what the container says (duration, codecs, frame size) and decodes the first video frame, so a
file ffmpeg cannot play (an MP4 without its moov box, a codec it does not know) is refused at upload. poster()
takes a JPEG frame; render_web() makes an H.264/AAC MP4 for what browsers cannot play (HEVC, MOV, MPEG-4 part 2):
the evidence worker runs it after upload, and the original stays the proof.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 60
POSTER_TIMEOUT_S = 60
WEB_VIDEO_CODECS = frozenset({"h264"})
WEB_AUDIO_CODECS = frozenset({"aac", "mp3"})
log = logging.getLogger(__name__)

_DURATION = re.compile(r"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #0:\d+[^:]*: Video: (\w+)[^\n]*?, (\d{2,5})x(\d{2,5})")
_AUDIO = re.compile(r"Stream #0:\d+[^:]*: Audio: (\w+)")
_FRAMES = re.compile(r"frame=\s*(\d+)")


class VideoUndecodable(Exception):
    """ffmpeg cannot decode a video frame from the file; the reason is ffmpeg's own last words."""


@dataclass(frozen=True)
class VideoProbe:
    """What ffmpeg found in a video: its first stream's codec and frame size, audio codec, duration."""

    video_codec: str
    width: int | None
    height: int | None
    duration_s: float | None
    audio_codec: str | None = None

    def web_playable(self, media_type: str) -> bool:
        """Whether browsers play the file as it is: H.264 (with AAC/MP3 or no sound) in an MP4 container."""
        return (
            media_type == "video/mp4"
            and self.video_codec in WEB_VIDEO_CODECS
            and (self.audio_codec is None or self.audio_codec in WEB_AUDIO_CODECS)
        )


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str | None:
    """Path of ffmpeg: the system's if on PATH, else imageio-ffmpeg's bundled binary; None if neither."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        log.warning("no ffmpeg: videos get no probe, poster or rendition (%s)", exc)
        return None


def probe(ffmpeg: str, source: str) -> VideoProbe:
    """Decode the first video frame of source (a path or URL) and read the stream facts; raises VideoUndecodable."""
    command = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-v",
        "info",
        "-i",
        source,
        "-map",
        "0:v:0",
        "-frames:v",
        "1",
        "-f",
        "null",
        "-",
    ]
    try:
        done = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise VideoUndecodable(f"ffmpeg found no frame within {PROBE_TIMEOUT_S} s") from None
    text = done.stderr.decode("utf-8", "replace")
    found = text.split("Stream mapping:", 1)[0]  # the input's description; the null output's streams follow
    video = _VIDEO.search(found)
    frames = [int(n) for n in _FRAMES.findall(text)]
    if done.returncode != 0 or video is None or not frames or frames[-1] < 1:
        raise VideoUndecodable(_last_words(text) or "no decodable video stream")
    audio = _AUDIO.search(found)
    return VideoProbe(
        video_codec=video.group(1),
        width=int(video.group(2)),
        height=int(video.group(3)),
        duration_s=_duration(found),
        audio_codec=audio.group(1) if audio else None,
    )


def poster(ffmpeg: str, source: str, target: Path, *, width: int) -> bytes | None:
    """A JPEG frame from about one second in (or the first frame of a shorter clip), width pixels wide."""
    for seek in ("1", "0"):
        command = [
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-ss",
            seek,
            "-i",
            source,
            "-frames:v",
            "1",
            "-vf",
            f"scale={width}:-2",
            str(target),
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=POSTER_TIMEOUT_S)
        except (subprocess.SubprocessError, OSError) as exc:
            log.info("ffmpeg found no poster frame at %ss: %s", seek, exc)
            continue
        if target.is_file() and target.stat().st_size:
            return target.read_bytes()
    return None


def render_web(ffmpeg: str, source: str, target: Path, *, timeout_s: float) -> None:
    """Re-encode source as a web-playable MP4 (H.264 yuv420p, AAC, moov first) at target; raises on failure."""
    command = [
        ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-i",
        source,
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-pix_fmt",
        "yuv420p",
        "-vf",
        "scale=trunc(iw/2)*2:trunc(ih/2)*2",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(target),
    ]
    done = subprocess.run(command, capture_output=True, timeout=timeout_s)
    if done.returncode != 0 or not target.is_file() or not target.stat().st_size:
        raise VideoUndecodable(
            _last_words(done.stderr.decode("utf-8", "replace")) or "ffmpeg made no rendition"
        )


def _duration(text: str) -> float | None:
    found = _DURATION.search(text)
    if not found:
        return None
    hours, minutes, seconds = found.groups()
    return round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 3)


def _last_words(text: str) -> str:
    """ffmpeg's last error line, without the path of the temporary file it read."""
    lines = [
        line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("frame=")
    ]
    return re.sub(r"/[^\s:]*", "<file>", lines[-1])[:300] if lines else ""
