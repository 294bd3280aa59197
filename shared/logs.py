"""Structured logs: one JSON object per line (or plain text for a terminal) carrying the request and event context.

Every line has time, level, logger, message, service and process role; inside an HTTP request also its
request id; inside event handling the event id, type, consumer, correlation and causation ids. The context
lives in a ContextVar, so it follows a request into FastAPI's thread pool and an event into its handlers,
and `current_correlation()` lets shared/contracts.make_event give new events the same correlation id.
Secrets never reach a line: bearer tokens, passwords and query strings are cut from every message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

_context: ContextVar[Mapping[str, Any]] = ContextVar("log_context", default=MappingProxyType({}))
_process: dict[str, str] = {}

# What a line may never carry: "Bearer <token>", "password=..."/"token": "...", and a URL's query string.
_SECRETS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|api[_-]?key|authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"'&,;]+"
        ),
        r"\1[redacted]",
    ),
    (
        re.compile(r"(?i)(amqps?|postgres(?:ql)?(?:\+\w+)?|smtp)://([^:/@\s]+):([^@\s]+)@"),
        r"\1://\2:[redacted]@",
    ),
    (re.compile(r"(/[^\s?\"']*)\?[^\s\"']*"), r"\1"),
]
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def scrub(text: str) -> str:
    """The text with tokens, passwords, credentials in URLs and query strings removed."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def first_line(exc: BaseException) -> str:
    """An error's first line for a one-line log message (its type's name when it has no text)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (None values skipped) to every log line written inside the block, on this thread or task."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    """The fields the current request or event handling adds to log lines."""
    return dict(_context.get())


def current_correlation() -> tuple[str | None, str | None]:
    """(correlation id, causation id) for an event made now: the handled event's, else the request id."""
    context = _context.get()
    if "event_id" in context:
        return context.get("correlation_id") or context["event_id"], context["event_id"]
    return context.get("request_id"), None


class ContextFilter(logging.Filter):
    """Copies the process's and the current context's fields onto each record, and scrubs its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in {**_process, **_context.get()}.items():
            if not hasattr(record, key) or key == "service":
                setattr(record, key, value)
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then every context and extra field."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A developer's terminal: time, level, logger, message, then the ids that matter."""

    KEYS = ("service", "request_id", "event_type", "event_id", "correlation_id")

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{key}={getattr(record, key)}" for key in self.KEYS if getattr(record, key, None))
        return f"{text} [{ids}]" if ids else text


def configure_logging(
    *, service: str, role: str, fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Send every log line to stderr as JSON (or text: fmt "text", or "auto" on a terminal) with the context."""
    _process.update(service=service, role=role)
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("pika").setLevel(logging.WARNING)
    # Our own access line (shared/observe.py) replaces uvicorn's, which would print query strings.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
