"""Review's event handlers: project other services' facts, fill the queue, and write the timeline."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import cast

from sqlalchemy import Insert, Select, Table, bindparam, exists, insert, select, update
from sqlalchemy.orm import Session

from services.review.models import (
    Inspection,
    ReviewCampaign,
    ReviewDuplicate,
    ReviewEvidence,
    ReviewEvidenceText,
    ReviewItem,
    ReviewUnit,
    ReviewVersion,
)
from services.review.timeline import chain as timeline
from shared.clock import as_utc
from shared.contracts import read_payload
from shared.contracts.evidence import EvidenceDownloaded, EvidenceStored, EvidenceTextRead
from shared.contracts.intake import (
    CampaignPublished,
    LiaisonDesignated,
    SubmissionSubmitted,
    SubmissionWithdrawn,
    UnitRegistered,
)
from shared.db import insert_values, rows_affected
from shared.events import Envelope
from shared.runtime import ServiceContext

SERVICE = "review"
SYSTEM = "system"


def _when(stated: datetime | None, event: Envelope) -> datetime:
    return stated or event.occurred_at


def project_campaign(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Keep the newest published version of a campaign: windows, measures, deadlines, rubric and rules."""
    data = read_payload(CampaignPublished, event)
    row = uow.get(ReviewCampaign, data.campaign_id)
    if row is not None and row.version > data.version:
        return
    if row is None:
        row = ReviewCampaign(campaign_id=data.campaign_id)
        uow.add(row)
    row.code, row.name, row.organiser, row.version = data.code, data.name, data.organiser, data.version
    row.timezone = data.timezone
    row.publicity_start, row.publicity_end = data.publicity_start, data.publicity_end
    row.inspection_start, row.inspection_end = data.inspection_start, data.inspection_end
    row.measures = [m.model_dump(mode="json") for m in data.measures]
    row.deadlines = [d.model_dump(mode="json") for d in data.deadlines]
    row.rubric, row.supervision_rules, row.circular_rules = (
        data.rubric,
        data.supervision_rules,
        data.circular_rules,
    )


def project_unit(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Keep a unit's name, level and path; a new path moves the unit's review items along."""
    data = read_payload(UnitRegistered, event)
    row = uow.get(ReviewUnit, data.unit_id)
    if row is None:
        row = ReviewUnit(unit_id=data.unit_id)
        uow.add(row)
    row.campaign_id, row.code, row.name, row.level = data.campaign_id, data.code, data.name, data.level
    row.parent_id, row.participates = data.parent_id, data.participates
    if data.unit_path:
        row.unit_path = data.unit_path
        uow.execute(
            update(ReviewItem)
            .where(ReviewItem.unit_id == data.unit_id, ReviewItem.unit_path != data.unit_path)
            .values(unit_path=data.unit_path)
        )


def project_liaison(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Remember when a unit first named its liaison (timeliness of the liaison deadline)."""
    data = read_payload(LiaisonDesignated, event)
    at = _when(data.designated_at, event)
    row = uow.get(ReviewUnit, data.unit_id)
    if row is None:  # liaison before the unit's own event: keep the time, the rest follows
        row = ReviewUnit(
            unit_id=data.unit_id, code=data.unit_code, name=data.unit_name, level="", unit_path=data.unit_path
        )
        uow.add(row)
    if row.liaison_designated_at is None or at < as_utc(row.liaison_designated_at):
        row.liaison_designated_at = at
        timeline.append(
            uow,
            at=at,
            actor=data.liaison_name,
            actor_role="unit",
            kind="liaison.designated",
            subject_type="unit",
            subject_id=data.unit_id,
            unit_id=data.unit_id,
            detail={"liaison": data.liaison_name, "late": data.late},
        )


def _queue_state(uow: Session, submission_id: str, version: int) -> tuple[bool, int | None]:
    """Whether this version of the submission is recorded, and the version its review item holds (None: no item)."""
    known, queued = uow.execute(_lookup(), {"sid": submission_id, "v": version}).one()
    return bool(known), queued


@functools.cache
def _lookup() -> Select:
    # Both answers in one statement (a round trip fewer for every submission handed in).
    versions, items = cast(Table, ReviewVersion.__table__), cast(Table, ReviewItem.__table__)
    known = exists().where(versions.c.submission_id == bindparam("sid"), versions.c.version == bindparam("v"))
    queued = select(items.c.version).where(items.c.submission_id == bindparam("sid")).scalar_subquery()
    return select(known.label("known"), queued.label("queued"))


@functools.cache
def _inserts() -> tuple[Insert, Insert]:
    return insert(cast(Table, ReviewVersion.__table__)), insert(cast(Table, ReviewItem.__table__))


def enqueue_submission(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Put a (re)submitted version in the review queue and record when it was handed in."""
    data = read_payload(SubmissionSubmitted, event)
    at = _when(data.submitted_at, event)
    version_known, queued_version = _queue_state(uow, data.submission_id, data.version)
    common = dict(
        submission_id=data.submission_id,
        unit_id=data.unit_id,
        campaign_id=data.campaign_id,
        measure_code=data.measure_code,
        kind=data.kind,
        submitted_at=at,
    )
    # A new version's rows go in as plain inserts: most events are a first version, and the ORM's reads and unit of
    # work cost several times the statements here.
    if not version_known:
        uow.execute(_inserts()[0], insert_values(**common, version=data.version, late=data.late))
    if queued_version is None:
        uow.execute(
            _inserts()[1],
            insert_values(
                **common,
                unit_path=data.unit_path,
                title=data.title,
                version=data.version,
                state="pending",
                outside_window=data.outside_window,
            ),
        )
    elif data.version > queued_version:
        item = uow.get(ReviewItem, data.submission_id)
        assert item is not None  # _queue_state just found it, under this transaction
        item.version, item.title, item.state, item.submitted_at = data.version, data.title, "pending", at
        item.unit_path = data.unit_path or item.unit_path
        item.outside_window = data.outside_window
        item.decided_by = item.decided_at = item.comment = item.score = None
        item.claimed_by = item.claimed_at = None
    else:
        return  # a redelivery of a version already queued
    timeline.append(
        uow,
        at=at,
        actor=SYSTEM,
        actor_role="unit",
        kind="submission.submitted",
        subject_type="submission",
        subject_id=data.submission_id,
        unit_id=data.unit_id,
        submission_id=data.submission_id,
        detail={
            "version": data.version,
            "measure_code": data.measure_code,
            "title": data.title,
            "late": data.late,
            "outside_window": data.outside_window,
        },
    )


def attach_text(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Keep the text read in a photo and its finding (a later reading of the same photo replaces it)."""
    data = read_payload(EvidenceTextRead, event)
    row = uow.get(ReviewEvidenceText, data.evidence_id)
    if row is None:
        row = ReviewEvidenceText(evidence_id=data.evidence_id)
        uow.add(row)
    elif row.read_at and data.read_at and as_utc(row.read_at) > as_utc(data.read_at):
        return  # an older reading delivered late
    row.submission_id, row.state, row.finding = data.submission_id, data.state, data.finding
    row.text, row.note, row.read_at = data.text, data.note, data.read_at
    row.matches = [m.model_dump() for m in data.matches]
    row.keywords = list(data.keywords)


def attach_evidence(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Show newly stored evidence, with its flags, on its review item (or inspection)."""
    data = read_payload(EvidenceStored, event)
    if uow.get(ReviewEvidence, data.evidence_id) is not None:
        return
    uow.add(
        ReviewEvidence(
            evidence_id=data.evidence_id,
            submission_id=data.submission_id,
            unit_id=data.unit_id,
            filename=data.filename,
            media_type=data.media_type,
            category=data.category,
            size=data.size,
            sha256=data.sha256,
            captured_at=data.captured_at,
            outside_window=data.outside_window,
            duplicate_of=list(data.duplicate_of),
            near_duplicate_of=list(data.near_duplicate_of),
        )
    )
    linked: set[str] = set()
    for match, others in (("exact", data.duplicate_of), ("near", data.near_duplicate_of)):
        for other in dict.fromkeys(
            others
        ):  # the earlier file shows the link too (services/review/queue/use_cases.py)
            if other not in linked:
                linked.add(other)
                uow.add(ReviewDuplicate(evidence_id=data.evidence_id, other_id=other, match=match))
    inspection = uow.get(Inspection, data.submission_id) is not None  # an inspector's photo of an inspection
    timeline.append(
        uow,
        at=event.occurred_at,
        actor=SYSTEM,
        kind="evidence.stored",
        subject_type="inspection" if inspection else "submission",
        subject_id=data.submission_id,
        unit_id=data.unit_id,
        submission_id=None if inspection else data.submission_id,
        detail={
            "evidence_id": data.evidence_id,
            "filename": data.filename,
            "sha256": data.sha256,
            "outside_window": data.outside_window,
            "duplicate_of": list(data.duplicate_of),
            "near_duplicate_of": list(data.near_duplicate_of),
        },
    )


def record_download(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Put a download of evidence on the timeline."""
    data = read_payload(EvidenceDownloaded, event)
    timeline.append(
        uow,
        at=_when(data.at, event),
        actor=data.actor,
        actor_role=data.actor_role,
        kind=f"evidence.{data.action}",
        subject_type="submission",
        subject_id=data.submission_id,
        unit_id=data.unit_id,
        submission_id=data.submission_id,
        detail={"evidence_id": data.evidence_id, "filename": data.filename},
    )


def withdraw(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Take a withdrawn version out of the queue."""
    data = read_payload(SubmissionWithdrawn, event)
    result = uow.execute(
        update(ReviewItem)
        .where(
            ReviewItem.submission_id == data.submission_id,
            ReviewItem.version == data.version,
            ReviewItem.state == "pending",
        )
        .values(state="withdrawn", claimed_by=None, claimed_at=None)
    )
    if rows_affected(result):
        timeline.append(
            uow,
            at=event.occurred_at,
            actor=SYSTEM,
            actor_role="unit",
            kind="submission.withdrawn",
            subject_type="submission",
            subject_id=data.submission_id,
            unit_id=data.unit_id,
            submission_id=data.submission_id,
            detail={"version": data.version},
        )
