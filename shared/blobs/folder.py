"""Blob store on a local folder: atomic rename into place, a .sha256 sidecar beside each object; a multipart
upload is a folder of part files under uploads/, joined into the object when completed."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from shared.blobs.port import (
    CHUNK,
    BlobExists,
    BlobNotFound,
    BlobStoreMisconfigured,
    HashingReader,
    PresignedPost,
    PresignUnsupported,
    Readable,
    StoredObject,
    UploadedPart,
    UploadGone,
    UploadPartsChanged,
    check_key,
)

_NO_PRESIGN = "the folder store serves bytes only through the API"
_UPLOAD_META = "upload"  # in each upload's folder: the target key and the content type, one per line
_KERNEL_COPY_STEP = 1 << 30
_T = TypeVar("_T")
# What copy_file_range raises where the file system or the kernel cannot do it: the parts are then read instead.
_NO_KERNEL_COPY = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM}
)


class FolderBlobStore:
    """Objects as files under one root folder."""

    min_compose_part = 1
    upload_part_size: int | None = None  # parts are streamed to their files, whatever their size

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    def _path(self, key: str) -> Path:
        return self._root / "objects" / check_key(key)

    def _upload_dir(self, key: str, upload_id: str) -> Path:
        """The folder of an unfinished upload to key; raises UploadGone if there is none."""
        check_key(key)
        folder = self._root / "uploads" / upload_id
        if not upload_id.isalnum() or not (folder / _UPLOAD_META).is_file():
            raise UploadGone(f"upload {upload_id} of {key!r}")
        if (folder / _UPLOAD_META).read_text(encoding="utf-8").splitlines()[0] != key:
            raise UploadGone(f"upload {upload_id} is not an upload to {key!r}")
        return folder

    def put(self, key: str, stream: Readable, *, content_type: str, digest: Any = None) -> StoredObject:
        """Copy the stream to a temporary file, then rename it into place (the sidecar has the SHA-256 when
        this object was hashed alone)."""
        reader = HashingReader(stream, digest)

        def fill(out: BinaryIO) -> tuple[int, str | None]:
            _copy(reader, out)
            return reader.size, reader.sha256 if digest is None else None

        return self._placed(key, content_type, fill)

    def _placed(
        self, key: str, content_type: str, fill: Callable[[BinaryIO], tuple[int, str | None]]
    ) -> StoredObject:
        """An object written whole or not at all: fill(file) writes a temporary file and returns (size, SHA-256 or
        None); it is synced, its sidecar written, and it is renamed into place."""
        path = self._path(key)
        _make_dirs(path.parent)
        tmp_dir = self._root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir)
        try:
            size, sha256 = _synced(fd, fill)
            meta = path.with_name(path.name + ".meta")
            _write_synced(meta, content_type + "\n" + (f"{sha256}\n" if sha256 else ""))
            os.replace(tmp, path)
            _sync_dir(path.parent)  # the new names (object and sidecar) survive a power loss too
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredObject(key=key, size=size, content_type=content_type, sha256=sha256)

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

    def health(self) -> dict[str, Any]:
        """Whether the root is writable, and free space."""
        self._root.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(self._root)
        return {
            "backend": "folder",
            "ok": os.access(self._root, os.W_OK),
            "root": str(self._root),
            "free_bytes": usage.free,
        }

    def check_config(self) -> None:
        """The root folder can be created and written to (a file is written and removed)."""
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise BlobStoreMisconfigured(
                f"BLOB_DIR {str(self._root)!r} is not a writable folder ({exc.strerror or exc}); "
                f"对象存储目录不可写，请检查 BLOB_DIR / DATA_DIR"
            ) from None

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """Seek and read; fewer bytes at the end of the file."""
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(key)
        with path.open("rb") as handle:
            handle.seek(max(offset, 0))
            return handle.read(max(length, 0))

    def move(self, source: str, target: str) -> StoredObject:
        """Rename the file and its sidecar; the target must be free."""
        src, dst = self._path(source), self._path(target)
        if not src.is_file():
            raise BlobNotFound(source)
        if dst.exists():
            raise BlobExists(target)
        _make_dirs(dst.parent)
        meta = src.with_name(src.name + ".meta")
        if meta.is_file():
            os.replace(meta, dst.with_name(dst.name + ".meta"))
        os.replace(src, dst)
        _sync_dir(dst.parent)
        return self.stat(target)

    def compose(self, key: str, sources: Sequence[str], *, content_type: str) -> StoredObject:
        """Concatenate the source files into a temporary file, hashing, then rename it into place."""
        paths = [self._path(source) for source in sources]
        for source, path in zip(sources, paths, strict=True):
            if not path.is_file():
                raise BlobNotFound(source)
        stream = _Concatenated(paths)
        try:
            return self.put(key, stream, content_type=content_type)
        finally:
            stream.close()

    def start_upload(self, key: str, *, content_type: str) -> str:
        """A new folder under uploads/ that remembers the target key and type."""
        check_key(key)
        upload_id = uuid.uuid4().hex
        folder = self._root / "uploads" / upload_id
        _make_dirs(folder)
        _write_synced(folder / _UPLOAD_META, f"{key}\n{content_type}\n")
        _sync_dir(folder)
        return upload_id

    def put_part(
        self, key: str, upload_id: str, number: int, stream: Readable, *, digest: Any = None
    ) -> UploadedPart:
        """Stream the part to a file of its own; the ETag is new for every put, so complete_upload() takes exactly
        the part it is given even when the same number was sent twice (the other file goes with the folder)."""
        folder = self._upload_dir(key, upload_id)
        if number < 1:
            raise ValueError(f"part numbers start at 1, got {number}")
        reader = HashingReader(stream, digest)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        etag = uuid.uuid4().hex
        try:
            _synced(fd, lambda out: _copy(reader, out))
            os.replace(tmp, folder / f"{number:08d}-{etag}")
            _sync_dir(folder)  # an acknowledged part keeps its name after a power loss
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return UploadedPart(number=number, etag=etag, size=reader.size)

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> StoredObject:
        """Join the given part files into the object, then remove the upload's folder. The kernel copies them where
        it can (no byte passes through Python, and the result has no SHA-256: whoever sent the parts hashed them);
        elsewhere they are read and hashed on the way."""
        folder = self._upload_dir(key, upload_id)
        if not parts:
            raise ValueError("an upload needs at least one part")
        content_type = (folder / _UPLOAD_META).read_text(encoding="utf-8").splitlines()[1]
        paths = [folder / f"{part.number:08d}-{part.etag}" for part in parts]
        for part, path in zip(parts, paths, strict=True):
            if not path.is_file() or path.stat().st_size != part.size:
                raise UploadPartsChanged(f"upload {upload_id} of {key!r}: part {part.number} is not as given")
        stored = self._copied(key, paths, content_type)
        if stored is None:
            stream = _Concatenated(paths)
            try:
                stored = self.put(key, stream, content_type=content_type)
            finally:
                stream.close()
        shutil.rmtree(folder, ignore_errors=True)
        return stored

    def _copied(self, key: str, paths: Sequence[Path], content_type: str) -> StoredObject | None:
        """The files joined into the object by copy_file_range, or None where this system cannot copy that way."""
        if not hasattr(os, "copy_file_range"):
            return None
        try:
            return self._placed(
                key,
                content_type,
                lambda out: (sum(_copy_in_kernel(path, out.fileno()) for path in paths), None),
            )
        except _NoKernelCopy:
            return None

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Remove the upload's folder, if it is still there."""
        try:
            folder = self._upload_dir(key, upload_id)
        except UploadGone:
            return
        shutil.rmtree(folder, ignore_errors=True)

    def list_keys(self, prefix: str, *, modified_before: datetime | None = None) -> Iterator[str]:
        """Walk only the folder the prefix points into."""
        root = self._root / "objects"
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = root / base if base else root
        if not start.is_dir():
            return iter(())
        before = modified_before.timestamp() if modified_before else None
        return (
            key
            for path in sorted(start.rglob("*"))
            if path.is_file()
            and not path.name.endswith(".meta")
            and (key := path.relative_to(root).as_posix()).startswith(prefix)
            and (before is None or _mtime(path) < before)
        )

    def abort_unfinished_uploads(self, *, started_before: datetime, keep: Collection[str] = ()) -> int:
        """Remove temporary files of puts that never finished (their process died), and the folders of uploads
        started before then and never completed, except those in keep."""
        tmp_dir, uploads, removed = self._root / "tmp", self._root / "uploads", 0
        before = started_before.timestamp()
        if tmp_dir.is_dir():
            for path in tmp_dir.iterdir():
                if path.is_file() and _mtime(path) < before:
                    path.unlink(missing_ok=True)
                    removed += 1
        if uploads.is_dir():
            for folder in uploads.iterdir():
                meta = folder / _UPLOAD_META
                if folder.name not in keep and _mtime(meta if meta.exists() else folder) < before:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        return removed

    def retain(self, key: str, until: datetime, *, mode: str = "GOVERNANCE") -> bool:
        """A plain folder has no retention; the API's own lock is the only guard."""
        if not self._path(key).is_file():
            raise BlobNotFound(key)
        return False

    def local_path(self, key: str) -> str | None:
        """The object's own file (atomically renamed into place, never rewritten)."""
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(key)
        return str(path)

    def presigned_get_url(self, key: str, expires_s: int = 3600, *, download_name: str | None = None) -> str:
        """Not available: a folder has no URL of its own."""
        raise PresignUnsupported(_NO_PRESIGN)

    def presigned_post(
        self, key: str, *, key_prefix: str, content_type: str, size: int, expires_s: int
    ) -> PresignedPost:
        """Not available: a folder cannot take uploads by itself."""
        raise PresignUnsupported(_NO_PRESIGN)

    def unfinished_uploads(self) -> list[str]:
        """Target keys of the multipart uploads begun and neither completed nor aborted (for tests and ops)."""
        uploads = self._root / "uploads"
        if not uploads.is_dir():
            return []
        return sorted(
            meta.read_text(encoding="utf-8").splitlines()[0] for meta in uploads.glob(f"*/{_UPLOAD_META}")
        )

    def count_objects(self) -> int:
        """How many objects are stored (for tests and ops)."""
        root = self._root / "objects"
        return (
            sum(1 for p in root.rglob("*") if p.is_file() and not p.name.endswith(".meta"))
            if root.exists()
            else 0
        )


class _Concatenated:
    """A readable stream over several files, one after the other."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = list(paths)
        self._handle: BinaryIO | None = None

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes from the current file, moving on at its end."""
        while True:
            if self._handle is None:
                if not self._paths:
                    return b""
                self._handle = self._paths.pop(0).open("rb")
            data = self._handle.read(CHUNK if n is None or n < 0 else n)
            if data:
                return data
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        """Close the file being read, if any."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _mtime(path: Path) -> float:
    """Last write time of a file, or +inf if it went away meanwhile (so it is never taken for old)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


class _NoKernelCopy(Exception):
    """copy_file_range is refused here (file system, kernel or seccomp profile): the parts are read instead."""


def _copy_in_kernel(source: Path, out: int) -> int:
    """Append the file to out with copy_file_range; returns how many bytes it copied."""
    copied = 0
    with source.open("rb") as handle:
        while True:
            try:
                count = os.copy_file_range(handle.fileno(), out, _KERNEL_COPY_STEP)
            except OSError as exc:
                if exc.errno in _NO_KERNEL_COPY:
                    raise _NoKernelCopy(str(exc)) from exc
                raise
            if count == 0:
                return copied
            copied += count


def _copy(reader: Readable, out: BinaryIO) -> None:
    while chunk := reader.read(CHUNK):
        out.write(chunk)


def _synced(fd: int, fill: Callable[[BinaryIO], _T]) -> _T:
    """Run fill on the open temporary file, then flush and fsync it (then it may replace its target)."""
    with os.fdopen(fd, "wb") as out:
        result = fill(out)
        out.flush()
        os.fsync(out.fileno())
    return result


def _write_synced(path: Path, text: str) -> None:
    """Write a small text file and fsync it."""
    with path.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def _sync_dir(folder: Path) -> None:
    """fsync a folder, so the names created or renamed in it are on disk."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(folder: Path) -> None:
    """Create a folder and its missing parents, syncing the parent of each one created."""
    if folder.is_dir():
        return
    _make_dirs(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:  # made meanwhile by another put
        return
    _sync_dir(folder.parent)
