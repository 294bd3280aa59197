"""The activity timeline: one append-only chain of records, each carrying the hash of the one before.

Every state change, comment, decision, download, inspection and supervision step is appended in the
same transaction as the change itself. A record's hash covers its own fields and the previous hash,
so `verify` finds any record that was altered, removed or moved, and a truncated tail (the head row
remembers the last sequence number and hash). Appends serialise on the head row (FOR UPDATE on
PostgreSQL; SQLite transactions are BEGIN IMMEDIATE already).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Select, Table, Update, bindparam, insert, select, update
from sqlalchemy.orm import Session

from services.review.models import TimelineHead, TimelineRecord
from shared.clock import as_utc

GENESIS = "0" * 64
_HEAD_ID = 1


def record_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    actor_role: str,
    kind: str,
    unit_id: str | None,
    submission_id: str | None,
    subject_type: str,
    subject_id: str,
    detail: dict,
    prev_hash: str,
) -> str:
    """SHA-256 over a record's canonical JSON (sorted keys, UTC microsecond time) and the previous hash."""
    body = {
        "seq": seq,
        "at": as_utc(at).isoformat(timespec="microseconds"),
        "actor": actor,
        "actor_role": actor_role,
        "kind": kind,
        "unit_id": unit_id,
        "submission_id": submission_id,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def append(
    uow: Session,
    *,
    at: datetime,
    actor: str,
    kind: str,
    subject_type: str,
    subject_id: str,
    unit_id: str | None = None,
    submission_id: str | None = None,
    actor_role: str = "",
    detail: dict[str, Any] | None = None,
) -> TimelineRecord:
    """Append one record to the chain inside the caller's transaction; returns it (not added to the session)."""
    read_head, add_head, add_record, move_head = _statements()
    head = uow.execute(read_head).first()
    prev_seq, prev_hash = head if head is not None else (0, GENESIS)
    if head is None:
        uow.execute(add_head, {"id": _HEAD_ID, "seq": 0, "hash": GENESIS})
    detail = json.loads(
        json.dumps(detail or {}, ensure_ascii=False, default=str)
    )  # exactly what the JSON column returns
    fields: dict[str, Any] = dict(
        seq=prev_seq + 1,
        at=as_utc(at),
        actor=actor,
        actor_role=actor_role,
        kind=kind,
        unit_id=unit_id,
        submission_id=submission_id,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=detail,
        prev_hash=prev_hash,
    )
    digest = record_hash(**fields)
    uow.execute(add_record, {**fields, "hash": digest})
    uow.execute(move_head, {"new_seq": fields["seq"], "new_hash": digest})
    return TimelineRecord(**fields, hash=digest)


@functools.cache
def _statements() -> tuple[Select, Insert, Insert, Update]:
    # Core statements built once: an append is three of them in every consumed submission event and every review
    # act, and the ORM's unit of work (and a fresh cache key per statement) cost more than the statements.
    head, records = cast(Table, TimelineHead.__table__), TimelineRecord.__table__
    return (
        select(head.c.seq, head.c.hash).where(head.c.id == _HEAD_ID).with_for_update(),
        insert(head),
        insert(records),
        update(head)
        .where(head.c.id == _HEAD_ID)
        .values(seq=bindparam("new_seq"), hash=bindparam("new_hash")),
    )


def for_submission(uow: Session, submission_id: str) -> list[TimelineRecord]:
    """A submission's records, oldest first."""
    return list(
        uow.scalars(
            select(TimelineRecord)
            .where(TimelineRecord.submission_id == submission_id)
            .order_by(TimelineRecord.seq)
        )
    )


def for_unit(uow: Session, unit_id: str, *, limit: int = 1000, offset: int = 0) -> list[TimelineRecord]:
    """A unit's records (its submissions, inspections and supervisions), oldest first."""
    query = select(TimelineRecord).where(TimelineRecord.unit_id == unit_id).order_by(TimelineRecord.seq)
    return list(uow.scalars(query.limit(limit).offset(offset)))


@dataclass
class Problem:
    """One break in the chain."""

    seq: int | None
    code: str  # altered, removed, reordered, truncated
    message: str  # Chinese, for the operator


@dataclass
class Verification:
    """What verify found: how many records it read, and every problem."""

    records: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the chain is intact."""
        return not self.problems


def _rows(uow: Session, batch: int = 1000) -> Iterator[TimelineRecord]:
    last = -1
    while True:
        rows = list(
            uow.scalars(
                select(TimelineRecord)
                .where(TimelineRecord.seq > last)
                .order_by(TimelineRecord.seq)
                .limit(batch)
            )
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        uow.expunge_all()


def verify(uow: Session, progress: Any = None) -> Verification:
    """Walk the whole chain; report altered, removed, reordered records and a truncated tail.

    `progress(count)` is called every 1,000 records when given.
    """
    result = Verification()
    expected_seq, prev_hash = 1, GENESIS
    for row in _rows(uow):
        result.records += 1
        if progress and result.records % 1000 == 0:
            progress(result.records)
        if row.seq != expected_seq:
            result.problems.append(Problem(row.seq, "removed", f"第 {expected_seq}–{row.seq - 1} 条记录缺失"))
        recomputed = record_hash(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            actor_role=row.actor_role,
            kind=row.kind,
            unit_id=row.unit_id,
            submission_id=row.submission_id,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            detail=row.detail,
            prev_hash=row.prev_hash,
        )
        if recomputed != row.hash:
            result.problems.append(Problem(row.seq, "altered", f"第 {row.seq} 条记录内容被改动（哈希不符）"))
        elif row.prev_hash != prev_hash and row.seq == expected_seq:
            result.problems.append(
                Problem(row.seq, "reordered", f"第 {row.seq} 条记录的前序哈希不符（记录被移动或替换）")
            )
        expected_seq, prev_hash = row.seq + 1, row.hash
    head = uow.get(TimelineHead, _HEAD_ID)
    if head is None and result.records:
        result.problems.append(
            Problem(None, "truncated", "链尾记录（timeline_head）缺失，无法确认末尾记录是否被删除")
        )
    elif head is not None and (head.seq != expected_seq - 1 or head.hash != prev_hash):
        result.problems.append(
            Problem(
                head.seq,
                "truncated",
                f"链尾应为第 {head.seq} 条，实际读到第 {expected_seq - 1} 条（末尾记录被删除或改动）",
            )
        )
    return result
