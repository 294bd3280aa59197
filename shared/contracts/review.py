"""Events published by the review service."""
from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class _Decision(BaseModel):
    model_config = ConfigDict(extra="ignore")
    submission_id: str
    unit_id: str
    measure_code: str
    title: str
    version: int
    reviewer: str
    comment: str | None = None


class SubmissionApproved(_Decision):
    """A reviewer approved a submission version."""

    EVENT_TYPE: ClassVar[str] = "submission.approved"
    score: float | None = None


class SubmissionReturned(_Decision):
    """A reviewer returned a submission for changes (comment required)."""

    EVENT_TYPE: ClassVar[str] = "submission.returned"


class SubmissionRejected(_Decision):
    """A reviewer rejected a submission (reason required, carried as comment)."""

    EVENT_TYPE: ClassVar[str] = "submission.rejected"


DECISIONS: dict[str, type[_Decision]] = {
    model.EVENT_TYPE: model for model in (SubmissionApproved, SubmissionReturned, SubmissionRejected)
}
