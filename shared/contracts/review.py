"""Events published by the review service."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Decision(_Payload):
    submission_id: str
    unit_id: str
    measure_code: str
    title: str
    version: int
    reviewer: str
    comment: str | None = None
    decided_at: datetime | None = None  # the review clock; consumers fall back to occurred_at


class SubmissionApproved(_Decision):
    """A reviewer approved a submission version."""

    EVENT_TYPE: ClassVar[str] = "submission.approved"
    score: float | None = None


class SubmissionReturned(_Decision):
    """A reviewer returned a submission for changes (comment required)."""

    EVENT_TYPE: ClassVar[str] = "submission.returned"


class SubmissionRejected(_Decision):
    """A reviewer rejected a submission (reason required, carried as comment)."""

    EVENT_TYPE: ClassVar[str] = "submission.rejected"


class SubmissionClaimed(_Payload):
    """A reviewer took a submission version to review (intake shows it as under review)."""

    EVENT_TYPE: ClassVar[str] = "submission.claimed"
    submission_id: str
    unit_id: str
    version: int
    reviewer: str


class SubmissionReleased(_Payload):
    """A reviewer gave a claimed version back to the queue without deciding it."""

    EVENT_TYPE: ClassVar[str] = "submission.released"
    submission_id: str
    unit_id: str
    version: int
    reviewer: str


DECISIONS: dict[str, type[_Decision]] = {
    model.EVENT_TYPE: model for model in (SubmissionApproved, SubmissionReturned, SubmissionRejected)
}


class InspectionRecorded(_Payload):
    """An inspector recorded a phone or on-site inspection (检查) of a unit."""

    EVENT_TYPE: ClassVar[str] = "inspection.recorded"
    inspection_id: str
    unit_id: str
    campaign_id: str | None = None
    method: str  # phone, on_site
    inspected_on: date
    inspector: str
    measures_verified: list[str] = []
    residents_asked: int = 0
    residents_aware: int = 0
    residents_able: int = 0
    staff_tested: int = 0
    staff_proficient: int = 0
    findings: str = ""
    problems: list[str] = []  # each problem found; many of them open a supervision (SupervisionRules)
    score: float | None = None  # inspection points awarded under the campaign's rubric


class _Supervision(_Payload):
    supervision_id: str
    unit_id: str
    campaign_id: str | None = None
    level: str  # blue, yellow, red
    method: str  # phone, on_site, interview (约谈)
    reason: str
    rectify_by: datetime | None = None


class SupervisionOpened(_Supervision):
    """A lagging unit is formally chased (督办)."""

    EVENT_TYPE: ClassVar[str] = "supervision.opened"


class SupervisionEscalated(_Supervision):
    """The rectification deadline passed; the supervision moved up a level."""

    EVENT_TYPE: ClassVar[str] = "supervision.escalated"


class SupervisionResponded(_Supervision):
    """The supervised unit answered with its rectification report."""

    EVENT_TYPE: ClassVar[str] = "supervision.responded"
    response: str = ""


class SupervisionClosed(_Supervision):
    """A supervision ended with an outcome."""

    EVENT_TYPE: ClassVar[str] = "supervision.closed"
    outcome: str = ""


class CircularPublished(_Payload):
    """A circular (通报) for a period was published; its files are in the blob store."""

    EVENT_TYPE: ClassVar[str] = "circular.published"
    circular_id: str
    campaign_id: str
    period: str
    title: str
    docx_key: str
    xlsx_key: str
    snapshot_sha256: str
