"""Duplicate flags: the same bytes (SHA-256) or a near-identical photo (perceptual hash) anywhere, any unit or
campaign. Flagged for reviewers to judge, never refused."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.evidence_storage import perceptual
from services.evidence_storage.models import Evidence, EvidenceDuplicate, KnownUnit
from shared.auth import Principal, can_see_unit
from shared.clock import as_utc


def flag_duplicates(uow: Session, evidence: Evidence, *, near_bits: int) -> list[EvidenceDuplicate]:
    """Record which earlier evidence this one repeats; returns the new flags."""
    flags = [
        EvidenceDuplicate(evidence_id=evidence.id, other_id=other, match="exact", distance=0)
        for other in uow.scalars(
            select(Evidence.id).where(Evidence.sha256 == evidence.sha256, Evidence.id != evidence.id)
        )
    ]
    if evidence.phash:
        exact = {flag.other_id for flag in flags}
        mine = perceptual.from_hex(evidence.phash)
        # A linear scan of 16-hex-digit hashes: fine for tens of thousands of photos; an index (BK-tree or
        # hash bands) is the next step beyond that.
        rows = uow.execute(
            select(Evidence.id, Evidence.phash).where(Evidence.phash.is_not(None), Evidence.id != evidence.id)
        )
        for other, text in rows:
            gap = perceptual.distance(mine, perceptual.from_hex(text))
            if other not in exact and gap <= near_bits:
                flags.append(
                    EvidenceDuplicate(evidence_id=evidence.id, other_id=other, match="near", distance=gap)
                )
    uow.add_all(flags)
    return flags


def duplicates_of(uow: Session, evidence_ids: list[str]) -> dict[str, list[tuple[EvidenceDuplicate, str]]]:
    """For each evidence, its flags in both directions, as (flag, the other evidence id)."""
    found: dict[str, list[tuple[EvidenceDuplicate, str]]] = {evidence_id: [] for evidence_id in evidence_ids}
    if not evidence_ids:
        return found
    rows = uow.scalars(
        select(EvidenceDuplicate).where(
            or_(EvidenceDuplicate.evidence_id.in_(evidence_ids), EvidenceDuplicate.other_id.in_(evidence_ids))
        )
    )
    for flag in rows:
        if flag.evidence_id in found:
            found[flag.evidence_id].append((flag, flag.other_id))
        if flag.other_id in found:
            found[flag.other_id].append((flag, flag.evidence_id))
    return found


@dataclass(frozen=True)
class DuplicateView:
    """One duplicate link as a reader sees it: the other file, which of the two came first, the other unit."""

    evidence_id: str
    match: str
    distance: int
    came_first: str  # "this" or "other": which of the two files was stored first
    other_uploaded_at: datetime | None = None
    other_submission_id: str | None = (
        None  # the other unit's ids and name: only for callers who may see that unit
    )
    other_unit_id: str | None = None
    other_unit_name: str | None = None
    same_unit: bool = False


def duplicate_views(
    uow: Session, rows: list[Evidence], principal: Principal
) -> dict[str, list[DuplicateView]]:
    """For each evidence row, its duplicate links in both directions, the earliest first."""
    links = duplicates_of(uow, [row.id for row in rows])
    other_ids = {other for found in links.values() for _, other in found}
    others = (
        {e.id: e for e in uow.scalars(select(Evidence).where(Evidence.id.in_(other_ids)))}
        if other_ids
        else {}
    )
    unit_ids = {e.unit_id for e in others.values()}
    names: dict[str, str] = {}
    if unit_ids:
        names = dict(
            uow.execute(select(KnownUnit.id, KnownUnit.name).where(KnownUnit.id.in_(unit_ids))).tuples().all()
        )
    views: dict[str, list[DuplicateView]] = {}
    for row in rows:
        found = []
        for flag, other_id in links[row.id]:
            other = others.get(other_id)
            # the flag sits on the later upload (flag_duplicates only looks back), so its owner came second
            came_first = "other" if flag.evidence_id == row.id else "this"
            view = DuplicateView(
                evidence_id=other_id, match=flag.match, distance=flag.distance, came_first=came_first
            )
            if other is not None:
                seen = can_see_unit(principal, other.unit_path, other.unit_id)
                view = replace(
                    view,
                    other_uploaded_at=as_utc(other.created_at),
                    same_unit=other.unit_id == row.unit_id,
                    other_submission_id=other.submission_id if seen else None,
                    other_unit_id=other.unit_id if seen else None,
                    other_unit_name=names.get(other.unit_id) if seen else None,
                )
            found.append(view)
        views[row.id] = sorted(
            found,
            key=lambda v: (
                v.came_first == "this",
                v.other_uploaded_at.timestamp() if v.other_uploaded_at else 0.0,
            ),
        )
    return views
