"""API models of supervision (督办)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.http import UtcDateTime

Level = Literal["blue", "yellow", "red"]
Method = Literal["phone", "on_site", "interview"]
State = Literal["open", "responded", "closed"]


class SupervisionCreate(BaseModel):
    """Open a supervision by hand."""

    campaign_id: str = Field(min_length=1, max_length=36)
    unit_id: str = Field(min_length=1, max_length=36)
    level: Level
    method: Method
    reason: str = Field(min_length=1, max_length=5000)
    rectify_by: datetime | None = Field(
        None, description="rectification deadline; default: now + the campaign's rectify_days"
    )


class Respond(BaseModel):
    """The unit's answer: what it rectified."""

    response: str = Field(min_length=1, max_length=20_000)


class Close(BaseModel):
    """How the case ended."""

    outcome: str = Field(min_length=1, max_length=20_000)


class ChangeRead(BaseModel):
    """One step of a case, with the level and method after it."""

    model_config = ConfigDict(from_attributes=True)
    action: str
    level: str
    method: str
    actor: str
    note: str
    at: UtcDateTime


class SupervisionRead(BaseModel):
    """A supervision case."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    campaign_id: str
    unit_id: str
    unit_path: str
    rule: str
    subject_id: str | None
    level: str
    method: str
    reason: str
    state: str
    opened_by: str
    opened_at: UtcDateTime
    rectify_by: UtcDateTime | None
    escalations: int
    response: str | None
    responded_by: str | None
    responded_at: UtcDateTime | None
    outcome: str | None
    closed_by: str | None
    closed_at: UtcDateTime | None


class SupervisionDetail(SupervisionRead):
    """A case with its history."""

    changes: list[ChangeRead] = []


class RulesRunRead(BaseModel):
    """What a run of the supervision rules opened and escalated."""

    opened: list[SupervisionRead]
    escalated: list[SupervisionRead]
