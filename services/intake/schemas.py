"""Intake API models (pydantic), kept apart from the ORM."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from services.intake.definition import CODE_PATTERN
from shared.http import UtcDateTime

UnitLevel = Literal["city", "county", "township", "village", "member"]
SubmissionKind = Literal["measure", "summary_report", "good_practice"]
SubmissionState = Literal[
    "draft", "submitted", "under_review", "approved", "returned", "rejected", "withdrawn"
]


class LiaisonIn(BaseModel):
    """A liaison as designated by a unit."""

    name: str = Field(min_length=1, max_length=100)
    email: EmailStr
    phone: str | None = Field(None, pattern=r"^[0-9+\- ()]{3,32}$")


class LiaisonRead(BaseModel):
    """One designation in a unit's liaison history."""

    model_config = ConfigDict(from_attributes=True)
    name: str
    email: str
    phone: str | None
    designated_at: UtcDateTime
    late: bool
    source: str


class UnitCreate(BaseModel):
    """A new unit, optionally inside a campaign's tree, with its liaison if already known."""

    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    level: UnitLevel = "member"
    parent_id: str | None = None
    campaign_id: str | None = Field(None, description="defaults to the parent's campaign")
    participates: bool = True
    liaison: LiaisonIn | None = None


class UnitRead(BaseModel):
    """A unit as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    campaign_id: str | None
    code: str
    name: str
    level: str
    parent_id: str | None
    unit_path: str
    participates: bool
    active: bool
    liaison_name: str | None
    liaison_email: str | None
    liaison_phone: str | None
    liaison_designated_at: UtcDateTime | None
    liaison_late: bool
    created_at: UtcDateTime


class SubmissionFields(BaseModel):
    """What a unit reports about an activity; every field optional (edits and resubmissions)."""

    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=20000)
    held_on: date | None = Field(None, description="the day the activity was held")
    place: str | None = Field(None, max_length=200)
    participants: int | None = Field(None, ge=0, le=10_000_000, description="people taking part or reached")
    topics: list[str] | None = Field(None, max_length=50, description="codes of the focus topics covered")


class SubmissionCreate(BaseModel):
    """A unit's report on one measure, a summary report, or a good practice."""

    unit_id: str = Field(min_length=1, max_length=36)
    campaign_id: str | None = Field(None, description="defaults to the unit's campaign")
    kind: SubmissionKind = "measure"
    measure_code: str | None = Field(None, pattern=CODE_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=20000)
    held_on: date | None = None
    place: str = Field("", max_length=200)
    participants: int | None = Field(None, ge=0, le=10_000_000)
    topics: list[str] = Field(default_factory=list, max_length=50)
    submit: bool = Field(True, description="false keeps it as a draft")


class EvidenceRef(BaseModel):
    """Evidence stored for a submission (download it from evidence_storage)."""

    model_config = ConfigDict(from_attributes=True)
    evidence_id: str
    kind: str
    media_type: str
    filename: str
    size: int
    sha256: str


class EvidenceStatus(BaseModel):
    """The evidence a submission has against what its measure requires."""

    required_count: int
    accepted_kinds: list[str]
    count: int
    satisfied: bool


class SubmissionRead(BaseModel):
    """A submission as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    campaign_id: str | None
    unit_id: str
    unit_path: str
    kind: str
    measure_code: str
    title: str
    description: str
    held_on: date | None
    place: str
    participants: int | None
    topics: list[str]
    outside_window: bool
    late: bool
    state: str
    version: int
    review_comment: str | None
    submitted_at: UtcDateTime | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    evidence: list[EvidenceRef] = []
    evidence_status: EvidenceStatus | None = None
    upload_grant: str | None = Field(
        None,
        description=(
            "已提交的材料：短期有效的上传凭据，随 X-Upload-Grant 头发给佐证服务，可立即上传 · for a handed-in submission: "
            "a short-lived grant to send as X-Upload-Grant to evidence_storage, so an upload right after create succeeds"
        ),
    )


class SubmissionVersionRead(BaseModel):
    """One version of a submission as it was handed in, and how it ended."""

    model_config = ConfigDict(from_attributes=True)
    version: int
    title: str
    description: str
    held_on: date | None
    place: str
    participants: int | None
    topics: list[str]
    submitted_at: UtcDateTime
    outcome: str | None
    review_comment: str | None
    decided_at: UtcDateTime | None


class CampaignRead(BaseModel):
    """A campaign's current version, with its normalised definition."""

    id: str
    code: str
    name: str
    organiser: str
    timezone: str
    version: int
    definition_sha256: str
    publicity_start: date
    publicity_end: date
    inspection_start: date | None
    inspection_end: date | None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    definition: dict | None = None


class CampaignLoaded(BaseModel):
    """What loading a definition did."""

    campaign_id: str
    code: str
    name: str
    version: int
    outcome: Literal["created", "unchanged", "new_version"]
    sha256: str
    units_created: int = 0
    units_updated: int = 0
    units_retired: int = 0
    liaisons_designated: int = 0
    message: str


class CampaignVersionRead(BaseModel):
    """One published version of a definition."""

    model_config = ConfigDict(from_attributes=True)
    version: int
    sha256: str
    source_format: str
    created_at: UtcDateTime
    created_by: str | None
    source_text: str | None = None


class CampaignChangeRead(BaseModel):
    """One audited change to a campaign."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    version: int
    action: str
    actor: str | None
    summary: dict
    at: UtcDateTime


class MaterialRead(BaseModel):
    """A reference material of a campaign."""

    model_config = ConfigDict(from_attributes=True)
    code: str
    title: str
    description: str
    declared: bool
    uploaded: bool
    filename: str | None
    media_type: str | None
    size: int | None
    sha256: str | None
    uploaded_at: UtcDateTime | None
    download_path: str | None = None


class CoverageCell(BaseModel):
    """One unit's standing on one measure (or its summary report)."""

    state: Literal["missing", "submitted", "returned", "approved"]
    colour: Literal["green", "yellow", "red"]
    count: int


class CoverageLiaison(BaseModel):
    """Whether the unit named its liaison, and in time."""

    status: Literal["designated", "late", "missing"]
    colour: Literal["green", "yellow", "red"]
    name: str | None = None


class CoverageUnit(BaseModel):
    """One row of the coverage matrix."""

    unit_id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    unit_path: str
    liaison: CoverageLiaison
    cells: dict[str, CoverageCell]
    summary_report: CoverageCell
    good_practices: int
    topics_covered: list[str]
    topics_missing: list[str]


class CoverageColumn(BaseModel):
    """A measure column with the deadline that colours it."""

    code: str
    name: str
    deadline_code: str | None
    due_at: UtcDateTime | None


class CoverageRead(BaseModel):
    """Units x measures for a campaign (or a unit subtree), as of a moment."""

    campaign_id: str
    code: str
    version: int
    as_of: UtcDateTime
    colour_rule: str
    measures: list[CoverageColumn]
    topics: list[dict]
    units: list[CoverageUnit]
    totals: dict


class CoverageCompact(BaseModel):
    """The coverage matrix with one array per unit (see `columns`): `cells` is one letter per measure in `measures`
    order (a approved, s submitted, r returned, m missing), coloured by `colours[measure][letter]`; `counts` the
    submissions per measure; `topics` one 0/1 per topic in `topics` order."""

    campaign_id: str
    code: str
    version: int
    as_of: datetime
    colour_rule: str
    measures: list[CoverageColumn]
    topics: list[dict]
    columns: list[str]
    letters: dict[str, str]
    colours: dict[str, dict[str, str]]
    summary_colours: dict[str, str]
    liaison_colours: dict[str, str]
    units: list[list]
    totals: dict


class CoverageGroup(BaseModel):
    """Units of one level or one district, with their cells counted by state and colour."""

    level: str | None = None
    unit_id: str | None = None
    name: str | None = None
    units: int
    cells: dict[str, int]
    colours: dict[str, int]
    liaisons: dict[str, int]
    summary_reports: dict[str, int]


class CoverageRollup(BaseModel):
    """A campaign's coverage added up per unit level and per district (the subtrees under the top unit's children)."""

    campaign_id: str
    code: str
    version: int
    as_of: datetime
    units: int
    measures: list[str]
    levels: list[CoverageGroup]
    districts: list[CoverageGroup]
