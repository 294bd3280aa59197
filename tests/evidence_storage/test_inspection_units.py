"""The inspection parts on their own: sniffing, the MP4 box walker, office packages, filenames, ranged files."""

from __future__ import annotations

import io
import struct

import pytest

from services.evidence_storage import refusals
from services.evidence_storage.documents import examine_office, examine_pdf
from services.evidence_storage.handlers import clean_filename
from services.evidence_storage.mp4 import boxes, examine_video
from services.evidence_storage.sniff import (
    DOCX,
    HEIC,
    HEIF,
    JPEG,
    MOV,
    MP4,
    OFFICE_ZIP,
    PDF,
    PNG,
    WEBP,
    XLSX,
    sniff,
)
from services.evidence_storage.streams import BlobFile
from tests.evidence_storage import media
from tests.helpers import PDF_BYTES


def reader(data: bytes):
    return lambda offset, length: data[offset : offset + length]


@pytest.mark.parametrize(
    "head, kind",
    [
        (b"\xff\xd8\xff\xe1", JPEG),
        (b"\x89PNG\r\n\x1a\n", PNG),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", WEBP),
        (b"%PDF-1.7", PDF),
        (b"PK\x03\x04", OFFICE_ZIP),
        (media.ftyp(b"heic", (b"mif1", b"heic")), HEIC),
        (media.ftyp(b"mif1", (b"mif1",)), HEIF),
        (media.ftyp(b"qt  ", (b"qt  ",)), MOV),
        (media.ftyp(b"mp42", (b"mp42", b"isom")), MP4),
        (b"\x00\x00\x00\x08wide", MOV),
        (media.ftyp(b"avif", (b"avif", b"mif1")), None),
        (media.ftyp(b"crx ", (b"crx ",)), None),
        (b"GIF89a", None),
        (b"<svg", None),
        (b"MZ", None),
        (b"", None),
    ],
)
def test_sniff_by_leading_bytes(head, kind):
    assert sniff(head) is kind


def test_box_walker_stops_at_malformed_or_lying_boxes():
    data = (
        media.box(b"ftyp", b"isom") + struct.pack(">I4s", 1_000_000, b"mdat") + bytes(100)
    )  # mdat claims more than exists
    assert [box.type for box in boxes(reader(data), 0, len(data))] == [b"ftyp"]
    tiny = struct.pack(">I4s", 4, b"free")  # a size smaller than its own header
    assert list(boxes(reader(tiny), 0, len(tiny))) == []
    assert examine_video(reader(data), len(data)).duration_s is None


def test_mvhd_with_unknown_duration_and_no_creation_time():
    data = media.box_mp4(bytes(100), duration=0xFFFFFFFF, created=0)
    facts = examine_video(reader(data), len(data))
    assert facts.duration_s is None and facts.created_at is None and facts.width == 1920
    assert "no usable duration" in facts.note


def test_office_packages_are_classified_without_extraction():
    assert examine_office(io.BytesIO(media.docx())) is DOCX
    assert examine_office(io.BytesIO(media.xlsx())) is XLSX
    for data, code in (
        (media.plain_zip(), "unsupported_media_type"),
        (media.docx(macro=True), "macros_not_allowed"),
        (media.docx(bomb_mib=20), "zip_bomb"),
        (b"PK\x03\x04" + bytes(100), "damaged_file"),
    ):
        with pytest.raises(refusals.Refusal) as refused:
            examine_office(io.BytesIO(data))
        assert refused.value.code == code


def test_pdf_needs_its_end_marker():
    assert examine_pdf(reader(PDF_BYTES), len(PDF_BYTES)) is PDF
    with pytest.raises(refusals.Refusal):
        examine_pdf(reader(PDF_BYTES[:-7]), len(PDF_BYTES) - 7)


@pytest.mark.parametrize(
    "given, shown",
    [
        ("会议照片.jpg", "会议照片.jpg"),
        (None, "unnamed"),
        ("", "unnamed"),
        ("  a   b .jpg ", "a b .jpg"),
        (".hidden.jpg", "hidden.jpg"),
        ("photo\u200b.jpg", "photo.jpg"),
        ("x" * 300 + ".jpeg", "x" * 195 + ".jpeg"),
    ],
)
def test_display_filenames_are_tidied(given, shown):
    assert clean_filename(given) == shown


@pytest.mark.parametrize(
    "name", ["../a.jpg", "a/b.jpg", "a\\b.jpg", "C:a.jpg", "..", "a\x07.jpg", "a\u202egpj.exe"]
)
def test_path_and_control_filenames_are_refused(name):
    with pytest.raises(refusals.Refusal) as refused:
        clean_filename(name)
    assert refused.value.code == "invalid_filename" and refused.value.status == 400


def test_blob_file_seeks_reads_and_caches_blocks():
    data = bytes(range(256)) * 1000
    calls = []

    def read(offset, length):
        calls.append(offset)
        return data[offset : offset + length]

    file = BlobFile(read, len(data))
    assert file.read(10) == data[:10] and file.tell() == 10
    file.seek(-5, 2)
    assert file.read() == data[-5:]
    assert file.pread(70_000, 100) == data[70_000:70_100] and file.tell() == len(data)
    file.seek(3)
    assert file.read(2) == data[3:5]
    assert calls == [0, 196_608, 65_536]  # each 64 KiB block fetched once
