"""Review API models."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EvidenceBrief(BaseModel):
    """Evidence as listed on a review item."""

    model_config = ConfigDict(from_attributes=True)
    evidence_id: str
    filename: str
    media_type: str
    size: int
    sha256: str


class ReviewItemRead(BaseModel):
    """A review queue entry."""

    model_config = ConfigDict(from_attributes=True)
    submission_id: str
    unit_id: str
    unit_path: str = ""
    measure_code: str
    title: str
    version: int
    state: str
    submitted_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    score: float | None
    evidence: list[EvidenceBrief] = []


class Approve(BaseModel):
    """Approve a submission version, optionally with a score and comment."""

    reviewer: str | None = Field(None, max_length=100, description="ignored: the decision is recorded under the logged-in reviewer")
    version: int | None = Field(None, ge=1, description="the version being decided; a stale one gives 409")
    score: float | None = Field(None, ge=0, le=100)
    comment: str | None = Field(None, max_length=5000)


class Return(BaseModel):
    """Return a submission for changes: a comment is required."""

    reviewer: str | None = Field(None, max_length=100, description="ignored: the decision is recorded under the logged-in reviewer")
    version: int | None = Field(None, ge=1)
    comment: str = Field(min_length=1, max_length=5000)


class Reject(BaseModel):
    """Reject a submission: a reason is required."""

    reviewer: str | None = Field(None, max_length=100, description="ignored: the decision is recorded under the logged-in reviewer")
    version: int | None = Field(None, ge=1)
    reason: str = Field(min_length=1, max_length=5000)


QueueState = Literal["pending", "approved", "returned", "rejected", "withdrawn"]
