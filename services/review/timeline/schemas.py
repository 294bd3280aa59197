"""API models of the activity timeline: records with their place in the hash chain, and verification."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class TimelineRecordRead(BaseModel):
    """One record of the activity timeline, with its place in the hash chain."""

    model_config = ConfigDict(from_attributes=True)
    seq: int
    at: datetime
    actor: str
    actor_role: str
    kind: str
    unit_id: str | None
    submission_id: str | None
    subject_type: str
    subject_id: str
    detail: dict[str, Any]
    hash: str
    prev_hash: str


class TimelineProblem(BaseModel):
    """One break in the chain found by verify."""

    seq: int | None
    code: str
    message: str


class TimelineVerification(BaseModel):
    """The result of verifying the whole chain."""

    ok: bool
    records: int
    problems: list[TimelineProblem]
