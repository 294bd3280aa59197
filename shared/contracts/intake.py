"""Events published by the intake service."""
from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LiaisonDesignated(_Payload):
    """A unit named (or changed) its liaison."""

    EVENT_TYPE: ClassVar[str] = "liaison.designated"
    unit_id: str
    unit_code: str
    unit_name: str
    liaison_name: str
    liaison_email: str


class SubmissionSubmitted(_Payload):
    """A unit handed in a submission (or a new version of it) for review."""

    EVENT_TYPE: ClassVar[str] = "submission.submitted"
    submission_id: str
    unit_id: str
    measure_code: str
    title: str
    version: int


class SubmissionWithdrawn(_Payload):
    """A unit took back a submission that was not yet reviewed."""

    EVENT_TYPE: ClassVar[str] = "submission.withdrawn"
    submission_id: str
    unit_id: str
    version: int
