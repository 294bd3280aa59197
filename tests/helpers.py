"""Small helpers for tests: waiting on eventual effects, sample files, parsing e-mail."""

from __future__ import annotations

import email
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Minimal real files: evidence_storage sniffs the leading bytes and decodes photos whole (a 16x16 gradient).
JPEG_BYTES = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e1d1a1c1c20"
    "242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffdb0043010909090c0b0c180d0d1832211c21323232323232323232323232"
    "3232323232323232323232323232323232323232323232323232323232323232323232323232ffc00011080010001003012200021101031101ffc40015"
    "00010100000000000000000000000000000607ffc4001810000203000000000000000000000000000004052231ffc4001501010100000000000000000000"
    "000000000103ffc4001a110002020300000000000000000000000000050406213161ffda000c03010002110311003f009fa305941321059412a1059413"
    "a30594292daf42beef593fffd9"
)
PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000010000000100802000000909168360000001d4944415478da63646068106060201eb1300830900446358c"
    "6a183a1a001e0a029e8c6927060000000049454e44ae426082"
)
# ftyp, an (empty) movie box and the media data: the smallest MP4 whose boxes nest and that has a moov.
MP4_BYTES = (
    b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    + b"\x00\x00\x00\x08moov"
    + b"\x00\x00\x03\xf0mdat"
    + bytes(1000)
)


def mp4_bytes() -> bytes:
    """A one-second H.264/AAC MP4 made by ffmpeg (evidence_storage refuses a video ffmpeg cannot decode)."""
    from deploy.samples import video_clip

    return video_clip(1.0, (160, 120))


PDF_BYTES = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def wait_until(
    predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll until predicate returns something truthy; fail with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_eml(path: Path) -> EmailMessage:
    """Parse an .eml file with the modern policy (decoded headers)."""
    return email.message_from_bytes(path.read_bytes(), policy=default)


def mail_parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies of a multipart/alternative message."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def create_tables(db, metadata) -> None:
    """Create ad-hoc test tables in a Database (services get theirs from migrations; port tests need none)."""
    from sqlalchemy import text

    with db.engine.begin() as conn:
        if not db.is_sqlite:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
        metadata.create_all(conn)
