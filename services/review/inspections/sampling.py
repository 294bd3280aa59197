"""Reproducible sampling (抽查): whom to inspect, drawn with a recorded seed.

The population is the campaign's participating units (optionally of one level) sorted by unit code; the
selection is `random.Random(seed).sample(population, size)`. Anyone holding the draw's population and seed can
repeat it and get the same units (docs/inspection-supervision.md).
"""

from __future__ import annotations

import random
import secrets

from sqlalchemy import select

from services.review.models import AUDIT, ReviewCampaign, ReviewUnit, SamplingDraw
from shared import audit
from shared.auth import Principal
from shared.events import new_id
from shared.http import ApiError, not_found
from shared.request_context import RequestInfo
from shared.runtime import ServiceContext

MAX_SEED = 2**63 - 1  # fits a signed 64-bit column


def select_units(population: list[str], size: int, seed: int) -> list[str]:
    """The units a seed draws from a population: the one definition of the draw."""
    return random.Random(seed).sample(population, size)


def population_of(ctx: ServiceContext, campaign_id: str, level: str | None) -> list[str]:
    """Ids of the campaign's participating units (of one level, if given), sorted by unit code."""
    query = select(ReviewUnit.unit_id).where(
        ReviewUnit.campaign_id == campaign_id, ReviewUnit.participates.is_(True)
    )
    if level:
        query = query.where(ReviewUnit.level == level)
    with ctx.db.session() as uow:
        return list(uow.scalars(query.order_by(ReviewUnit.code, ReviewUnit.unit_id)))


def draw(
    ctx: ServiceContext,
    *,
    campaign_id: str,
    size: int,
    level: str | None,
    seed: int | None,
    principal: Principal,
    request: RequestInfo | None = None,
) -> SamplingDraw:
    """Draw `size` units of a campaign with the given seed, or a fresh one from `secrets`, and keep the draw."""
    with ctx.db.session() as uow:
        if uow.get(ReviewCampaign, campaign_id) is None:
            raise not_found("活动", "campaign", campaign_id)
    population = population_of(ctx, campaign_id, level)
    if size > len(population):
        where = f"级别为“{level}”的" if level else ""
        raise ApiError(
            422,
            "sample_too_large",
            f"抽取数量 {size} 超过{where}参与单位总数 {len(population)}",
            f"cannot draw {size} of {len(population)} participating units",
        )
    seed = secrets.randbelow(MAX_SEED + 1) if seed is None else seed
    now = ctx.clock.now()
    row = SamplingDraw(
        id=new_id(),
        campaign_id=campaign_id,
        seed=seed,
        size=size,
        level=level or None,
        population=population,
        selected=select_units(population, size, seed),
        drawn_by=principal.name,
        drawn_at=now,
    )
    with ctx.db.transaction() as uow:
        uow.add(row)
        audit.record(
            uow,
            AUDIT,
            principal=principal,
            action="sampling.drawn",
            resource=("sampling", row.id),
            detail={
                "campaign_id": campaign_id,
                "seed": seed,
                "size": size,
                "level": level,
                "selected": row.selected,
            },
            request=request,
            at=now,
        )
    return row


def reproduces(row: SamplingDraw) -> bool:
    """Whether drawing again from the stored population with the stored seed gives the stored selection."""
    return len(row.population) >= row.size and select_units(list(row.population), row.size, row.seed) == list(
        row.selected
    )
