"""Evidence API models."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class EvidenceRead(BaseModel):
    """A stored evidence file as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    submission_id: str
    unit_id: str
    filename: str
    media_type: str
    category: str
    size: int
    sha256: str
    locked: bool
    created_at: datetime
