"""The coverage projection: per-cell and per-topic counters kept in the submission's own transaction.

Every submission state change passes submissions._set_state, and every change of its topics passes
submissions._write_topics; both call in here with the before and after, so the counters in coverage_cells and
coverage_topics move with the submission, atomically (an upsert that adds the difference, so concurrent writers
on PostgreSQL add up instead of overwriting each other). `rebuild` recomputes both tables from submissions
(`python -m services.intake.cli rebuild-coverage`); tests/intake/test_coverage_projection.py checks that a
rebuild equals what the changes maintained. Migration 0002 filled the tables for databases from before them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from services.intake.models import CoverageCell, CoverageTopic, Submission, SubmissionTopic
from shared.db import rows_affected

log = logging.getLogger(__name__)

# Which counter a submission in each state adds to; other states (draft, withdrawn, rejected) show as nothing.
BUCKET = {"approved": "approved", "submitted": "pending", "under_review": "pending", "returned": "returned"}
HANDED_IN = ("submitted", "under_review", "approved")


def state_changed(uow: Session, submission: Submission, before: str | None, after: str) -> None:
    """Move the submission's counts from its old state to its new one (cell and topics)."""
    if submission.campaign_id is None or before == after:
        return
    old, new = BUCKET.get(before or ""), BUCKET.get(after)
    if old != new:
        deltas = dict.fromkeys(("approved", "pending", "returned"), 0)
        if old:
            deltas[old] -= 1
        if new:
            deltas[new] += 1
        _add_cell(uow, submission, deltas)
    was, now = before in HANDED_IN, after in HANDED_IN
    if was != now:
        _add_topics(uow, submission, submission.topics or [], 1 if now else -1)


def topics_changed(uow: Session, submission: Submission, before: Iterable[str], after: Iterable[str]) -> None:
    """Move topic counts when a handed-in submission's topics change (a draft's topics count for nothing yet)."""
    if submission.campaign_id is None or submission.state not in HANDED_IN:
        return
    before, after = set(before), set(after)
    _add_topics(uow, submission, sorted(before - after), -1)
    _add_topics(uow, submission, sorted(after - before), 1)


def rebuild(uow: Session, campaign_id: str | None = None) -> tuple[int, int]:
    """Recompute the projection from submissions (one campaign, or all); returns (cells, topic rows) written."""
    cells, topics = CoverageCell.__table__, CoverageTopic.__table__
    cell_filter: list[ColumnElement[bool]] = [cells.c.campaign_id == campaign_id] if campaign_id else []
    topic_filter: list[ColumnElement[bool]] = [topics.c.campaign_id == campaign_id] if campaign_id else []
    uow.execute(delete(cells).where(*cell_filter))
    uow.execute(delete(topics).where(*topic_filter))
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
    written_cells = rows_affected(
        uow.execute(
            insert(cells).from_select(
                ["campaign_id", "unit_id", "kind", "measure_code", "approved", "pending", "returned"], grouped
            )
        )
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
    written_topics = rows_affected(
        uow.execute(
            insert(topics).from_select(["campaign_id", "unit_id", "topic_code", "handed_in"], grouped_topics)
        )
    )
    log.info(
        "coverage projection rebuilt for %s: %s cells, %s topic rows",
        campaign_id or "every campaign",
        written_cells,
        written_topics,
    )
    return written_cells, written_topics


def _add_cell(uow: Session, submission: Submission, deltas: dict[str, int]) -> None:
    key = {
        "campaign_id": submission.campaign_id,
        "unit_id": submission.unit_id,
        "kind": submission.kind,
        "measure_code": submission.measure_code or "",
    }
    _upsert(uow, CoverageCell.__table__, key, deltas)


def _add_topics(uow: Session, submission: Submission, codes: Iterable[str], delta: int) -> None:
    for code in codes:
        key = {"campaign_id": submission.campaign_id, "unit_id": submission.unit_id, "topic_code": code}
        _upsert(uow, CoverageTopic.__table__, key, {"handed_in": delta})


def _upsert(uow: Session, table, key: dict, deltas: dict[str, int]) -> None:
    """INSERT the deltas as counts, or add them to the existing row (PostgreSQL and SQLite both say ON CONFLICT)."""
    dialect_insert = postgresql.insert if uow.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(table).values(**key, **deltas)
    statement = statement.on_conflict_do_update(
        index_elements=list(key), set_={name: table.c[name] + statement.excluded[name] for name in deltas}
    )
    uow.execute(statement)
