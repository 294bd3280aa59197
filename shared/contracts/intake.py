"""Events published by the intake service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MeasureInfo(_Payload):
    """A measure (宣传措施) as other services need it."""

    code: str
    name: str
    min_evidence: int = 1
    accepted_kinds: list[str] = ["photo", "video", "document"]
    weight: float = 1.0
    text_keywords: list[str] = []  # words the text in its photos should carry (OCR in the evidence worker)
    expects_text: bool = False  # photos without any keyword get the finding no_campaign_text


class DeadlineInfo(_Payload):
    """A deadline of a campaign (e.g. liaison designation, summary report)."""

    code: str
    name: str
    due_at: datetime


class ReferenceMaterialInfo(_Payload):
    """A reference material (参考资料) the office hands to units, e.g. slogans or a leaflet."""

    code: str = ""
    title: str
    url: str = ""  # absolute, or a path under PUBLIC_BASE_URL; empty: the campaign's materials page


class CampaignPublished(_Payload):
    """A campaign definition (or a new version of it) was published."""

    EVENT_TYPE: ClassVar[str] = "campaign.published"
    campaign_id: str
    code: str
    name: str
    version: int
    organiser: str = ""
    publicity_start: date
    publicity_end: date
    inspection_start: date | None = None
    inspection_end: date | None = None
    measures: list[MeasureInfo] = []
    topics: list[dict[str, Any]] = []
    deadlines: list[DeadlineInfo] = []
    definition_sha256: str = ""
    plan_url: str = ""  # absolute, or a path under PUBLIC_BASE_URL; empty: the campaign's own page
    reference_materials: list[ReferenceMaterialInfo] = []
    timezone: str = "Asia/Shanghai"
    rubric: dict[str, Any] | None = (
        None  # the definition's `rubric` section as JSON (services/intake/definition.py Rubric)
    )
    supervision_rules: dict[
        str, Any
    ] = {}  # the definition's `supervision` section as JSON (SupervisionRules)
    circular_rules: dict[str, Any] = {}  # the definition's `circular` section as JSON (CircularRules)
    channel_rules: dict[str, Any] = {}  # the definition's `channels` section as JSON (ChannelRules)


class UnitRegistered(_Payload):
    """A unit joined the unit tree; unit_path is the materialised path of unit ids from the root."""

    EVENT_TYPE: ClassVar[str] = "unit.registered"
    unit_id: str
    code: str
    name: str
    level: str
    parent_id: str | None = None
    unit_path: str = ""
    campaign_id: str | None = None
    participates: bool = True  # False: in the tree (e.g. the organising office) but not assessed


class LiaisonDesignated(_Payload):
    """A unit named (or changed) its liaison."""

    EVENT_TYPE: ClassVar[str] = "liaison.designated"
    unit_id: str
    unit_code: str
    unit_name: str
    liaison_name: str
    liaison_email: str
    late: bool = False
    unit_path: str = ""
    designated_at: datetime | None = None  # when the unit named the liaison (the intake clock)


class SubmissionSubmitted(_Payload):
    """A unit handed in a submission (or a new version of it) for review."""

    EVENT_TYPE: ClassVar[str] = "submission.submitted"
    submission_id: str
    unit_id: str
    measure_code: str
    title: str
    version: int
    kind: str = "measure"  # measure, summary_report, good_practice
    campaign_id: str | None = None
    unit_path: str = ""
    held_on: date | None = None
    outside_window: bool = False
    topics: list[str] = []
    submitted_at: datetime | None = (
        None  # when handed in (the intake clock); consumers fall back to occurred_at
    )
    late: bool = False


class SubmissionWithdrawn(_Payload):
    """A unit took back a submission that was not yet reviewed."""

    EVENT_TYPE: ClassVar[str] = "submission.withdrawn"
    submission_id: str
    unit_id: str
    version: int


class _DeadlineEvent(_Payload):
    campaign_id: str
    deadline_code: str
    deadline_name: str
    due_at: datetime
    unit_id: str
    missing: list[str] = []  # human-readable items still missing, e.g. measure names


class DeadlineApproaching(_DeadlineEvent):
    """A deadline is near and the unit still misses something (once per unit, deadline and lead time)."""

    EVENT_TYPE: ClassVar[str] = "deadline.approaching"
    lead: str  # ISO-8601 duration of the lead time that fired, e.g. "P3D"


class DeadlineMissed(_DeadlineEvent):
    """A deadline passed and the unit still misses something (once per unit and deadline)."""

    EVENT_TYPE: ClassVar[str] = "deadline.missed"
