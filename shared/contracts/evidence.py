"""Events published by the evidence_storage service."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


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


class TextMatch(_Payload):
    """A campaign keyword found in the recognised text, and the characters that matched it there."""

    keyword: str
    found: str  # as it stands in `text` (may differ from the keyword by OCR noise), to highlight
    exact: bool = True


class EvidenceTextRead(_Payload):
    """The evidence worker read the text of a photo (or a video's poster frame), or could not.

    finding: keywords_found, no_campaign_text (the measure expects campaign text and none was found), none (the
    measure names no keywords), unread (OCR not installed, or the photo could not be read). Nothing is refused.
    """

    EVENT_TYPE: ClassVar[str] = "evidence.text_read"
    evidence_id: str
    submission_id: str
    unit_id: str
    measure_code: str | None = None
    state: str = "read"  # read, failed, unavailable (OCR 未安装)
    finding: str = "none"
    text: str = ""
    matches: list[TextMatch] = []
    keywords: list[str] = []  # what the measure asked for
    note: str = ""  # why it is unread, in Chinese for the reviewer
    read_at: datetime | None = None
    lines: int = Field(0, ge=0)
