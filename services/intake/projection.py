"""The coverage projection: one row per unit with its counters and the standing the matrix shows.

Every submission state change passes submissions._set_state, and every change of its topics passes
submissions._write_topics; both call in here with the before and after. The unit's row is read with a row lock
(SELECT … FOR UPDATE; on SQLite the write lock of the transaction does the same), the change is applied to its
counters, and the counters and the standing derived from them are written back, in the submission's own
transaction: concurrent writers to one unit on PostgreSQL wait for each other and add up instead of overwriting.
The matrix reads one row per unit and only its standing (services/intake/coverage.py), so it parses no counters.
`rebuild` recomputes the rows from submissions (`python -m services.intake.cli rebuild-coverage`);
tests/intake/test_coverage_projection.py checks that a rebuild equals what the changes maintained. Migration 0005
turned the per-cell rows of migration 0002 into these.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from services.intake.models import CoverageUnit, Submission, SubmissionTopic

log = logging.getLogger(__name__)

# Which counter a submission in each state adds to; other states (draft, withdrawn, rejected) show as nothing.
BUCKET = {"approved": "approved", "submitted": "pending", "under_review": "pending", "returned": "returned"}
SLOTS = ("approved", "pending", "returned")
HANDED_IN = ("submitted", "under_review", "approved")
MISSING = ("missing", 0)
REBUILD_BATCH = 2000  # units per round of a rebuild: a province's campaign is rebuilt in bounded memory


def state_changed(uow: Session, submission: Submission, before: str | None, after: str) -> None:
    """Move the submission's counts from its old state to its new one (cell and topics)."""
    if submission.campaign_id is None or before == after:
        return
    old, new = BUCKET.get(before or ""), BUCKET.get(after)
    cell = [0, 0, 0]
    if old:
        cell[SLOTS.index(old)] -= 1
    if new:
        cell[SLOTS.index(new)] += 1
    was, now = before in HANDED_IN, after in HANDED_IN
    topics = dict.fromkeys(submission.topics or [], 1 if now else -1) if was != now else {}
    if any(cell) or topics:
        _change(uow, submission, cell, topics)


def topics_changed(uow: Session, submission: Submission, before: Iterable[str], after: Iterable[str]) -> None:
    """Move topic counts when a handed-in submission's topics change (a draft's topics count for nothing yet)."""
    if submission.campaign_id is None or submission.state not in HANDED_IN:
        return
    before, after = set(before), set(after)
    topics = {**dict.fromkeys(before - after, -1), **dict.fromkeys(after - before, 1)}
    if topics:
        _change(uow, submission, [0, 0, 0], topics)


def standing(counts: dict[str, Any]) -> dict[str, Any]:
    """What the matrix shows of a unit, from its counters: each measure's state and count, the summary report's,
    how many good practices are handed in, which topics are covered."""
    cells = counts["cells"]
    summary = [sum(slots[i] for slots in cells.get("summary_report", {}).values()) for i in range(3)]
    shown = {
        code: cell for code, slots in cells.get("measure", {}).items() for cell in [_shown(slots)] if cell
    }
    return {  # dicts of plain values: the collector does not track them, and the matrix reads thousands
        "measures": {code: cell[0] for code, cell in shown.items()},
        "counts": {code: cell[1] for code, cell in shown.items()},
        "summary_report": _shown(summary) or list(MISSING),
        "good_practices": sum(slots[0] + slots[1] for slots in cells.get("good_practice", {}).values()),
        "topics": sorted(code for code, handed_in in counts["topics"].items() if handed_in > 0),
    }


def rebuild(uow: Session, campaign_id: str | None = None) -> tuple[int, int]:
    """Recompute the projection from submissions (one campaign, or all); returns (cells, topic counters) written."""
    table = CoverageUnit.__table__
    uow.execute(delete(table).where(*([table.c.campaign_id == campaign_id] if campaign_id else [])))
    count = lambda states: func.sum(case((Submission.state.in_(states), 1), else_=0))  # noqa: E731
    where: list[ColumnElement[bool]] = [
        Submission.campaign_id.is_not(None),
        Submission.state.in_(tuple(BUCKET)),
    ]
    if campaign_id:
        where.append(Submission.campaign_id == campaign_id)
    grouped = (
        select(
            Submission.campaign_id,
            Submission.unit_id,
            Submission.kind,
            Submission.measure_code,
            count(("approved",)),
            count(("submitted", "under_review")),
            count(("returned",)),
        )
        .where(*where)
        .group_by(Submission.campaign_id, Submission.unit_id, Submission.kind, Submission.measure_code)
    )
    topic_where: list[ColumnElement[bool]] = [
        SubmissionTopic.campaign_id.is_not(None),
        SubmissionTopic.handed_in.is_(True),
    ]
    if campaign_id:
        topic_where.append(SubmissionTopic.campaign_id == campaign_id)
    grouped_topics = (
        select(SubmissionTopic.campaign_id, SubmissionTopic.unit_id, SubmissionTopic.topic_code, func.count())
        .where(*topic_where)
        .group_by(SubmissionTopic.campaign_id, SubmissionTopic.unit_id, SubmissionTopic.topic_code)
    )
    # A handed-in submission is counted in a cell too, so these are all the units with anything to show.
    unit_ids = sorted(uow.scalars(select(Submission.unit_id).where(*where).distinct()))
    cells = topics = units_written = 0
    for start in range(0, len(unit_ids), REBUILD_BATCH):
        batch = unit_ids[start : start + REBUILD_BATCH]
        units: dict[tuple[str, str], dict[str, Any]] = {}
        for campaign, unit, kind, measure_code, approved, pending, returned in uow.execute(
            grouped.where(Submission.unit_id.in_(batch))
        ):
            counts = units.setdefault((campaign, unit), _empty())
            counts["cells"].setdefault(kind, {})[measure_code or ""] = [
                int(approved),
                int(pending),
                int(returned),
            ]
            cells += 1
        for campaign, unit, code, handed_in in uow.execute(
            grouped_topics.where(SubmissionTopic.unit_id.in_(batch))
        ):
            units.setdefault((campaign, unit), _empty())["topics"][code] = int(handed_in)
            topics += 1
        rows = [{"campaign_id": c, "unit_id": u, **_texts(counts)} for (c, u), counts in units.items()]
        if rows:
            uow.execute(insert(table), rows)
        units_written += len(rows)
    log.info(
        "coverage projection rebuilt for %s: %s units, %s cells, %s topic counters",
        campaign_id or "every campaign",
        units_written,
        cells,
        topics,
    )
    return cells, topics


def _change(uow: Session, submission: Submission, cell: list[int], topics: dict[str, int]) -> None:
    table = CoverageUnit.__table__
    match = (table.c.campaign_id == submission.campaign_id, table.c.unit_id == submission.unit_id)
    locked = select(table.c.counts).where(*match).with_for_update()
    stored = uow.execute(locked).scalar()
    if stored is None:
        # The unit's first counted submission. Two first writers on PostgreSQL: the second INSERT waits for the
        # first to commit and then does nothing, and its SELECT (a new snapshot) finds and locks the row.
        dialect_insert = postgresql.insert if uow.get_bind().dialect.name == "postgresql" else sqlite.insert
        empty = _empty()
        uow.execute(
            dialect_insert(table)
            .values(
                campaign_id=submission.campaign_id,
                unit_id=submission.unit_id,
                **_texts(empty),
            )
            .on_conflict_do_nothing()
        )
        stored = uow.execute(locked).scalar_one()
    counts = json.loads(stored)
    if any(cell):
        kind = counts["cells"].setdefault(submission.kind, {})
        code = submission.measure_code or ""
        slots = [was + delta for was, delta in zip(kind.get(code, [0, 0, 0]), cell, strict=True)]
        if any(slots):
            kind[code] = slots
        else:  # nothing counts any more: dropped, as a rebuild would not write it
            kind.pop(code, None)
            if not kind:
                del counts["cells"][submission.kind]
    for code, delta in topics.items():
        handed_in = counts["topics"].get(code, 0) + delta
        if handed_in:
            counts["topics"][code] = handed_in
        else:
            counts["topics"].pop(code, None)
    uow.execute(update(table).where(*match).values(**_texts(counts)))


def _shown(slots: list[int]) -> list[Any] | None:
    approved, pending, returned = slots
    total = approved + pending + returned
    if total <= 0:
        return None
    return ["approved" if approved > 0 else "submitted" if pending > 0 else "returned", total]


def _empty() -> dict[str, Any]:
    return {"cells": {}, "topics": {}}


def no_standing() -> str:
    """The stored standing of a unit without any counted submission (what a rebuild leaves it: no row)."""
    return _dump(standing(_empty()))


def _texts(counts: dict[str, Any]) -> dict[str, str]:
    # A row's two columns, always written together: the standing is never stored apart from its counts.
    return {"counts": _dump(counts), "standing": _dump(standing(counts))}


def _dump(value: dict[str, Any]) -> str:
    # Sorted keys: a maintained row and a rebuilt one are the same text, not only the same JSON.
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
