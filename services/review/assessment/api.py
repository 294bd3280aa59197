"""Assessment routes (考核).

Staff read every unit's score; a unit reads only its own subtree's rows (ranks are still counted over
the whole level).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from services.review.assessment import scoring
from services.review.assessment.schemas import AssessmentRead, UnitScore, level_sizes, unit_score
from services.review.models import ReviewUnit
from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT, Principal, can_see_unit, require
from shared.clock import as_utc
from shared.http import not_found
from shared.runtime import ServiceContext

READERS = (ADMIN, REVIEWER, INSPECTOR, UNIT)


AS_OF_RULE = (
    "ISO date (the end of that day, campaign time) or datetime (no offset: campaign time); default now. "
    "A moment after now means now (as_of_clamped says so); POST /circulars follows the same rule"
)


def router(ctx: ServiceContext) -> APIRouter:
    """The assessment routes."""
    router = APIRouter()

    def assessed(campaign_id: str, as_of: str | None) -> tuple[scoring.Assessment, scoring.AsOf]:
        now = as_utc(ctx.clock.now())
        with ctx.db.session() as uow:
            campaign = scoring.load_campaign(uow, campaign_id)
            moment = scoring.resolve_as_of(as_of, campaign.zone, now)  # the rule circulars follow too
            return scoring.compute(uow, campaign_id, moment.at), moment

    @router.get("/assessment", response_model=AssessmentRead, tags=["assessment"])
    def assessment(
        campaign_id: str = Query(..., max_length=36),
        as_of: str | None = Query(None, max_length=40, description=AS_OF_RULE),
        principal: Principal = Depends(require(*READERS)),
    ) -> AssessmentRead:
        """Every participating unit's score and rank within its level, as of a moment (考核得分)."""
        result, moment = assessed(campaign_id, as_of)
        sizes = level_sizes(result)
        rows = [
            unit_score(u, sizes[u.level])
            for _, units in result.by_level()
            for u in units
            if can_see_unit(principal, u.unit_path, u.unit_id)
        ]
        return AssessmentRead(
            campaign_id=campaign_id,
            campaign_name=result.campaign.name,
            as_of=result.as_of,
            as_of_clamped=moment.clamped,
            max_total=float((result.campaign.rubric or {}).get("total", 100)),
            units=rows,
        )

    @router.get("/assessment/units/{unit_id}", response_model=UnitScore, tags=["assessment"])
    def unit_assessment(
        unit_id: str,
        campaign_id: str | None = Query(None, max_length=36),
        as_of: str | None = Query(None, max_length=40, description=AS_OF_RULE),
        principal: Principal = Depends(require(*READERS)),
    ) -> UnitScore:
        """One unit's score with every line behind it, as of a moment."""
        missing = not_found("参加考核的单位", "assessed unit", unit_id)
        with ctx.db.session() as uow:
            unit = uow.get(ReviewUnit, unit_id)
        if unit is None or not can_see_unit(principal, unit.unit_path, unit.unit_id):
            raise missing
        campaign = campaign_id or unit.campaign_id
        if not campaign:
            raise missing
        result, _ = assessed(campaign, as_of)
        found = result.unit(unit_id)
        if found is None:
            raise missing
        return unit_score(found, level_sizes(result)[found.level])

    return router
