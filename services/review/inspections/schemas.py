"""API models of sampling and inspections (抽查、检查)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.http import UtcDateTime

Share = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]


class SamplingCreate(BaseModel):
    """Propose whom to inspect: `size` of the campaign's participating units, optionally of one level."""

    campaign_id: str = Field(min_length=1, max_length=36)
    size: int = Field(ge=1, le=100_000)
    level: str | None = Field(
        None, max_length=32, description="only units of this level, e.g. county, member"
    )
    seed: int | None = Field(
        None, ge=0, le=2**63 - 1, description="repeat an earlier draw; omitted: a fresh random seed"
    )


class SampledUnit(BaseModel):
    """A unit drawn by a sampling."""

    unit_id: str
    code: str
    name: str
    level: str


class SamplingRead(BaseModel):
    """A stored draw: repeat it with `random.Random(seed).sample(population, size)`."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    campaign_id: str
    seed: int
    size: int
    level: str | None
    population: list[str] = Field(description="unit ids sorted by unit code, as drawn from")
    selected: list[str] = Field(description="unit ids drawn, in draw order")
    units: list[SampledUnit] = []
    reproduced: bool = Field(True, description="drawing again from population with seed gives selected")
    drawn_by: str
    drawn_at: UtcDateTime


class InspectionCreate(BaseModel):
    """A phone or on-site inspection of one unit, with its checklist and spot checks."""

    campaign_id: str = Field(min_length=1, max_length=36)
    unit_id: str = Field(min_length=1, max_length=36)
    sampling_id: str | None = Field(
        None, max_length=36, description="the sampling that drew this unit, if any"
    )
    method: Literal["phone", "on_site"]
    inspected_on: date = Field(description="must lie in the campaign's inspection window")
    measures_verified: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=200
    )
    residents_asked: Count = 0
    residents_aware: Count = 0
    residents_able: Count = 0
    staff_tested: Count = 0
    staff_proficient: Count = 0
    findings: str = Field("", max_length=20_000)
    problems: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=100
    )
    criteria: dict[Annotated[str, Field(max_length=64)], Share] = Field(
        default_factory=dict,
        description="shares (0..1) for rubric criteria the spot-check counts cannot score",
    )


class CriterionScoreRead(BaseModel):
    """Points an inspection earned on one rubric criterion, and how."""

    model_config = ConfigDict(from_attributes=True)
    code: str
    name: str
    points: float
    max_points: float
    note: str


class PhotoRead(BaseModel):
    """A photo (or other file) of the inspection, stored by evidence_storage."""

    model_config = ConfigDict(from_attributes=True)
    evidence_id: str
    filename: str
    media_type: str
    size: int
    sha256: str
    captured_at: str | None = None


class InspectionRead(BaseModel):
    """An inspection with its score breakdown, photos and the supervisions it opened."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    campaign_id: str
    unit_id: str
    unit_path: str
    sampling_id: str | None
    method: str
    inspected_on: date
    inspector: str
    measures_verified: list[str]
    residents_asked: int
    residents_aware: int
    residents_able: int
    staff_tested: int
    staff_proficient: int
    findings: str
    problems: list[str]
    criteria: dict[str, float]
    score: float | None = Field(
        description="inspection points under the campaign's rubric (None without a rubric)"
    )
    max_points: float | None = None
    scores: list[CriterionScoreRead] = []
    photos: list[PhotoRead] = []
    supervision_ids: list[str] = []
    recorded_at: UtcDateTime
