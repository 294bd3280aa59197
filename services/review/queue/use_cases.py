"""The review queue: filters and flags, claim / release / assign, and bulk decisions.

A claim is a reviewer's hold on one pending version (claimed_by, claimed_at); it lasts
REVIEW_CLAIM_TTL_S seconds, after which another reviewer may take it over. Claims and assignments
are ids of users (the token's subject); "me" in filters and assignments means the caller.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Select, bindparam, exists, or_, select, update
from sqlalchemy.orm import Session

from services.review import activity
from services.review.models import AUDIT, ReviewDuplicate, ReviewEvidence, ReviewEvidenceText, ReviewItem
from services.review.queue import decisions, schemas
from shared import audit
from shared.auth import ADMIN, Principal, can_see_unit, visible
from shared.clock import as_utc
from shared.contracts import make_event
from shared.contracts.review import SubmissionClaimed, SubmissionReleased
from shared.db import by_key, rows_affected
from shared.http import ApiError, not_found
from shared.request_context import RequestInfo
from shared.runtime import ServiceContext

log = logging.getLogger(__name__)
SERVICE = "review"
ME, NONE = "me", "none"
UNKNOWN = "unknown:"  # prefix of an evidence id review has not heard of, in duplicate details
READ_CATEGORIES = ("photo", "video")  # the evidence worker reads their text (OCR)


@dataclass(frozen=True)
class QueueFilter:
    """What the caller asked the queue for."""

    state: str = "pending"
    unit_id: str | None = None
    measure_code: str | None = None
    kind: str | None = None
    campaign_id: str | None = None
    assigned_to: str | None = None
    claimed_by: str | None = None
    flag: str | None = None
    text_finding: str | None = None
    text: str | None = None  # words searched in the recognised text
    older_than_hours: float | None = None
    newer_than_hours: float | None = None
    limit: int = 100
    offset: int = 0


def _who(value: str, principal: Principal) -> str:
    return principal.id if value == ME else value


# ---------------------------------------------------------------- listing


def list_queue(
    filters: QueueFilter, *, principal: Principal, ctx: ServiceContext
) -> list[schemas.ReviewItemRead]:
    """Review items matching the filters, oldest first; a unit sees only its own subtree's."""
    now = ctx.clock.now()
    cutoff = decisions.claim_cutoff(ctx, now)
    query = select(ReviewItem).where(
        ReviewItem.state == filters.state, visible(principal, ReviewItem.unit_path, ReviewItem.unit_id)
    )
    for column, value in (
        (ReviewItem.unit_id, filters.unit_id),
        (ReviewItem.measure_code, filters.measure_code),
        (ReviewItem.kind, filters.kind),
        (ReviewItem.campaign_id, filters.campaign_id),
    ):
        if value:
            query = query.where(column == value)
    if filters.assigned_to:
        query = query.where(
            ReviewItem.assigned_to.is_(None)
            if filters.assigned_to == NONE
            else ReviewItem.assigned_to == _who(filters.assigned_to, principal)
        )
    if filters.claimed_by:
        if filters.claimed_by == NONE:
            query = query.where(
                or_(
                    ReviewItem.claimed_by.is_(None),
                    ReviewItem.claimed_at.is_(None),
                    ReviewItem.claimed_at < cutoff,
                )
            )
        else:
            query = query.where(
                ReviewItem.claimed_by == _who(filters.claimed_by, principal), ReviewItem.claimed_at >= cutoff
            )
    if filters.older_than_hours is not None:
        query = query.where(ReviewItem.submitted_at <= now - timedelta(hours=filters.older_than_hours))
    if filters.newer_than_hours is not None:
        query = query.where(ReviewItem.submitted_at > now - timedelta(hours=filters.newer_than_hours))
    query = _text_filters(query, filters)
    with ctx.db.session() as uow:
        if filters.flag == "outside_window":
            query = query.where(
                or_(
                    ReviewItem.outside_window.is_(True),
                    exists().where(
                        ReviewEvidence.submission_id == ReviewItem.submission_id,
                        ReviewEvidence.outside_window.is_(True),
                    ),
                )
            )
        elif filters.flag in ("duplicate", "near_duplicate"):
            flagged = _duplicate_flagged(uow, query, filters.flag)
            if not flagged:
                return []
            query = query.where(ReviewItem.submission_id.in_(flagged))
        items = list(
            uow.scalars(
                query.order_by(ReviewItem.submitted_at, ReviewItem.submission_id)
                .limit(filters.limit)
                .offset(filters.offset)
            )
        )
        return present(uow, items, principal=principal, now=now, cutoff=cutoff)


def _text_filters(query, filters: QueueFilter):
    """Items whose photos' text has the finding asked for, or contains the words searched."""
    read = ReviewEvidenceText
    of_item = read.submission_id == ReviewItem.submission_id
    if filters.text_finding == "unread":
        # a photo whose text is not read yet (no row) or could not be read
        query = query.where(
            or_(
                exists().where(of_item, read.finding == "unread"),
                exists().where(
                    ReviewEvidence.submission_id == ReviewItem.submission_id,
                    ReviewEvidence.category.in_(READ_CATEGORIES),
                    ~exists().where(read.evidence_id == ReviewEvidence.evidence_id),
                ),
            )
        )
    elif filters.text_finding:
        query = query.where(exists().where(of_item, read.finding == filters.text_finding))
    if filters.text and filters.text.strip():
        words = filters.text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(exists().where(of_item, read.text.ilike(f"%{words}%", escape="\\")))
    return query


def _duplicate_flagged(uow: Session, items_query, flag: str) -> set[str]:
    """Ids of the matching items with evidence that repeats, or is repeated by, another unit's (or unknown) evidence."""
    match = "exact" if flag == "duplicate" else "near"
    candidates = items_query.with_only_columns(ReviewItem.submission_id, ReviewItem.unit_id).subquery()
    rows = uow.execute(
        select(ReviewEvidence.evidence_id, candidates.c.submission_id, candidates.c.unit_id).join(
            candidates, candidates.c.submission_id == ReviewEvidence.submission_id
        )
    ).all()
    links = _links_of(uow, [row[0] for row in rows])
    known = _known_evidence(uow, (link.other for found in links.values() for link in found))
    return {
        submission
        for evidence_id, submission, unit in rows
        if _others([link.other for link in links[evidence_id] if link.match == match], unit, known)
    }


@dataclass(frozen=True)
class _Link:
    other: str
    match: Literal["exact", "near"]
    came_first: Literal["this", "other"]


def _texts_of(uow: Session, evidence_ids: list[str]) -> dict[str, schemas.EvidenceTextRead]:
    """The text read in each photo, where the evidence worker has reported it."""
    found: dict[str, schemas.EvidenceTextRead] = {}
    for start in range(0, len(evidence_ids), 500):
        for row in uow.scalars(
            select(ReviewEvidenceText).where(
                ReviewEvidenceText.evidence_id.in_(evidence_ids[start : start + 500])
            )
        ):
            found[row.evidence_id] = schemas.EvidenceTextRead(
                state=row.state,
                finding=row.finding,
                text=row.text or "",
                matches=[schemas.TextMatchRead.model_validate(m) for m in row.matches or []],
                keywords=list(row.keywords or []),
                note=row.note or "",
                read_at=as_utc(row.read_at) if row.read_at else None,
            )
    return found


def _item_text_finding(evidence: list[schemas.EvidenceBrief]) -> tuple[schemas.TextFinding | None, list[str]]:
    """An item's finding from its photos': keywords found in any wins, then a photo left unread, then none found."""
    texts = [e.text for e in evidence if e.text is not None]
    keywords = list(dict.fromkeys(m.keyword for t in texts for m in t.matches))
    findings = {t.finding for t in texts}
    if "keywords_found" in findings:
        return "keywords_found", keywords
    if "unread" in findings:
        return "unread", keywords
    if "no_campaign_text" in findings:
        return "no_campaign_text", keywords
    return None, keywords


def _links_of(uow: Session, evidence_ids: list[str]) -> dict[str, list[_Link]]:
    """Each evidence's duplicate links in both directions: the files it repeats and the files that repeat it."""
    found: dict[str, list[_Link]] = {evidence_id: [] for evidence_id in evidence_ids}
    for start in range(0, len(evidence_ids), 500):
        chunk = evidence_ids[start : start + 500]
        rows = uow.scalars(
            select(ReviewDuplicate).where(
                or_(ReviewDuplicate.evidence_id.in_(chunk), ReviewDuplicate.other_id.in_(chunk))
            )
        )
        for row in rows:
            match: Literal["exact", "near"] = "exact" if row.match == "exact" else "near"
            if row.evidence_id in found:  # this one is the later upload
                found[row.evidence_id].append(_Link(row.other_id, match, "other"))
            if row.other_id in found:  # a later upload repeats this one
                found[row.other_id].append(_Link(row.evidence_id, match, "this"))
    return found


def _known_evidence(uow: Session, evidence_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(unit id, submission id) of each evidence id known here (unknown ids are left out)."""
    wanted = sorted(set(evidence_ids))
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(wanted), 500):
        rows = uow.execute(
            select(ReviewEvidence.evidence_id, ReviewEvidence.unit_id, ReviewEvidence.submission_id).where(
                ReviewEvidence.evidence_id.in_(wanted[start : start + 500])
            )
        )
        found.update({evidence_id: (unit, submission) for evidence_id, unit, submission in rows})
    return found


def _others(refs: list[str] | None, own_unit: str, known: dict[str, tuple[str, str]]) -> list[str]:
    """Other units behind duplicate references: unit ids, or 'unknown:<evidence id>' for evidence not known here."""
    out: list[str] = []
    for ref in refs or ():
        unit = known[ref][0] if ref in known else None
        other = f"{UNKNOWN}{ref}" if not unit else (unit if unit != own_unit else None)
        if other and other not in out:
            out.append(other)
    return out


def present(
    uow: Session, items: list[ReviewItem], *, principal: Principal, now: datetime, cutoff: datetime
) -> list[schemas.ReviewItemRead]:
    """Review items as the API shows them: flags, duplicate details (staff only), claim state, age and evidence."""
    ids = [item.submission_id for item in items]
    evidence: dict[str, list[ReviewEvidence]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        for row in uow.scalars(_evidence_of(), {"ids": ids[start : start + 500]}):
            evidence[row.submission_id].append(row)
    links = _links_of(uow, [e.evidence_id for rows in evidence.values() for e in rows])
    texts = _texts_of(uow, [e.evidence_id for rows in evidence.values() for e in rows])
    known = _known_evidence(uow, (link.other for found in links.values() for link in found))
    ttl = now - cutoff
    out = []
    for item in items:
        view = schemas.ReviewItemRead.model_validate(item)
        claimed_at = as_utc(item.claimed_at) if item.claimed_at else None
        view.claimed_at = claimed_at
        view.claim_expires_at = claimed_at + ttl if claimed_at and item.claimed_by else None
        view.claim_live = decisions.claim_is_live(item, cutoff)
        view.age_hours = round(max((now - as_utc(item.submitted_at)).total_seconds(), 0) / 3600, 2)
        flags: set[str] = {"outside_window"} if item.outside_window else set()
        for e in evidence[item.submission_id]:
            brief = schemas.EvidenceBrief.model_validate(e)
            # both directions: the copy names the original's unit, the original the copy's; a unit's own repeat is no flag
            foreign = [link for link in links[e.evidence_id] if _others([link.other], item.unit_id, known)]
            dupes = _others([link.other for link in foreign if link.match == "exact"], item.unit_id, known)
            nears = _others([link.other for link in foreign if link.match == "near"], item.unit_id, known)
            checks: tuple[tuple[schemas.QueueFlag, bool], ...] = (
                ("outside_window", bool(e.outside_window)),
                ("duplicate", bool(dupes)),
                ("near_duplicate", bool(nears)),
            )
            brief.flags = [code for code, on in checks if on]
            flags.update(brief.flags)
            # what it repeats first, then who repeats it; exact before near
            foreign.sort(key=lambda link: (link.came_first == "this", link.match != "exact", link.other))
            if principal.is_staff:
                if dupes:
                    view.duplicates[e.evidence_id] = dupes
                if nears:
                    view.near_duplicates[e.evidence_id] = nears
                brief.duplicates = [
                    schemas.DuplicateLink(
                        match=link.match,
                        came_first=link.came_first,
                        evidence_id=link.other,
                        unit_id=known[link.other][0] if link.other in known else None,
                        submission_id=known[link.other][1] if link.other in known else None,
                    )
                    for link in foreign
                ]
            else:  # a unit learns that its photo repeats another's (or is repeated), and which came first, not whose
                brief.duplicate_of, brief.near_duplicate_of = [], []
                brief.duplicates = [
                    schemas.DuplicateLink(match=link.match, came_first=link.came_first) for link in foreign
                ]
            if e.category in READ_CATEGORIES:
                brief.text = texts.get(e.evidence_id) or schemas.EvidenceTextRead(
                    state="pending", finding="unread"
                )
            view.evidence.append(brief)
        view.text_finding, view.text_keywords = _item_text_finding(view.evidence)
        view.flags = [code for code in ("outside_window", "duplicate", "near_duplicate") if code in flags]
        out.append(view)
    return out


def read_item(submission_id: str, *, principal: Principal, ctx: ServiceContext) -> schemas.ReviewItemRead:
    """One review item as the API shows it; 404 when missing or outside the caller's subtree."""
    now = ctx.clock.now()
    with ctx.db.session() as uow:
        item = _visible_item(uow, submission_id, principal)
        return present(uow, [item], principal=principal, now=now, cutoff=decisions.claim_cutoff(ctx, now))[0]


def show_item(item: ReviewItem, *, principal: Principal, ctx: ServiceContext) -> schemas.ReviewItemRead:
    """A review item the caller has just changed, as the API shows it (no second read of the item itself)."""
    now = ctx.clock.now()
    with ctx.db.session() as uow:
        return present(uow, [item], principal=principal, now=now, cutoff=decisions.claim_cutoff(ctx, now))[0]


@functools.cache
def _evidence_of() -> Select[tuple[ReviewEvidence]]:
    # Built once: every read of the queue asks it, and building it cost about what running it did.
    return (
        select(ReviewEvidence)
        .where(ReviewEvidence.submission_id.in_(bindparam("ids", expanding=True)))
        .order_by(ReviewEvidence.evidence_id)
    )


def _visible_item(
    uow: Session, submission_id: str, principal: Principal, *, lock: bool = False
) -> ReviewItem:
    item = by_key(uow, ReviewItem, submission_id, lock=lock)
    if item is None or not can_see_unit(principal, item.unit_path, item.unit_id):
        raise not_found("待审核材料", "review item", submission_id)
    return item


# ---------------------------------------------------------------- claim, release, assign


def _expect_pending(item: ReviewItem, version: int | None) -> None:
    if item.state != "pending":
        raise ApiError(
            409,
            "not_pending",
            f"该材料当前不在待审核状态（{item.state}）",
            f"the item is not pending ({item.state})",
        )
    if version is not None and version != item.version:
        raise ApiError(
            409,
            "stale_version",
            f"待审核的是第 {item.version} 版，不是第 {version} 版，请刷新后再试",
            f"version {item.version} is pending, not {version}",
        )


def _log(
    uow: Session,
    item: ReviewItem,
    principal: Principal,
    kind: str,
    detail: dict,
    request: RequestInfo | None,
    now: datetime,
) -> None:
    activity.record(
        uow,
        activity.Actor.of(principal, request),
        kind,
        ("submission", item.submission_id),
        at=now,
        unit_id=item.unit_id,
        submission_id=item.submission_id,
        detail=detail,
    )


def claim(
    submission_id: str,
    *,
    version: int | None,
    principal: Principal,
    ctx: ServiceContext,
    request: RequestInfo | None = None,
) -> schemas.ReviewItemRead:
    """Take the pending version to review; 409 while another reviewer's claim is live (publishes submission.claimed)."""
    now = ctx.clock.now()
    cutoff = decisions.claim_cutoff(ctx, now)
    with ctx.db.transaction() as uow:
        item = _visible_item(uow, submission_id, principal)
        _expect_pending(item, version)
        previous = item.claimed_by
        renewal = previous == principal.id and decisions.claim_is_live(item, cutoff)
        result = uow.execute(
            update(ReviewItem)
            .where(
                ReviewItem.submission_id == submission_id,
                ReviewItem.version == item.version,
                ReviewItem.state == "pending",
                decisions.free_for(principal.id, cutoff),
            )
            .values(claimed_by=principal.id, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        if rows_affected(result) != 1:
            uow.refresh(item)
            _expect_pending(item, version)
            raise decisions.claimed_by_other(item)
        uow.refresh(item)
        if renewal:  # the holder renews its claim: no new event or timeline record
            audit.record(
                uow,
                AUDIT,
                principal=principal,
                action="submission.claim_renewed",
                resource=("submission", submission_id),
                detail={"version": item.version},
                request=request,
                at=now,
            )
        else:
            detail = {"version": item.version, "reviewer_id": principal.id}
            if previous and previous != principal.id:
                detail["taken_over_from"] = previous
            _log(uow, item, principal, "submission.claimed", detail, request, now)
            ctx.outbox.add(
                uow,
                make_event(
                    SubmissionClaimed(
                        submission_id=item.submission_id,
                        unit_id=item.unit_id,
                        version=item.version,
                        reviewer=principal.name,
                    ),
                    producer=SERVICE,
                ),
            )
        view = present(uow, [item], principal=principal, now=now, cutoff=cutoff)[0]
    return view


def release(
    submission_id: str, *, principal: Principal, ctx: ServiceContext, request: RequestInfo | None = None
) -> schemas.ReviewItemRead:
    """Give a claimed version back to the queue (its holder, or an admin); publishes submission.released."""
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        item = _visible_item(uow, submission_id, principal, lock=True)
        if item.state != "pending" or not item.claimed_by:
            raise ApiError(409, "not_claimed", "该材料当前没有被认领", "the item is not claimed")
        holder = item.claimed_by
        if holder != principal.id and principal.role != ADMIN:
            raise ApiError(
                403,
                "not_claim_holder",
                "只有认领人或管理员可以释放认领",
                "only the claim holder or an admin may release it",
            )
        result = uow.execute(
            update(ReviewItem)
            .where(
                ReviewItem.submission_id == submission_id,
                ReviewItem.version == item.version,
                ReviewItem.state == "pending",
                ReviewItem.claimed_by == holder,
            )
            .values(claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        if rows_affected(result) != 1:
            raise ApiError(
                409, "not_claimed", "该材料的认领已变化，请刷新后再试", "the claim changed meanwhile; reload"
            )
        uow.refresh(item)
        _log(
            uow,
            item,
            principal,
            "submission.released",
            {"version": item.version, "reviewer_id": holder},
            request,
            now,
        )
        ctx.outbox.add(
            uow,
            make_event(
                SubmissionReleased(
                    submission_id=item.submission_id,
                    unit_id=item.unit_id,
                    version=item.version,
                    reviewer=principal.name,
                ),
                producer=SERVICE,
            ),
        )
        view = present(uow, [item], principal=principal, now=now, cutoff=decisions.claim_cutoff(ctx, now))[0]
    return view


def release_expired(ctx: ServiceContext, *, limit: int = 500) -> int:
    """Give back every claim older than REVIEW_CLAIM_TTL_S (publishes submission.released); returns how many."""
    now = ctx.clock.now()
    cutoff = decisions.claim_cutoff(ctx, now)
    released = 0
    with ctx.db.transaction() as uow:
        stale = uow.scalars(
            select(ReviewItem)
            .where(
                ReviewItem.state == "pending",
                ReviewItem.claimed_by.is_not(None),
                ReviewItem.claimed_at < cutoff,
            )
            .limit(limit)
        ).all()
        for item in stale:
            holder = item.claimed_by
            result = uow.execute(
                update(ReviewItem)
                .where(
                    ReviewItem.submission_id == item.submission_id,
                    ReviewItem.version == item.version,
                    ReviewItem.claimed_by == holder,
                    ReviewItem.claimed_at < cutoff,
                )
                .values(claimed_by=None, claimed_at=None)
                .execution_options(synchronize_session=False)
            )
            if rows_affected(result) != 1:  # renewed or decided meanwhile
                continue
            released += 1
            activity.record(
                uow,
                activity.Actor(activity.SYSTEM),
                "submission.released",
                ("submission", item.submission_id),
                at=now,
                unit_id=item.unit_id,
                submission_id=item.submission_id,
                detail={"version": item.version, "reviewer_id": holder, "reason": "认领超时自动释放"},
            )
            ctx.outbox.add(
                uow,
                make_event(
                    SubmissionReleased(
                        submission_id=item.submission_id,
                        unit_id=item.unit_id,
                        version=item.version,
                        reviewer="system",
                    ),
                    producer=SERVICE,
                ),
            )
    return released


def assign(
    submission_id: str,
    *,
    reviewer: str | None,
    principal: Principal,
    ctx: ServiceContext,
    request: RequestInfo | None = None,
) -> schemas.ReviewItemRead:
    """Assign the pending item to a reviewer (user id, or "me"), or remove the assignment with None."""
    now = ctx.clock.now()
    target = _who(reviewer, principal) if reviewer else None
    with ctx.db.transaction() as uow:
        item = _visible_item(uow, submission_id, principal, lock=True)
        _expect_pending(item, None)
        previous = item.assigned_to
        if previous != target:
            item.assigned_to = target
            uow.flush()
            _log(
                uow,
                item,
                principal,
                "submission.assigned",
                {"version": item.version, "assigned_to": target, "previous": previous},
                request,
                now,
            )
        view = present(uow, [item], principal=principal, now=now, cutoff=decisions.claim_cutoff(ctx, now))[0]
    return view


# ---------------------------------------------------------------- bulk decisions


def bulk_decide(
    items: list[schemas.BulkItem],
    event_type: str,
    *,
    principal: Principal,
    ctx: ServiceContext,
    comment: str | None,
    score: float | None = None,
    request: RequestInfo | None = None,
) -> schemas.BulkResult:
    """Decide each version in its own transaction; one item's refusal does not stop the others."""
    if len(items) > schemas.BULK_LIMIT:
        raise ApiError(
            422,
            "too_many_items",
            f"每次最多处理 {schemas.BULK_LIMIT} 条，本次 {len(items)} 条",
            f"at most {schemas.BULK_LIMIT} items per call, got {len(items)}",
        )
    results = []
    for entry in items:
        outcome = schemas.BulkOutcome(submission_id=entry.submission_id, version=entry.version, ok=False)
        try:
            decided = decisions.decide(
                entry.submission_id,
                event_type,
                reviewer=principal.name,
                version=entry.version,
                comment=comment,
                score=score,
                ctx=ctx,
                principal=principal,
                request=request,
            )
            outcome.ok, outcome.state = True, decided.state
        except ApiError as exc:
            outcome.code, outcome.message = exc.info["code"], exc.info["message"]
        except Exception:  # keep going: the caller must learn which items were decided
            log.exception("bulk %s of %s failed", event_type, entry.submission_id)
            outcome.code, outcome.message = "internal_error", "处理失败，请稍后重试"
        results.append(outcome)
    succeeded = sum(1 for r in results if r.ok)
    return schemas.BulkResult(succeeded=succeeded, failed=len(results) - succeeded, results=results)
