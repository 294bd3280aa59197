"""Duplicate flags: the same bytes (SHA-256) or a near-identical photo (perceptual hash) anywhere, any unit or
campaign. Flagged for reviewers to judge, never refused."""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.evidence_storage import perceptual
from services.evidence_storage.models import Evidence, EvidenceDuplicate


def flag_duplicates(uow: Session, evidence: Evidence, *, near_bits: int) -> list[EvidenceDuplicate]:
    """Record which earlier evidence this one repeats; returns the new flags."""
    flags = [
        EvidenceDuplicate(evidence_id=evidence.id, other_id=other, match="exact", distance=0)
        for other in uow.scalars(select(Evidence.id).where(Evidence.sha256 == evidence.sha256, Evidence.id != evidence.id))
    ]
    if evidence.phash:
        exact = {flag.other_id for flag in flags}
        mine = perceptual.from_hex(evidence.phash)
        # A linear scan of 16-hex-digit hashes: fine for tens of thousands of photos; an index (BK-tree or
        # hash bands) is the next step beyond that.
        rows = uow.execute(select(Evidence.id, Evidence.phash).where(Evidence.phash.is_not(None), Evidence.id != evidence.id))
        for other, text in rows:
            gap = perceptual.distance(mine, perceptual.from_hex(text))
            if other not in exact and gap <= near_bits:
                flags.append(EvidenceDuplicate(evidence_id=evidence.id, other_id=other, match="near", distance=gap))
    uow.add_all(flags)
    return flags


def duplicates_of(uow: Session, evidence_ids: list[str]) -> dict[str, list[tuple[EvidenceDuplicate, str]]]:
    """For each evidence, its flags in both directions, as (flag, the other evidence id)."""
    found: dict[str, list[tuple[EvidenceDuplicate, str]]] = {evidence_id: [] for evidence_id in evidence_ids}
    if not evidence_ids:
        return found
    rows = uow.scalars(select(EvidenceDuplicate).where(or_(
        EvidenceDuplicate.evidence_id.in_(evidence_ids), EvidenceDuplicate.other_id.in_(evidence_ids))))
    for flag in rows:
        if flag.evidence_id in found:
            found[flag.evidence_id].append((flag, flag.other_id))
        if flag.other_id in found:
            found[flag.other_id].append((flag, flag.evidence_id))
    return found
