"""Intake API models (pydantic), kept apart from the ORM."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

UnitLevel = Literal["city", "county", "township", "village", "member"]
SubmissionState = Literal["submitted", "approved", "returned", "rejected", "withdrawn"]


class LiaisonIn(BaseModel):
    """A liaison as designated by a unit."""

    name: str = Field(min_length=1, max_length=100)
    email: EmailStr


class UnitCreate(BaseModel):
    """A new unit with its liaison."""

    code: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    level: UnitLevel = "member"
    parent_id: str | None = None
    liaison: LiaisonIn


class UnitRead(BaseModel):
    """A unit as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    liaison_name: str
    liaison_email: str
    created_at: datetime


class SubmissionCreate(BaseModel):
    """A unit's report on one measure."""

    unit_id: str = Field(min_length=1, max_length=36)
    measure_code: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=20000)


class SubmissionRead(BaseModel):
    """A submission as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    unit_id: str
    measure_code: str
    title: str
    description: str
    state: str
    version: int
    review_comment: str | None
    created_at: datetime
    updated_at: datetime
