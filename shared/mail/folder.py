"""Mailer that writes each message as an .eml file into a folder (embedded mode)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

from shared.mail.port import PermanentMailError


class FolderMailer:
    """Writes messages atomically as <folder>/<time>-<id>.eml."""

    def __init__(self, folder: Path) -> None:
        self._folder = Path(folder)

    def send(self, message: Message) -> None:
        """Write the message; a message without a recipient is a permanent failure."""
        if not message.get_all("To"):
            raise PermanentMailError("message has no recipient")
        self._folder.mkdir(parents=True, exist_ok=True)
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))  # as smtplib sends it
        fd, tmp = tempfile.mkstemp(dir=self._folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}.eml"
        os.replace(tmp, self._folder / name)

    @contextmanager
    def session(self) -> Iterator[FolderMailer]:
        """A batch needs no connection: the session is the mailer itself."""
        yield self

    def health(self) -> dict[str, Any]:
        """Whether the folder is writable."""
        self._folder.mkdir(parents=True, exist_ok=True)
        return {"backend": "folder", "ok": os.access(self._folder, os.W_OK), "folder": str(self._folder)}

    def messages(self) -> list[Path]:
        """The .eml files written so far, oldest first (for tests and ops)."""
        if not self._folder.exists():
            return []
        return sorted(self._folder.glob("*.eml"))
