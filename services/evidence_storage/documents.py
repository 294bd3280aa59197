"""Document inspection: DOCX/XLSX judged from the ZIP central directory (never extracted), PDF from its ends."""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Callable
from typing import IO

from services.evidence_storage import refusals
from services.evidence_storage.sniff import DOCX, PDF, XLSX, MediaKind
from services.evidence_storage.streams import BlobFile

MAX_ENTRIES = 10_000
MAX_UNCOMPRESSED = 256 * 1024 * 1024
MAX_RATIO = 100  # uncompressed / compressed, for any part above RATIO_FLOOR
RATIO_FLOOR = 1024 * 1024
MAX_CONTENT_TYPES = 1024 * 1024
READ_PIECE = 4 * 1024 * 1024
MAX_INFLATED = 64 * 1024 * 1024  # object streams inflated per PDF, at most
_ACTIVE = re.compile(rb"/(JavaScript|JS|Launch)(?![A-Za-z0-9#])")
_ESCAPED_NAME = re.compile(rb"/[A-Za-z0-9]*#[0-9A-Fa-f]{2}[A-Za-z0-9#]*")
_OBJSTM = re.compile(rb"/Type\s*/ObjStm")
_MAIN_PARTS = {
    DOCX: (b"wordprocessingml.document.main+xml", "word/document.xml"),
    XLSX: (b"spreadsheetml.sheet.main+xml", "xl/workbook.xml"),
}


def examine_office(source: IO[bytes] | BlobFile) -> MediaKind:
    """DOCX or XLSX, from the central directory and [Content_Types].xml; raises a Refusal otherwise."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise refusals.damaged("DOCX/XLSX", str(exc)) from exc
    with archive:
        entries = archive.infolist()
        _check_expansion(entries)
        names = {entry.filename for entry in entries}
        content_types = _content_types(archive, names)
        if b"macroEnabled" in content_types or any(name.lower().endswith("vbaproject.bin") for name in names):
            raise refusals.macros()
        for kind, (content_type, part) in _MAIN_PARTS.items():
            if content_type in content_types and part in names:
                return kind
    raise refusals.not_office()


def _check_expansion(entries: list[zipfile.ZipInfo]) -> None:
    """Refuse zip bombs from the sizes the central directory declares."""
    if len(entries) > MAX_ENTRIES:
        raise refusals.zip_bomb(f"{len(entries)} parts (limit {MAX_ENTRIES})")
    total = sum(entry.file_size for entry in entries)
    if total > MAX_UNCOMPRESSED:
        raise refusals.zip_bomb(f"{total} bytes uncompressed (limit {MAX_UNCOMPRESSED})")
    for entry in entries:
        if entry.file_size > RATIO_FLOOR and entry.file_size > MAX_RATIO * max(entry.compress_size, 1):
            raise refusals.zip_bomb(
                f"part {entry.filename!r} expands {entry.file_size // max(entry.compress_size, 1)}-fold"
            )


def _content_types(archive: zipfile.ZipFile, names: set[str]) -> bytes:
    """The package's [Content_Types].xml, read with a cap (it is never parsed as XML)."""
    if "[Content_Types].xml" not in names:
        raise refusals.not_office()
    info = archive.getinfo("[Content_Types].xml")
    if info.file_size > MAX_CONTENT_TYPES:
        raise refusals.zip_bomb("oversized [Content_Types].xml")
    try:
        with archive.open(info) as handle:
            return handle.read(MAX_CONTENT_TYPES + 1)[:MAX_CONTENT_TYPES]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise refusals.damaged("DOCX/XLSX", str(exc)) from exc


def examine_pdf(read: Callable[[int, int], bytes], size: int) -> MediaKind:
    """A PDF must start with its header and end with %%EOF (a cut-short upload does not), and carry no active content."""
    if not read(0, 5).startswith(b"%PDF-"):
        raise refusals.damaged("PDF", "no %PDF- header")
    tail = read(max(0, size - 1024), 1024)
    if b"%%EOF" not in tail:
        raise refusals.damaged("PDF", "no %%EOF marker at the end")
    found = active_content(_read_all(read, size))
    if found:
        raise refusals.active_pdf(", ".join(sorted(found)))
    return PDF


def active_content(data: bytes) -> set[str]:
    """Names of JavaScript or launch actions in a PDF: in plain objects, behind #xx name escapes, or in
    compressed object streams (where PDF 1.5+ writers put dictionaries). Refused, never just flagged."""
    found = active_content_plain(data)
    budget = MAX_INFLATED
    for stream in _object_streams(data):
        try:
            inflated = zlib.decompressobj().decompress(stream, budget)
        except zlib.error:
            continue
        budget -= len(inflated)
        found |= active_content_plain(inflated)
        if budget <= 0:
            break
    return found


def active_content_plain(data: bytes) -> set[str]:
    """Active-content names in uncompressed PDF text (no stream inflation)."""
    found = {match.group(1).decode("ascii") for match in _ACTIVE.finditer(data)}
    for match in _ESCAPED_NAME.finditer(data):
        name = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), match.group(0))
        found |= {hit.group(1).decode("ascii") for hit in _ACTIVE.finditer(name + b" ")}
    return found


def _object_streams(data: bytes):
    """The raw bytes of each Flate-compressed object stream (/Type /ObjStm)."""
    for match in _OBJSTM.finditer(data):
        begin = data.find(b"stream", match.end(), match.end() + 4096)
        if begin < 0 or b"/FlateDecode" not in data[max(0, match.start() - 1024) : begin]:
            continue
        begin += len(b"stream")
        begin += 2 if data[begin : begin + 2] == b"\r\n" else 1
        end = data.find(b"endstream", begin)
        if end > begin:
            yield data[begin:end]


def _read_all(read: Callable[[int, int], bytes], size: int) -> bytes:
    """The whole PDF (at most EVIDENCE_DOCUMENT_MAX_BYTES), read in ranged pieces."""
    parts, offset = [], 0
    while offset < size:
        part = read(offset, min(READ_PIECE, size - offset))
        if not part:
            break
        parts.append(part)
        offset += len(part)
    return b"".join(parts)
