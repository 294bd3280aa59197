"""The attack corpus: every file is refused with a 4xx and a clear message in Chinese and English, through the
raw-body and the multipart paths, on the folder store and on S3, and nothing of it is stored."""
from __future__ import annotations

import io
import re
from functools import cache

import pytest
from PIL import Image

from tests.evidence_storage import media
from tests.helpers import PDF_BYTES

HAN = re.compile(r"[\u4e00-\u9fff]")
PE_EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48) + b"PE\x00\x00" + bytes(2000)
ELF_EXECUTABLE = b"\x7fELF\x02\x01\x01\x00" + bytes(2000)
HTML_SCRIPT = b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)><script>fetch('/evidence')</script></body></html>"
SVG_SCRIPT = (b'<?xml version="1.0" encoding="UTF-8"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
              b'<script type="text/javascript">alert(document.cookie)</script><rect width="10" height="10"/></svg>')


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


def corpus() -> list[tuple]:
    """(case, body maker, filename, declared Content-Type, status, code); bodies are made when a test runs."""
    return [
        ("exe renamed .jpg", lambda: PE_EXECUTABLE, "会议照片.jpg", "image/jpeg", 415, "unsupported_media_type"),
        ("elf renamed .mp4", lambda: ELF_EXECUTABLE, "video.mp4", "video/mp4", 415, "unsupported_media_type"),
        ("html with script", lambda: HTML_SCRIPT, "photo.jpg", "image/jpeg", 415, "unsupported_media_type"),
        ("svg with script", lambda: SVG_SCRIPT, "banner.svg", "image/svg+xml", 415, "unsupported_media_type"),
        ("zip bomb renamed .docx", _bomb, "总结.docx", "application/octet-stream", 422, "zip_bomb"),
        ("macro document", lambda: media.docx(macro=True), "总结.docx", "application/octet-stream", 415, "macros_not_allowed"),
        ("plain zip renamed .docx", media.plain_zip, "总结.docx", "application/octet-stream", 415, "unsupported_media_type"),
        ("truncated jpeg", lambda: _jpeg()[: len(_jpeg()) * 2 // 3], "cut.jpg", "image/jpeg", 422, "damaged_file"),
        ("truncated pdf", lambda: PDF_BYTES[:-8], "report.pdf", "application/pdf", 422, "damaged_file"),
        ("pixel flood (over our limit)", lambda: _flood(9000), "flood.png", "image/png", 422, "too_many_pixels"),
        ("pixel flood (decompression bomb)", lambda: _flood(20000), "bomb.png", "image/png", 422, "too_many_pixels"),
        ("path traversal", _jpeg, "../../etc/passwd.jpg", "image/jpeg", 400, "invalid_filename"),
        ("windows path traversal", _jpeg, "..\\..\\windows\\win.ini", "image/jpeg", 400, "invalid_filename"),
        ("absolute path", _jpeg, "/etc/cron.d/evil.jpg", "image/jpeg", 400, "invalid_filename"),
        ("drive path", _jpeg, "C:evil.jpg", "image/jpeg", 400, "invalid_filename"),
        ("hidden extension (bidi)", _jpeg, "photo\u202egpj.exe", "image/jpeg", 400, "invalid_filename"),
        ("control characters", _jpeg, "photo\x00.jpg", "image/jpeg", 400, "invalid_filename"),
        ("empty file", lambda: b"", "empty.jpg", "image/jpeg", 400, "empty_file"),
        ("lying content-type", lambda: HTML_SCRIPT, "logo.png", "image/png", 415, "unsupported_media_type"),
        ("avif is not on the allow-list", lambda: media.ftyp(b"avif", (b"avif", b"mif1")) + bytes(500), "a.heic", "image/heic",
         415, "unsupported_media_type"),
    ]


CASES = corpus()


def _assert_refused(world, response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail["code"] == code
    assert HAN.search(detail["message"]), detail  # Chinese for the user
    assert detail["message_en"] and not HAN.search(detail["message_en"]), detail  # and English
    assert world.stored_keys() == []
    assert world.evidence_count() == 0


@pytest.mark.parametrize("store", ["folder", "s3"])
@pytest.mark.parametrize("case, body, filename, content_type, status, code", CASES, ids=[case[0] for case in CASES])
def test_raw_body_attack_is_refused_and_nothing_is_stored(make_world, store, case, body, filename, content_type, status, code):
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


@pytest.mark.parametrize("case, body, filename, content_type, status, code", FORM_CASES, ids=[case[0] for case in FORM_CASES])
def test_multipart_attack_refuses_the_whole_batch(world, case, body, filename, content_type, status, code):
    submission = world.submission()
    files = [("files", ("good.jpg", media.photo(9), "image/jpeg")), ("files", (filename, body(), content_type))]
    response = world.client.post(f"/submissions/{submission['id']}/evidence", files=files)
    _assert_refused(world, response, status, code)


def test_declared_size_limits_per_kind_come_from_settings(make_world):
    world = make_world(evidence_photo_max_bytes=20_000, evidence_document_max_bytes=1_000_000)
    submission = world.submission()
    big_photo = media.photo(4, size=(800, 600), quality=95)
    assert len(big_photo) > 20_000
    response = world.upload(submission["id"], big_photo, "big.jpg")
    _assert_refused(world, response, 413, "too_large")
    assert response.json()["detail"]["message"].startswith("JPEG 文件超过大小上限")
    ok = world.upload(submission["id"], media.xlsx(), "表格.xlsx")  # documents have their own, larger limit
    assert ok.status_code == 201, ok.text
