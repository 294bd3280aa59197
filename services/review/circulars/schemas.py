"""API models of circulars (通报)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CircularCreate(BaseModel):
    """Make a (new revision of a) circular for a period from the assessment as of a moment."""

    campaign_id: str = Field(min_length=1, max_length=36)
    period: str = Field(min_length=4, max_length=32, description="2020-Q1, 2020-H1, 2020-03 or 2020")
    as_of: str | None = Field(
        None,
        max_length=40,
        description=(
            "ISO date (the end of that day) or datetime, campaign time; default: the end of the period. As for "
            "GET /assessment, a moment after now means now (the circular's as_of is the moment used)"
        ),
    )
    title: str | None = Field(
        None,
        min_length=1,
        max_length=300,
        description="default: <活动名称><期别>工作情况通报, e.g. …第一季度工作情况通报",
    )
    document_number: str | None = Field(
        None, min_length=1, max_length=100, description="文号; default: 宣传月通报〔<year>〕<n>号"
    )


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
