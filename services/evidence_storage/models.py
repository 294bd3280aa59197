"""Evidence tables: stored files and their findings, upload sessions, integrity checks, the shared
append-only audit log, and the slices of other services' data this one keeps (submissions, campaigns,
units) as learned from events."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.messaging import messaging_tables


class Base(DeclarativeBase):
    """Declarative base of the evidence_storage service's own tables."""


MESSAGING = messaging_tables(Base.metadata)
AUDIT = audit_table(Base.metadata)  # append-only: every download, presigned URL, export and deletion


class KnownSubmission(Base):
    """A submission as learned from intake's events (this service's own projection)."""

    __tablename__ = "known_submissions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_path: Mapped[str] = mapped_column(
        String(1000), default="", index=True
    )  # kept current from unit.registered
    measure_code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    campaign_id: Mapped[str | None] = mapped_column(String(36), index=True, default=None)


class KnownCampaign(Base):
    """A campaign's publicity window, from campaign.published, to flag evidence captured outside it."""

    __tablename__ = "known_campaigns"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    publicity_start: Mapped[date] = mapped_column(Date)
    publicity_end: Mapped[date] = mapped_column(Date)
    # per measure code: {"keywords": [...], "expected": bool}, for the OCR finding (services/evidence_storage/ocr.py)
    text_rules: Mapped[dict | None] = mapped_column(JSON, default=None)


class KnownUnit(Base):
    """A unit's code and name, from unit.registered or liaison.designated, to name export folders."""

    __tablename__ = "known_units"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    unit_path: Mapped[str] = mapped_column(String(1000), default="")


class Evidence(Base):
    """One stored file (佐证资料) proving a submission's activity, with what inspection found in it."""

    __tablename__ = "evidence"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("known_submissions.id"), index=True)
    unit_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_path: Mapped[str] = mapped_column(String(1000), default="", index=True)  # copied from the submission
    campaign_id: Mapped[str | None] = mapped_column(String(36), index=True, default=None)
    measure_code: Mapped[str | None] = mapped_column(String(64), default=None)
    object_key: Mapped[str] = mapped_column(String(512), unique=True)
    filename: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    captured_at: Mapped[str | None] = mapped_column(
        String(40), default=None
    )  # as recorded in the file (ISO 8601)
    captured_on: Mapped[date | None] = mapped_column(
        Date, default=None
    )  # local date, compared with the window
    gps_lat: Mapped[float | None] = mapped_column(Float, default=None)
    gps_lon: Mapped[float | None] = mapped_column(Float, default=None)
    outside_window: Mapped[bool | None] = mapped_column(Boolean, default=None)  # None: unknown
    phash: Mapped[str | None] = mapped_column(String(16), index=True, default=None)
    thumbnail_key: Mapped[str | None] = mapped_column(String(512), default=None)
    preview_note: Mapped[str | None] = mapped_column(String(300), default=None)
    video_codec: Mapped[str | None] = mapped_column(
        String(32), default=None
    )  # as ffmpeg names it: h264, hevc...
    audio_codec: Mapped[str | None] = mapped_column(String(32), default=None)
    upload_path: Mapped[str] = mapped_column(String(16), default="stream")
    uploaded_by: Mapped[str | None] = mapped_column(String(200), default=None)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    retention: Mapped[str] = mapped_column(String(16), default="none")  # none, pending, applied, unsupported
    retained_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EvidenceDuplicate(Base):
    """A flag for reviewers: this evidence repeats an earlier one exactly (same SHA-256) or nearly (photo hash)."""

    __tablename__ = "evidence_duplicates"
    __table_args__ = (UniqueConstraint("evidence_id", "other_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence.id", ondelete="CASCADE"), index=True)
    other_id: Mapped[str] = mapped_column(ForeignKey("evidence.id", ondelete="CASCADE"), index=True)
    match: Mapped[Literal["exact", "near"]] = mapped_column(String(8))
    distance: Mapped[int] = mapped_column(Integer)  # Hamming distance of the photo hashes; 0 for exact


class EvidenceRendition(Base):
    """A web-playable H.264/AAC copy of a video browsers cannot play as uploaded; the original stays the proof."""

    __tablename__ = "evidence_renditions"
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending, rendering, ready, failed
    object_key: Mapped[str | None] = mapped_column(String(512), default=None)
    media_type: Mapped[str] = mapped_column(String(100), default="video/mp4")
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    note: Mapped[str | None] = mapped_column(String(300), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class EvidenceText(Base):
    """The text read from a photo or a video's poster frame by the evidence worker (OCR), and its finding."""

    __tablename__ = "evidence_text"
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence.id", ondelete="CASCADE"), primary_key=True)
    # pending → reading (claimed) → read; failed after MAX_ATTEMPTS; unavailable: no OCR engine (OCR 未安装)
    state: Mapped[str] = mapped_column(String(16), index=True)
    finding: Mapped[str | None] = mapped_column(String(20), default=None)  # see textmatch.FINDINGS
    text: Mapped[str | None] = mapped_column(Text, default=None)
    matches: Mapped[list] = mapped_column(JSON, default=list)  # [{keyword, found, exact}]
    note: Mapped[str | None] = mapped_column(String(300), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim: Mapped[str | None] = mapped_column(String(36), default=None)  # the reading worker's claim token
    seconds: Mapped[float | None] = mapped_column(Float, default=None)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class UploadSession(Base):
    """A resumable (chunked) or presigned upload on its way to becoming evidence."""

    __tablename__ = "upload_sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))  # chunked, presigned
    submission_id: Mapped[str] = mapped_column(String(36), index=True)
    unit_id: Mapped[str] = mapped_column(String(36))
    filename: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)  # declared by the client, checked
    media_type: Mapped[str | None] = mapped_column(
        String(100), default=None
    )  # declared (presigned) or sniffed
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    # presigned: where the client POSTs; chunked: where the joined upload lies once completed in the store
    object_key: Mapped[str | None] = mapped_column(String(512), default=None)
    # chunked: the store's multipart upload the chunks are parts of (started by the first chunk) and its target key
    upload_id: Mapped[str | None] = mapped_column(String(1024), default=None)
    upload_key: Mapped[str | None] = mapped_column(String(512), default=None)
    state: Mapped[str] = mapped_column(
        String(16), index=True
    )  # open, completing, completed, refused, aborted, expired
    evidence_id: Mapped[str | None] = mapped_column(String(36), default=None)
    error: Mapped[dict | None] = mapped_column(JSON, default=None)
    created_by: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # while completing: until when the completing process holds the session; after it, complete() takes over
    completing_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class UploadChunk(Base):
    """One received part of a resumable upload: a part of the session's multipart upload (a chunk is one part, or
    several when longer than the store's part size). Sessions begun before revision d4b7e2a9c1f3 kept each chunk
    as a staging object (object_key) instead; those can no longer be continued and are only cleaned up."""

    __tablename__ = "upload_chunks"
    __table_args__ = (UniqueConstraint("session_id", "offset"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("upload_sessions.id", ondelete="CASCADE"), index=True)
    offset: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    object_key: Mapped[str | None] = mapped_column(String(512), default=None)
    part_number: Mapped[int | None] = mapped_column(Integer, default=None)
    etag: Mapped[str | None] = mapped_column(String(200), default=None)


class IntegrityCheck(Base):
    """One run of the integrity check: stored objects re-hashed against their recorded SHA-256."""

    __tablename__ = "integrity_checks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when it was requested
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    requested: Mapped[str] = mapped_column(String(16))  # all, or the sample size
    checked: Mapped[int] = mapped_column(Integer, default=0)  # objects re-hashed so far
    ok: Mapped[int] = mapped_column(Integer, default=0)
    problems: Mapped[list] = mapped_column(JSON, default=list)
    # queued → running (the evidence worker's job, progress in checked/total) → done, or failed with the error
    state: Mapped[str] = mapped_column(String(16), default="queued", server_default="done", index=True)
    total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, default=None
    )
