"""SQLite files and the data folder are private to the platform's user."""

from __future__ import annotations

import stat

from sqlalchemy import Column, Integer, MetaData, Table, insert

from shared.db import Database


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_and_its_folder_are_private(tmp_path):
    folder = tmp_path / "var" / "data"
    db = Database(f"sqlite:///{folder / 'intake.db'}", schema="intake")
    table = Table("things", MetaData(), Column("id", Integer, primary_key=True))
    try:
        table.metadata.create_all(db.engine)
        with db.transaction() as uow:
            uow.execute(insert(table).values(id=1))
        files = sorted(path.name for path in folder.iterdir())
        assert "intake.db" in files and "intake.db-wal" in files
        assert {name: mode(folder / name) for name in files} == dict.fromkeys(files, 384)
        assert mode(folder) == 0o700
    finally:
        db.dispose()


def test_an_existing_world_readable_database_is_narrowed(tmp_path):
    path = tmp_path / "review.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    db = Database(f"sqlite:///{path}", schema="review")
    try:
        assert mode(path) == 0o600
    finally:
        db.dispose()


def test_a_database_in_a_shared_sticky_folder_leaves_the_folder_alone(tmp_path):
    shared = tmp_path / "tmp"  # like /tmp: everyone's, with the sticky bit
    shared.mkdir()
    shared.chmod(0o1777)
    db = Database(f"sqlite:///{shared / 'intake.db'}", schema="intake")
    try:
        assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # other users of the machine keep their /tmp
        assert mode(shared / "intake.db") == 0o600  # the database itself is still private
    finally:
        db.dispose()


def test_an_existing_folder_without_the_sticky_bit_is_narrowed(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o755)
    db = Database(f"sqlite:///{folder / 'intake.db'}", schema="intake")
    try:
        assert mode(folder) == 0o700
    finally:
        db.dispose()
