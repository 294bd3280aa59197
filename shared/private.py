"""Files and folders only the platform's own user may read: SQLite databases (0600) and data folders (0700)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def private_folder(path: Path) -> Path:
    """Create the folder (and missing parents) as 0700; an existing folder we own is narrowed to 0700, unless it is
    a shared one with the sticky bit (/tmp): narrowing that would lock every other user of the machine out."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & stat.S_ISVTX:
        log.warning(
            "%s is a shared folder (sticky bit): left as it is; only the files in it are made private", path
        )
    else:
        _narrow(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Create an empty file as 0600 if missing (so SQLite never makes it world-readable); narrow an existing one."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        _narrow(path, 0o600)
    return path


def _narrow(path: Path, mode: int) -> None:
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o777 & ~mode:
            os.chmod(path, mode)
            log.info("narrowed permissions of %s to %o", path, mode)
    except OSError as exc:  # not ours, read-only mount...: say so, do not stop the service
        log.warning("could not make %s private (%s): check its permissions", path, exc)
