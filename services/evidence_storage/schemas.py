"""Evidence API models."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.bounds import MAX_BYTES, MAX_INT32
from shared.http import UtcDateTime


class DuplicateRead(BaseModel):
    """Another evidence file this one repeats (or that repeats it): exact bytes, or a near-identical photo."""

    model_config = ConfigDict(from_attributes=True)
    evidence_id: str
    match: Literal["exact", "near"]
    distance: int = Field(description="Hamming distance of the photo hashes (0 for exact)")
    came_first: Literal["this", "other"] = Field(
        description="Which of the two was stored first: 'other' means this file repeats an earlier one (the copy); "
        "'this' means a later upload repeats this one (this is the original)"
    )
    other_uploaded_at: UtcDateTime | None = Field(None, description="When the other file was stored")
    other_unit_id: str | None = Field(
        None, description="The other file's unit (omitted when the caller may not see it)"
    )
    other_unit_name: str | None = None
    other_submission_id: str | None = None
    same_unit: bool = Field(False, description="Both files belong to the same unit")


class RenditionRead(BaseModel):
    """The web-playable H.264/AAC copy of a video browsers cannot play as uploaded (the original stays the proof)."""

    model_config = ConfigDict(from_attributes=True)
    state: Literal["pending", "rendering", "ready", "failed"]
    media_type: str = "video/mp4"
    size: int | None = None
    sha256: str | None = Field(
        None, description="SHA-256 of the copy (the original's is the evidence's sha256)"
    )
    note: str | None = Field(None, description="Why making the copy failed")
    finished_at: UtcDateTime | None = None


class EvidenceRead(BaseModel):
    """A stored evidence file as the API shows it, with what inspection found."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    submission_id: str
    unit_id: str
    campaign_id: str | None = None
    measure_code: str | None = None
    filename: str = Field(description="The uploader's filename, for display only (sanitised)")
    media_type: str = Field(description="Judged from the bytes, never from the name or declared type")
    category: str
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    captured_at: str | None = Field(
        None, description="Capture time as recorded in the file (EXIF, or the video's header)"
    )
    captured_on: date | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    outside_window: bool | None = Field(
        None, description="Captured outside the campaign's publicity window (None: unknown)"
    )
    has_preview: bool = False
    preview_note: str | None = Field(None, description="Why there is no preview, e.g. ffmpeg not available")
    video_codec: str | None = Field(
        None, description="The video's codec as ffmpeg names it (h264, hevc, mpeg4...)"
    )
    audio_codec: str | None = None
    rendition: RenditionRead | None = Field(
        None,
        description="A video browsers cannot play gets a web-playable copy made by the worker: "
        "`/content?variant=web` serves it once ready",
    )
    upload_path: str
    uploaded_by: str | None = None
    locked: bool
    locked_at: UtcDateTime | None = None
    retention: str = Field(
        description="Store-level retention: none, pending, applied, unsupported (the API refuses deletion regardless)"
    )
    retained_until: UtcDateTime | None = None
    duplicates: list[DuplicateRead] = []
    created_at: UtcDateTime


class SessionCreate(BaseModel):
    """A new upload session: chunked (through the API, resumable) or presigned (straight to S3)."""

    mode: Literal["chunked", "presigned"] = "chunked"
    filename: str | None = Field(None, max_length=1000)
    size: int = Field(gt=0, le=MAX_BYTES, description="Exact size of the whole file in bytes")
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$", description="If given, checked on completion"
    )
    content_type: str | None = Field(
        None, max_length=200, description="Required for presigned: the file's media type"
    )


class PresignedForm(BaseModel):
    """POST these fields and the file (as the last field, named `file`) as multipart/form-data to url."""

    url: str
    fields: dict[str, str]
    expires_at: UtcDateTime | None = None


class SessionRead(BaseModel):
    """An upload session and how far it got."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    mode: str
    submission_id: str
    filename: str
    size: int
    received: int
    state: str
    media_type: str | None = None
    evidence_id: str | None = None
    error: dict | None = None
    expires_at: UtcDateTime
    min_chunk_bytes: int = 1
    presigned: PresignedForm | None = None


class CompleteRequest(BaseModel):
    """Optionally the SHA-256 the client computed, to be checked against the stored bytes."""

    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")


class DownloadUrl(BaseModel):
    """A short-lived URL straight to the stored object."""

    url: str
    expires_at: UtcDateTime


class IntegrityRequest(BaseModel):
    """Check every object (sample omitted) or a random sample of them."""

    sample: int | None = Field(None, ge=1, le=MAX_INT32)


class IntegrityRead(BaseModel):
    """One integrity-check run and what it found."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    started_at: UtcDateTime
    finished_at: UtcDateTime | None
    requested: str
    state: str  # queued, running, done, failed
    checked: int  # done so far, of total
    total: int
    ok: int
    problems: list[dict]
    error: str | None
