"""Events published by the evidence_storage service."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EvidenceStored(_Payload):
    """A file was stored as evidence for a submission (claim check: key, size, checksum)."""

    EVENT_TYPE: ClassVar[str] = "evidence.stored"
    evidence_id: str
    submission_id: str
    unit_id: str
    object_key: str
    media_type: str
    size: int
    sha256: str
    filename: str
    category: str = ""  # photo, video, document
    captured_at: str | None = None  # as recorded in the file (EXIF, or the video's movie header)
    outside_window: bool | None = None  # captured outside the campaign's publicity window; None: unknown
    duplicate_of: list[str] = []  # evidence ids with the same SHA-256, in any unit or campaign
    near_duplicate_of: list[str] = []  # evidence ids of photos with a near-identical perceptual hash
    upload_path: str = ""  # stream, multipart, chunked, presigned


class EvidenceRejected(_Payload):
    """An upload was refused (bad type, too large, checksum mismatch)."""

    EVENT_TYPE: ClassVar[str] = "evidence.rejected"
    submission_id: str
    unit_id: str
    filename: str
    reason_code: str
    reason: str


class EvidenceLocked(_Payload):
    """Evidence of an approved submission is now locked as assessment proof."""

    EVENT_TYPE: ClassVar[str] = "evidence.locked"
    evidence_id: str
    submission_id: str
    object_key: str


class EvidenceDownloaded(_Payload):
    """Someone downloaded (or got a download link for) a piece of evidence; feeds the activity timeline."""

    EVENT_TYPE: ClassVar[str] = "evidence.downloaded"
    evidence_id: str
    submission_id: str
    unit_id: str
    filename: str
    actor: str
    actor_role: str = ""
    action: str = "download"  # download, download_url, export
    at: datetime | None = None
