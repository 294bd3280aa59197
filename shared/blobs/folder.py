"""Blob store on a local folder: atomic rename into place, a .sha256 sidecar beside each object."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from shared.blobs.port import CHUNK, BlobNotFound, HashingReader, StoredObject, check_key


class FolderBlobStore:
    """Objects as files under one root folder."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    def _path(self, key: str) -> Path:
        return self._root / "objects" / check_key(key)

    def put(self, key: str, stream: BinaryIO, *, content_type: str) -> StoredObject:
        """Copy the stream to a temporary file, then rename it into place."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = self._root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        reader = HashingReader(stream)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            meta = path.with_name(path.name + ".meta")
            meta.write_text(f"{content_type}\n{reader.sha256}\n", encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredObject(key=key, size=reader.size, content_type=content_type, sha256=reader.sha256)

    def read(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Yield the file in chunks."""
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(key)
        return self._chunks(path, chunk_size)

    @staticmethod
    def _chunks(path: Path, chunk_size: int) -> Iterator[bytes]:
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def stat(self, key: str) -> StoredObject:
        """Size from the file, type and checksum from its sidecar."""
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(key)
        content_type, sha256 = "application/octet-stream", None
        meta = path.with_name(path.name + ".meta")
        if meta.is_file():
            lines = meta.read_text(encoding="utf-8").splitlines()
            content_type, sha256 = lines[0], (lines[1] if len(lines) > 1 else None)
        return StoredObject(key=key, size=path.stat().st_size, content_type=content_type, sha256=sha256)

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the file and its sidecar."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".meta").unlink(missing_ok=True)

    def health(self) -> dict:
        """Whether the root is writable, and free space."""
        self._root.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(self._root)
        return {"backend": "folder", "ok": os.access(self._root, os.W_OK), "root": str(self._root), "free_bytes": usage.free}

    def count_objects(self) -> int:
        """How many objects are stored (for tests and ops)."""
        root = self._root / "objects"
        return sum(1 for p in root.rglob("*") if p.is_file() and not p.name.endswith(".meta")) if root.exists() else 0
