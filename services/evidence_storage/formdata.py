"""A pull-style reader of multipart/form-data bodies: file parts are handed out one at a time as readable
streams, the body is parsed as it arrives, and at most one slice of it is held in memory."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Literal
from urllib.parse import unquote

from python_multipart.multipart import MultipartParser, parse_options_header

from shared.http import ApiError

FEED_SLICE = 256 * 1024
MAX_FILES = 20
MAX_FIELD_BYTES = 64 * 1024
_EXTENDED_FILENAME = re.compile(r"filename\*\s*=\s*([A-Za-z0-9_-]*)'[^']*'([^;\s]+)", re.IGNORECASE)


def bad_form(message: str, message_en: str) -> ApiError:
    """400 for a body that is not usable multipart/form-data."""
    return ApiError(
        400, "bad_multipart", f"表单数据格式错误：{message}", f"malformed multipart/form-data: {message_en}"
    )


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a multipart/form-data Content-Type."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise bad_form("缺少 boundary", "no boundary in Content-Type")
    return boundary


class FilePart:
    """One file of the form, readable until the part ends."""

    def __init__(self, form: MultipartFiles, filename: str | None) -> None:
        self._form = form
        self.filename = filename
        self.done = False

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes of this part (fewer only at its end)."""
        return self._form._read_part(self, n)


# What the parser's callbacks report: a part's headers, a slice of its data, its end.
_Event = (
    tuple[Literal["headers"], dict[bytes, bytes]]
    | tuple[Literal["data"], bytes]
    | tuple[Literal["end"], None]
)


class MultipartFiles:
    """Iterates the file parts of a body pulled chunk by chunk from next_chunk (b"" at the end)."""

    def __init__(
        self, content_type: str, next_chunk: Callable[[], bytes], *, max_files: int = MAX_FILES
    ) -> None:
        self._next_chunk = next_chunk
        self._events: deque[_Event] = deque()
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = b"", b""
        self._eof = False
        self._current: FilePart | None = None
        self._buffer = bytearray()
        self._files = 0
        self._max_files = max_files
        self._parser = MultipartParser(
            boundary_of(content_type),
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": lambda data, start, end: self._extend_field(data[start:end]),
                "on_header_value": lambda data, start, end: self._extend_value(data[start:end]),
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": lambda data, start, end: self._events.append(
                    ("data", bytes(data[start:end]))
                ),
                "on_part_end": lambda: self._events.append(("end", None)),
            },
        )

    def next_file(self) -> FilePart | None:
        """The next part that carries a file (form fields are skipped), or None at the end of the body."""
        if self._current is not None and not self._current.done:
            while self._read_part(self._current, 1024 * 1024):
                pass  # the caller stopped early: skip the rest of that part
        field_bytes = 0
        while True:
            event = self._next_event()
            if event is None:
                return None
            match event:
                case ("headers", dict() as headers):
                    filename = self._filename(headers)
                    if filename is None:
                        continue  # a plain form field: its data events are skipped below
                    self._files += 1
                    if self._files > self._max_files:
                        raise bad_form(
                            f"一次最多上传 {self._max_files} 个文件",
                            f"at most {self._max_files} files per request",
                        )
                    self._current = FilePart(self, filename)
                    self._buffer.clear()
                    return self._current
                case ("data", bytes() as data):
                    field_bytes += len(data)
                    if field_bytes > MAX_FIELD_BYTES:
                        raise bad_form("表单字段过大", "form field too large")

    def _read_part(self, part: FilePart, n: int) -> bytes:
        while not part.done and (n < 0 or len(self._buffer) < n):
            event = self._next_event()
            if event is None:
                raise bad_form("文件数据不完整", "the body ended inside a file part")
            match event:
                case ("data", bytes() as data):
                    self._buffer += data
                    if n < 0:
                        break
                case ("end", _):
                    part.done = True
        take = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        return data

    def _next_event(self) -> _Event | None:
        """The next parser event, feeding the parser one slice of the body at a time."""
        while not self._events:
            if self._eof:
                return None
            chunk = self._next_chunk()
            if not chunk:
                self._eof = True
                self._parser.finalize()
                continue
            try:
                for start in range(0, len(chunk), FEED_SLICE):
                    self._parser.write(chunk[start : start + FEED_SLICE])
            except Exception as exc:  # python-multipart raises its own error types for malformed bodies
                raise bad_form("无法解析", str(exc)[:200]) from exc
        return self._events.popleft()

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _extend_field(self, data: bytes) -> None:
        self._field += data

    def _extend_value(self, data: bytes) -> None:
        self._value += data

    def _on_header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field, self._value = b"", b""

    def _on_headers_finished(self) -> None:
        self._events.append(("headers", dict(self._headers)))

    @staticmethod
    def _filename(headers: dict[bytes, bytes]) -> str | None:
        """The part's filename (RFC 5987 filename* preferred), or None for a plain field."""
        disposition = headers.get(b"content-disposition", b"")
        text = disposition.decode("utf-8", "replace")
        extended = _EXTENDED_FILENAME.search(text)
        if extended:
            charset = extended.group(1) or "utf-8"
            try:
                return unquote(extended.group(2), encoding=charset, errors="replace")
            except LookupError:
                return unquote(extended.group(2))
        _, params = parse_options_header(disposition)
        if b"filename" not in params:
            return None
        return params[b"filename"].decode("utf-8", "replace")
