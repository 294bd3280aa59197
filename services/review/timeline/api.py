"""Activity timeline routes: a submission's and a unit's records, and verification of the whole chain."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from services.review.models import ReviewItem, ReviewUnit, TimelineRecord
from services.review.timeline import chain as timeline
from services.review.timeline import schemas
from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT, Principal, can_see_unit, require
from shared.bounds import Offset
from shared.clock import as_utc
from shared.http import not_found
from shared.runtime import ServiceContext

READERS = (ADMIN, REVIEWER, INSPECTOR, UNIT)  # a unit reads only its own subtree's records
HIDDEN_FROM_UNITS = (
    "duplicate_of",
    "near_duplicate_of",
)  # other units' evidence ids in evidence.stored details


def _records(rows: list[TimelineRecord], principal: Principal) -> list[schemas.TimelineRecordRead]:
    out = []
    for row in rows:
        view = schemas.TimelineRecordRead.model_validate(row)
        view.at = as_utc(row.at)
        if not principal.is_staff:
            view.detail = {k: v for k, v in row.detail.items() if k not in HIDDEN_FROM_UNITS}
        out.append(view)
    return out


def router(ctx: ServiceContext) -> APIRouter:
    """The timeline routes."""
    router = APIRouter()

    @router.get(
        "/submissions/{submission_id}/timeline",
        response_model=list[schemas.TimelineRecordRead],
        tags=["timeline"],
    )
    def submission_timeline(
        submission_id: str, principal: Principal = Depends(require(*READERS))
    ) -> list[schemas.TimelineRecordRead]:
        """Everything that happened to a submission, oldest first, with the hash chain fields."""
        with ctx.db.session() as uow:
            found = uow.get(ReviewItem, submission_id)
            if found is None or not can_see_unit(principal, found.unit_path, found.unit_id):
                raise not_found("报送材料", "submission", submission_id)
            return _records(timeline.for_submission(uow, submission_id), principal)

    @router.get(
        "/units/{unit_id}/timeline", response_model=list[schemas.TimelineRecordRead], tags=["timeline"]
    )
    def unit_timeline(
        unit_id: str,
        limit: int = Query(1000, ge=1, le=5000),
        offset: Offset = 0,
        principal: Principal = Depends(require(*READERS)),
    ) -> list[schemas.TimelineRecordRead]:
        """Everything recorded for a unit (its submissions, inspections, supervisions), oldest first."""
        with ctx.db.session() as uow:
            unit = uow.get(ReviewUnit, unit_id)
            path = (
                unit.unit_path
                if unit is not None
                else uow.scalar(select(ReviewItem.unit_path).where(ReviewItem.unit_id == unit_id).limit(1))
            )
            known = (
                unit is not None
                or path is not None
                or uow.scalar(select(TimelineRecord.seq).where(TimelineRecord.unit_id == unit_id).limit(1))
                is not None
            )
            if not known or not can_see_unit(principal, path, unit_id):
                raise not_found("单位", "unit", unit_id)
            return _records(timeline.for_unit(uow, unit_id, limit=limit, offset=offset), principal)

    @router.get("/timeline/verify", response_model=schemas.TimelineVerification, tags=["timeline"])
    def verify_timeline(_admin: Principal = Depends(require(ADMIN))) -> schemas.TimelineVerification:
        """Walk the whole hash chain and list every altered, removed, reordered or truncated record (admins)."""
        with ctx.db.session() as uow:
            result = timeline.verify(uow)
        return schemas.TimelineVerification(
            ok=result.ok,
            records=result.records,
            problems=[
                schemas.TimelineProblem(seq=p.seq, code=p.code, message=p.message) for p in result.problems
            ],
        )

    return router
