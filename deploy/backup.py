"""Back up and restore every part of the platform's state: `python -m deploy.backup dump|restore DIR`.

- each service's database: `pg_dump` of its own schema (PostgreSQL), or a consistent copy of its SQLite file
  (SQLite's online backup, safe while the platform runs);
- the evidence bucket (S3/MinIO, mirrored object by object with the minio SDK), or the blob folder;
- RabbitMQ holds no state worth keeping once the outboxes are drained; its definitions are exported with
  `rabbitmqctl export_definitions` (docs/operations.md).

Settings come from the environment as for the services (DATABASE_URL, BLOB_BACKEND, S3_*). PostgreSQL
passwords: PGPASSWORD or ~/.pgpass, as for any libpq tool.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url

from shared.settings import Settings

SERVICES = ("intake", "evidence_storage", "review", "notification")


def dump(settings: Settings, target: Path, *, minio=None) -> dict:
    """Write every service's database and the blob store under target; returns what was written."""
    target.mkdir(parents=True, exist_ok=True)
    written: dict = {"databases": {}, "blobs": 0}
    for service in SERVICES:
        written["databases"][service] = str(
            _dump_database(settings.database_url_for(service), service, target)
        )
    if settings.blob_backend == "s3":
        written["blobs"] = _mirror(minio or _minio(settings), settings.s3_bucket, target / "bucket")
    else:
        shutil.copytree(settings.blob_folder, target / "blobs", dirs_exist_ok=True)
        written["blobs"] = sum(1 for path in (target / "blobs").rglob("*") if path.is_file())
    (target / "manifest.json").write_text(json.dumps(written, ensure_ascii=False, indent=2), encoding="utf-8")
    return written


def restore(settings: Settings, source: Path, *, minio=None) -> dict:
    """Load a dump into empty databases (or schemas) and an empty bucket (or folder) named by settings."""
    restored: dict = {"databases": [], "blobs": 0}
    for service in SERVICES:
        _restore_database(settings.database_url_for(service), service, source)
        restored["databases"].append(service)
    if settings.blob_backend == "s3":
        restored["blobs"] = _upload(minio or _minio(settings), settings.s3_bucket, source / "bucket")
    else:
        shutil.copytree(source / "blobs", settings.blob_folder, dirs_exist_ok=True)
        restored["blobs"] = sum(1 for path in settings.blob_folder.rglob("*") if path.is_file())
    return restored


def _dump_database(url: str, service: str, target: Path) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = target / f"{service}.db"
        with closing(sqlite3.connect(parsed.database)) as source, closing(sqlite3.connect(path)) as copy:
            source.backup(copy)
        return path
    path = target / f"{service}.sql"
    subprocess.run(
        [
            "pg_dump",
            "--dbname",
            _libpq(url),
            "--schema",
            service,
            "--no-owner",
            "--no-privileges",
            "--file",
            str(path),
        ],
        check=True,
        timeout=3600,
    )
    return path


def _restore_database(url: str, service: str, source: Path) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        with (
            closing(sqlite3.connect(source / f"{service}.db")) as dumped,
            closing(sqlite3.connect(parsed.database)) as live,
        ):
            dumped.backup(live)
        return
    subprocess.run(
        [
            "psql",
            "--dbname",
            _libpq(url),
            "--quiet",
            "--no-psqlrc",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "--file",
            str(source / f"{service}.sql"),
        ],
        check=True,
        timeout=3600,
        stdout=subprocess.DEVNULL,
    )


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as libpq tools take it (no driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _minio(settings: Settings):
    from minio import Minio

    secret = settings.s3_secret_key
    secret = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
    return Minio(
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=secret,
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


def _mirror(client, bucket: str, folder: Path) -> int:
    count = 0
    for item in client.list_objects(bucket_name=bucket, recursive=True):
        path = folder / item.object_name
        path.parent.mkdir(parents=True, exist_ok=True)
        client.fget_object(bucket_name=bucket, object_name=item.object_name, file_path=str(path))
        count += 1
    return count


def _upload(client, bucket: str, folder: Path) -> int:
    if not client.bucket_exists(bucket_name=bucket):
        client.make_bucket(bucket_name=bucket)
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.fput_object(
            bucket_name=bucket, object_name=path.relative_to(folder).as_posix(), file_path=str(path)
        )
        count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and dump or restore."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.backup", description="备份与恢复 · backup and restore"
    )
    parser.add_argument("action", choices=["dump", "restore"])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    settings = Settings()
    result = dump(settings, args.folder) if args.action == "dump" else restore(settings, args.folder)
    print(json.dumps(result, ensure_ascii=False, indent=2), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
