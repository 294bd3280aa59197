"""API models of the review queue: items, decisions, claims, bulk decisions and comments."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.bounds import MAX_INT32

QueueState = Literal["pending", "approved", "returned", "rejected", "withdrawn"]
QueueFlag = Literal["outside_window", "duplicate", "near_duplicate"]
SubmissionKind = Literal["measure", "summary_report", "good_practice"]
TextFinding = Literal["keywords_found", "no_campaign_text", "unread"]
BULK_LIMIT = 200


class DuplicateLink(BaseModel):
    """Another evidence file this one repeats, or that repeats it, and which of the two came first."""

    match: Literal["exact", "near"]
    came_first: Literal["this", "other"] = Field(
        description="'other': this file repeats an earlier one (the copy); 'this': a later upload repeats this one"
    )
    evidence_id: str | None = Field(None, description="the other file (staff only)")
    unit_id: str | None = Field(
        None, description="the other file's unit (staff only; None when not known here)"
    )
    submission_id: str | None = Field(None, description="the other file's submission (staff only)")


class TextMatchRead(BaseModel):
    """A campaign keyword found in the recognised text, and the characters that matched it (to highlight)."""

    keyword: str
    found: str
    exact: bool = True


class EvidenceTextRead(BaseModel):
    """The text the evidence worker read in a photo (or a video's poster frame), and its finding."""

    state: str = Field(description="read, failed, unavailable (OCR 未安装), pending (not read yet)")
    finding: str = Field(description="keywords_found, no_campaign_text, none (no keywords asked), unread")
    text: str = ""
    matches: list[TextMatchRead] = []
    keywords: list[str] = Field([], description="the keywords the measure asks for")
    note: str = ""
    read_at: datetime | None = None


class EvidenceBrief(BaseModel):
    """Evidence as listed on a review item, with its flags."""

    model_config = ConfigDict(from_attributes=True)
    evidence_id: str
    filename: str
    media_type: str
    category: str = ""
    size: int
    sha256: str
    captured_at: str | None = None
    outside_window: bool | None = None
    duplicate_of: list[str] = Field([], description="evidence ids with the same bytes (staff only)")
    near_duplicate_of: list[str] = Field([], description="evidence ids of near-identical photos (staff only)")
    flags: list[QueueFlag] = Field(
        [], description="outside_window; duplicate / near_duplicate of (or by) another unit's evidence"
    )
    duplicates: list[DuplicateLink] = Field(
        [],
        description="links to other units' files in both directions, earliest first (a unit sees only match and order)",
    )
    text: EvidenceTextRead | None = Field(None, description="photos and videos: the text read in it (OCR)")


class ReviewItemRead(BaseModel):
    """A review queue entry: the current version, its claim and assignment, flags and evidence."""

    model_config = ConfigDict(from_attributes=True)
    submission_id: str
    unit_id: str
    unit_path: str = ""
    campaign_id: str | None = None
    measure_code: str
    kind: str = "measure"
    title: str
    version: int
    state: str
    submitted_at: datetime
    age_hours: float = Field(0.0, description="hours since this version was handed in (review clock)")
    outside_window: bool = False
    assigned_to: str | None = Field(None, description="user id of the reviewer it is assigned to")
    claimed_by: str | None = Field(None, description="user id of the reviewer holding the claim")
    claimed_at: datetime | None = None
    claim_expires_at: datetime | None = None
    claim_live: bool = Field(
        False, description="whether the claim still holds (younger than REVIEW_CLAIM_TTL_S)"
    )
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    score: float | None
    flags: list[QueueFlag] = []
    duplicates: dict[str, list[str]] = Field(
        {},
        description="evidence id → other unit ids with the same bytes, whether they copied it or it copied them "
        "('unknown:<evidence id>' when that evidence is not known here); staff only",
    )
    near_duplicates: dict[str, list[str]] = Field({}, description="as duplicates, for near-identical photos")
    text_finding: TextFinding | None = Field(
        None,
        description="the text read in its photos: keywords_found (in any), no_campaign_text (in none, and the "
        "measure expects it), unread (a photo not read yet or not readable); None: no photos, or no keywords",
    )
    text_keywords: list[str] = Field([], description="the campaign keywords found in its photos")
    evidence: list[EvidenceBrief] = []


class Approve(BaseModel):
    """Approve a submission version; score 0-100 is the share of the measure's rubric points (absent: 100)."""

    reviewer: str | None = Field(
        None, max_length=100, description="ignored: the decision is recorded under the logged-in reviewer"
    )
    version: int | None = Field(
        None, ge=1, le=MAX_INT32, description="the version being decided; a stale one gives 409"
    )
    score: float | None = Field(
        None, ge=0, le=100, description="share (%) of the measure's rubric points; absent = 100"
    )
    comment: str | None = Field(None, max_length=5000)


class Return(BaseModel):
    """Return a submission for changes: a comment is required."""

    reviewer: str | None = Field(
        None, max_length=100, description="ignored: the decision is recorded under the logged-in reviewer"
    )
    version: int | None = Field(None, ge=1, le=MAX_INT32)
    comment: str = Field(min_length=1, max_length=5000)


class Reject(BaseModel):
    """Reject a submission: a reason is required."""

    reviewer: str | None = Field(
        None, max_length=100, description="ignored: the decision is recorded under the logged-in reviewer"
    )
    version: int | None = Field(None, ge=1, le=MAX_INT32)
    reason: str = Field(min_length=1, max_length=5000)


class Claim(BaseModel):
    """Take the pending version to review; a stale version gives 409."""

    version: int | None = Field(None, ge=1, le=MAX_INT32)


class Assign(BaseModel):
    """Assign the item to a reviewer (user id, or "me"); null removes the assignment."""

    reviewer: str | None = Field(None, min_length=1, max_length=100)


class BulkItem(BaseModel):
    """One submission version in a bulk decision."""

    submission_id: str = Field(min_length=1, max_length=36)
    version: int = Field(ge=1, le=MAX_INT32)


class BulkApprove(BaseModel):
    """Approve many versions with one score and comment; each is decided on its own."""

    items: list[BulkItem] = Field(min_length=1)
    score: float | None = Field(
        None, ge=0, le=100, description="share (%) of each measure's rubric points; absent = 100"
    )
    comment: str | None = Field(None, max_length=5000)


class BulkReturn(BaseModel):
    """Return many versions with one comment; each is decided on its own."""

    items: list[BulkItem] = Field(min_length=1)
    comment: str = Field(min_length=1, max_length=5000)


class BulkOutcome(BaseModel):
    """What happened to one item of a bulk decision."""

    submission_id: str
    version: int
    ok: bool
    state: str | None = None
    code: str | None = None
    message: str | None = None


class BulkResult(BaseModel):
    """Per-item outcomes of a bulk decision."""

    succeeded: int
    failed: int
    results: list[BulkOutcome]


class CommentCreate(BaseModel):
    """A message for a submission's comment thread."""

    body: str = Field(min_length=1, max_length=5000)

    @field_validator("body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("评论内容不能为空")
        return value.strip()


class CommentRead(BaseModel):
    """One message of a comment thread."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    submission_id: str
    unit_id: str
    version: int
    author: str
    author_role: str
    body: str
    at: datetime
