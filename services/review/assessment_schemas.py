"""API models of the assessment (考核) and circulars (通报)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.review.assessment import LEVEL_NAMES, Assessment, UnitResult, line_dict


class ScoreLine(BaseModel):
    """Points from one fact; they add up to the unit's total (deductions are negative)."""

    part: Literal["measures", "timeliness", "inspection", "deductions", "bonus"]
    item: str | None = Field(None, description="measure, deadline or inspection criterion code")
    points: float
    max_points: float
    source_type: Literal["submission", "inspection", "supervision", "liaison", "deadline"]
    source_id: str | None
    note: str


class Parts(BaseModel):
    """A unit's points by part: total = measures + timeliness + inspection − deductions + bonus."""

    measures: float
    timeliness: float
    inspection: float
    deductions: float
    bonus: float


class UnitScore(BaseModel):
    """One unit's assessment as of a moment, with its rank within its level."""

    unit_id: str
    code: str
    name: str
    level: str
    level_name: str
    rank: int
    level_size: int = Field(description="how many units the rank is counted among")
    total: float
    parts: Parts
    inspected: bool
    lines: list[ScoreLine]


class AssessmentRead(BaseModel):
    """A campaign's assessment as of a moment (a unit sees only its own subtree's rows)."""

    campaign_id: str
    campaign_name: str
    as_of: datetime
    max_total: float
    units: list[UnitScore]


def unit_score(unit: UnitResult, level_size: int) -> UnitScore:
    """A unit's result as the API shows it."""
    return UnitScore(unit_id=unit.unit_id, code=unit.code, name=unit.name, level=unit.level,
                     level_name=LEVEL_NAMES.get(unit.level, unit.level), rank=unit.rank, level_size=level_size,
                     total=unit.total, parts=Parts(**unit.parts), inspected=unit.inspected,
                     lines=[ScoreLine(**line_dict(line)) for line in unit.lines])


def level_sizes(result: Assessment) -> dict[str, int]:
    """How many units each level has."""
    sizes: dict[str, int] = {}
    for unit in result.units:
        sizes[unit.level] = sizes.get(unit.level, 0) + 1
    return sizes


class CircularCreate(BaseModel):
    """Make a (new revision of a) circular for a period from the assessment as of a moment."""

    campaign_id: str = Field(min_length=1, max_length=36)
    period: str = Field(min_length=4, max_length=32, description="2020-Q1, 2020-H1, 2020-03 or 2020")
    as_of: str | None = Field(None, max_length=40,
                              description="ISO date or datetime; default: the end of the period in the campaign's time zone")
    title: str | None = Field(None, min_length=1, max_length=300,
                              description="default: <活动名称><期别>工作情况通报, e.g. …第一季度工作情况通报")
    document_number: str | None = Field(None, min_length=1, max_length=100,
                                        description="文号; default: 宣传月通报〔<year>〕<n>号")


class CircularRead(BaseModel):
    """A circular and where its files are."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    campaign_id: str
    period: str
    revision: int
    title: str
    as_of: datetime
    state: Literal["draft", "published"]
    snapshot_sha256: str
    created_by: str
    created_at: datetime
    published_by: str | None
    published_at: datetime | None
    files: dict[str, str] = Field(default_factory=dict, description="download paths under /review")


class CircularVerification(BaseModel):
    """The stored snapshot re-hashed and compared with the recorded SHA-256."""

    circular_id: str
    ok: bool
    recorded_sha256: str
    actual_sha256: str | None
    message: str
