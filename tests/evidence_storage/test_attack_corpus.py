"""The attack corpus: every file is refused with a 4xx and a clear message in Chinese and English, through the
raw-body and the multipart paths, on the folder store and on S3, and nothing of it is stored."""

from __future__ import annotations

import io
import re
import struct
import zlib
from functools import cache

import pytest
from PIL import Image

from tests.evidence_storage import media
from tests.helpers import PDF_BYTES

HAN = re.compile(r"[\u4e00-\u9fff]")
PE_EXECUTABLE = (
    b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48) + b"PE\x00\x00" + bytes(2000)
)
ELF_EXECUTABLE = b"\x7fELF\x02\x01\x01\x00" + bytes(2000)
HTML_SCRIPT = b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)><script>fetch('/evidence')</script></body></html>"
SVG_SCRIPT = (
    b'<?xml version="1.0" encoding="UTF-8"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<script type="text/javascript">alert(document.cookie)</script><rect width="10" height="10"/></svg>'
)


@cache
def _flood(side: int) -> bytes:
    """A tiny PNG that declares side x side pixels (a 1-bit image compresses to almost nothing)."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    return out.getvalue()


@cache
def _jpeg() -> bytes:
    return media.photo(3)


@cache
def _bomb() -> bytes:
    return media.docx(bomb_mib=100)


def _pdf(*objects: bytes) -> bytes:
    """A small PDF whose catalog and further objects are given raw."""
    body = b"".join(
        b"%d 0 obj\n%s\nendobj\n" % (number, text) for number, text in enumerate(objects, start=1)
    )
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


def _pdf_with_compressed_javascript() -> bytes:
    """The JavaScript action sits in a Flate-compressed object stream, invisible to a plain byte scan."""
    hidden = zlib.compress(b"2 0 << /S /JavaScript /JS (app.alert(1)) >>")
    stream = b"<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream" % (
        len(hidden),
        hidden,
    )
    return _pdf(b"<< /Type /Catalog /OpenAction 2 0 R >>", stream)


def _mp4_with(*top: bytes) -> bytes:
    return media.ftyp() + b"".join(top)


def corpus() -> list[tuple]:
    """(case, body maker, filename, declared Content-Type, status, code); bodies are made when a test runs."""
    return [
        (
            "exe renamed .jpg",
            lambda: PE_EXECUTABLE,
            "会议照片.jpg",
            "image/jpeg",
            415,
            "unsupported_media_type",
        ),
        ("elf renamed .mp4", lambda: ELF_EXECUTABLE, "video.mp4", "video/mp4", 415, "unsupported_media_type"),
        ("html with script", lambda: HTML_SCRIPT, "photo.jpg", "image/jpeg", 415, "unsupported_media_type"),
        ("svg with script", lambda: SVG_SCRIPT, "banner.svg", "image/svg+xml", 415, "unsupported_media_type"),
        ("zip bomb renamed .docx", _bomb, "总结.docx", "application/octet-stream", 422, "zip_bomb"),
        (
            "macro document",
            lambda: media.docx(macro=True),
            "总结.docx",
            "application/octet-stream",
            415,
            "macros_not_allowed",
        ),
        (
            "plain zip renamed .docx",
            media.plain_zip,
            "总结.docx",
            "application/octet-stream",
            415,
            "unsupported_media_type",
        ),
        (
            "truncated jpeg",
            lambda: _jpeg()[: len(_jpeg()) * 2 // 3],
            "cut.jpg",
            "image/jpeg",
            422,
            "damaged_file",
        ),
        ("truncated pdf", lambda: PDF_BYTES[:-8], "report.pdf", "application/pdf", 422, "damaged_file"),
        (
            "pixel flood (over our limit)",
            lambda: _flood(9000),
            "flood.png",
            "image/png",
            422,
            "too_many_pixels",
        ),
        (
            "pixel flood (decompression bomb)",
            lambda: _flood(20000),
            "bomb.png",
            "image/png",
            422,
            "too_many_pixels",
        ),
        ("path traversal", _jpeg, "../../etc/passwd.jpg", "image/jpeg", 400, "invalid_filename"),
        ("windows path traversal", _jpeg, "..\\..\\windows\\win.ini", "image/jpeg", 400, "invalid_filename"),
        ("absolute path", _jpeg, "/etc/cron.d/evil.jpg", "image/jpeg", 400, "invalid_filename"),
        ("drive path", _jpeg, "C:evil.jpg", "image/jpeg", 400, "invalid_filename"),
        ("hidden extension (bidi)", _jpeg, "photo\u202egpj.exe", "image/jpeg", 400, "invalid_filename"),
        ("control characters", _jpeg, "photo\x00.jpg", "image/jpeg", 400, "invalid_filename"),
        ("empty file", lambda: b"", "empty.jpg", "image/jpeg", 400, "empty_file"),
        ("lying content-type", lambda: HTML_SCRIPT, "logo.png", "image/png", 415, "unsupported_media_type"),
        (
            "jpeg with a zip appended (polyglot)",
            lambda: _jpeg() + media.plain_zip(),
            "合影.jpg",
            "image/jpeg",
            422,
            "trailing_data",
        ),
        (
            "png with a script appended",
            lambda: media.photo(4, fmt="PNG") + HTML_SCRIPT,
            "横幅.png",
            "image/png",
            422,
            "trailing_data",
        ),
        (
            "webp with a zip appended",
            lambda: media.photo(5, fmt="WEBP") + media.plain_zip(),
            "a.webp",
            "image/webp",
            422,
            "trailing_data",
        ),
        (
            "mp4 box running past the end",
            lambda: _mp4_with(media.moov(), struct.pack(">I4s", 0xFFFFFFF0, b"mdat") + bytes(64)),
            "v.mp4",
            "video/mp4",
            422,
            "damaged_file",
        ),
        (
            "mp4 box of size 3",
            lambda: _mp4_with(media.moov(), struct.pack(">I4s", 3, b"free") + bytes(64)),
            "v.mp4",
            "video/mp4",
            422,
            "damaged_file",
        ),
        (
            "mp4 64-bit size 2^63",
            lambda: _mp4_with(media.moov(), struct.pack(">I4sQ", 1, b"mdat", 2**63) + bytes(64)),
            "v.mp4",
            "video/mp4",
            422,
            "damaged_file",
        ),
        (
            "mp4 nested trak overflowing its moov",
            lambda: _mp4_with(
                media.box(b"moov", struct.pack(">I4s", 4000, b"trak") + bytes(32)),
                media.box(b"mdat", bytes(4096)),
            ),
            "v.mp4",
            "video/mp4",
            422,
            "damaged_file",
        ),
        (
            "mp4 without moov (unplayable)",
            lambda: _mp4_with(media.box(b"mdat", bytes(4096))),
            "v.mp4",
            "video/mp4",
            422,
            "unplayable_video",
        ),
        (
            "pdf with OpenAction JavaScript",
            lambda: _pdf(b"<< /Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>"),
            "通知.pdf",
            "application/pdf",
            422,
            "pdf_active_content",
        ),
        (
            "pdf with a launch action",
            lambda: _pdf(b"<< /Type /Catalog /OpenAction << /S /Launch /F (cmd.exe) >> >>"),
            "通知.pdf",
            "application/pdf",
            422,
            "pdf_active_content",
        ),
        (
            "pdf with an escaped JavaScript name",
            lambda: _pdf(b"<< /Type /Catalog /OpenAction << /S /J#61vaScript /J#53 (x) >> >>"),
            "通知.pdf",
            "application/pdf",
            422,
            "pdf_active_content",
        ),
        (
            "pdf with JavaScript in a compressed object stream",
            _pdf_with_compressed_javascript,
            "通知.pdf",
            "application/pdf",
            422,
            "pdf_active_content",
        ),
        (
            "avif is not on the allow-list",
            lambda: media.ftyp(b"avif", (b"avif", b"mif1")) + bytes(500),
            "a.heic",
            "image/heic",
            415,
            "unsupported_media_type",
        ),
    ]


CASES = corpus()


def _assert_refused(world, response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()
    assert detail["code"] == code
    assert HAN.search(detail["message"]), detail  # Chinese for the user
    assert detail["message_en"] and not HAN.search(detail["message_en"]), detail  # and English
    assert world.stored_keys() == []
    assert world.evidence_count() == 0


@pytest.mark.parametrize("store", ["folder", "s3"])
@pytest.mark.parametrize(
    "case, body, filename, content_type, status, code", CASES, ids=[case[0] for case in CASES]
)
def test_raw_body_attack_is_refused_and_nothing_is_stored(
    make_world, store, case, body, filename, content_type, status, code
):
    world = make_world(store)
    submission = world.submission()
    response = world.upload(submission["id"], body(), filename, content_type=content_type)
    _assert_refused(world, response, status, code)
    rejected = world.events("evidence.rejected")
    assert [event["reason_code"] for event in rejected] == [code]
    if store == "s3" and world.s3.client().bucket_exists(bucket_name=world.s3.bucket):
        assert world.s3.pending_uploads() == []


# httpx percent-encodes a NUL in a multipart filename, so that case cannot reach the server through a form.
FORM_CASES = [case for case in CASES if case[0] != "control characters"]


@pytest.mark.parametrize(
    "case, body, filename, content_type, status, code", FORM_CASES, ids=[case[0] for case in FORM_CASES]
)
def test_multipart_attack_refuses_the_whole_batch(world, case, body, filename, content_type, status, code):
    submission = world.submission()
    files = [
        ("files", ("good.jpg", media.photo(9), "image/jpeg")),
        ("files", (filename, body(), content_type)),
    ]
    response = world.client.post(f"/submissions/{submission['id']}/evidence", files=files)
    _assert_refused(world, response, status, code)


def test_declared_size_limits_per_kind_come_from_settings(make_world):
    world = make_world(evidence_photo_max_bytes=20_000, evidence_document_max_bytes=1_000_000)
    submission = world.submission()
    big_photo = media.photo(4, size=(800, 600), quality=95)
    assert len(big_photo) > 20_000
    response = world.upload(submission["id"], big_photo, "big.jpg")
    _assert_refused(world, response, 413, "too_large")
    assert response.json()["message"].startswith("JPEG 文件超过大小上限")
    ok = world.upload(submission["id"], media.xlsx(), "表格.xlsx")  # documents have their own, larger limit
    assert ok.status_code == 201, ok.text


def test_a_declared_content_length_over_the_limit_is_refused_before_any_byte_is_read(make_world):
    world = make_world(evidence_max_bytes=1_000_000)
    submission = world.submission()
    # The client declares 100 GB and sends nothing: the answer must come at once, not after a read timeout.
    response = world.client.post(
        f"/submissions/{submission['id']}/evidence",
        params={"filename": "huge.mp4"},
        headers={"Content-Type": "video/mp4", "Content-Length": "100000000000"},
        content=b"",
    )
    _assert_refused(world, response, 413, "too_large")


def test_a_plain_photo_a_padded_photo_and_a_good_video_and_pdf_are_still_accepted(world):
    submission = world.submission()
    for body, name in (
        (_jpeg(), "a.jpg"),
        (media.photo(6) + bytes(64), "padded.jpg"),
        (media.photo(7, fmt="PNG"), "b.png"),
        (media.photo(8, fmt="WEBP"), "c.webp"),
        (media.mp4(), "d.mp4"),
        (media.mp4(moov_first=False), "e.mp4"),
        (_pdf(b"<< /Type /Catalog /OpenAction [3 0 R /Fit] >>"), "f.pdf"),
    ):
        response = world.upload(submission["id"], body, name)
        assert response.status_code == 201, (name, response.text)
