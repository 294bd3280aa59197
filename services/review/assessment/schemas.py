"""API models of the assessment (考核)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.review.assessment.scoring import LEVEL_NAMES, Assessment, UnitResult, line_dict


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
    as_of: datetime = Field(
        description="the moment used: the requested one, or now if that lies in the future"
    )
    as_of_clamped: bool = Field(False, description="the requested moment lay after now, so now was used")
    max_total: float
    units: list[UnitScore]


def unit_score(unit: UnitResult, level_size: int) -> UnitScore:
    """A unit's result as the API shows it."""
    return UnitScore(
        unit_id=unit.unit_id,
        code=unit.code,
        name=unit.name,
        level=unit.level,
        level_name=LEVEL_NAMES.get(unit.level, unit.level),
        rank=unit.rank,
        level_size=level_size,
        total=unit.total,
        parts=Parts(**unit.parts),
        inspected=unit.inspected,
        lines=[ScoreLine(**line_dict(line)) for line in unit.lines],
    )


def level_sizes(result: Assessment) -> dict[str, int]:
    """How many units each level has."""
    sizes: dict[str, int] = {}
    for unit in result.units:
        sizes[unit.level] = sizes.get(unit.level, 0) + 1
    return sizes
