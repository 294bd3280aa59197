"""Supervision routes (督办)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from services.review.activity import Actor
from services.review.models import Supervision, SupervisionChange
from services.review.supervision import use_cases as supervision
from services.review.supervision.schemas import (
    ChangeRead,
    Close,
    Level,
    Respond,
    RulesRunRead,
    State,
    SupervisionCreate,
    SupervisionDetail,
    SupervisionRead,
)
from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT, Principal, can_see_unit, require, visible
from shared.bounds import Limit, Offset
from shared.http import not_found
from shared.request_context import request_info
from shared.runtime import ServiceContext

OPENERS = (ADMIN, REVIEWER)
READERS = (ADMIN, REVIEWER, INSPECTOR, UNIT)  # a unit sees only its own subtree's cases
RESPONDERS = (ADMIN, UNIT)


def router(ctx: ServiceContext) -> APIRouter:
    """The supervision routes."""
    router = APIRouter()

    def detail(case_id: str, principal: Principal) -> SupervisionDetail:
        with ctx.db.session() as uow:
            case = uow.get(Supervision, case_id)
            if case is None or not can_see_unit(principal, case.unit_path, case.unit_id):
                raise not_found("督办事项", "supervision", case_id)
            changes = list(
                uow.scalars(
                    select(SupervisionChange)
                    .where(SupervisionChange.supervision_id == case_id)
                    .order_by(SupervisionChange.id)
                )
            )
        out = SupervisionDetail.model_validate(case)
        out.changes = [ChangeRead.model_validate(change) for change in changes]
        return out

    @router.post("/supervisions", response_model=SupervisionDetail, status_code=201, tags=["supervision"])
    def open_case(
        body: SupervisionCreate, request: Request, principal: Principal = Depends(require(*OPENERS))
    ) -> SupervisionDetail:
        """Open a supervision by hand (reviewers and admins); the rectification deadline defaults to the campaign's rule."""
        case = supervision.open_manual(
            ctx,
            campaign_id=body.campaign_id,
            unit_id=body.unit_id,
            level=body.level,
            method=body.method,
            reason=body.reason,
            rectify_by=body.rectify_by,
            principal=principal,
            request=request_info(request),
        )
        return detail(case.id, principal)

    @router.post("/supervisions/run-rules", response_model=RulesRunRead, tags=["supervision"])
    def run_rules(request: Request, principal: Principal = Depends(require(ADMIN))) -> RulesRunRead:
        """Run the periodic rules now (stale returned submissions, escalation) and show what they did (admins)."""
        run = supervision.run_rules(ctx, actor=Actor.of(principal, request_info(request)))
        return RulesRunRead(
            opened=[SupervisionRead.model_validate(c) for c in run.opened],
            escalated=[SupervisionRead.model_validate(c) for c in run.escalated],
        )

    @router.get("/supervisions", response_model=list[SupervisionRead], tags=["supervision"])
    def listing(
        campaign_id: str | None = None,
        unit_id: str | None = None,
        state: State | None = None,
        level: Level | None = None,
        rule: str | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
        principal: Principal = Depends(require(*READERS)),
    ) -> list[Supervision]:
        """Supervisions, newest first (a unit sees only its own subtree's)."""
        query = select(Supervision).where(visible(principal, Supervision.unit_path, Supervision.unit_id))
        for column, value in (
            (Supervision.campaign_id, campaign_id),
            (Supervision.unit_id, unit_id),
            (Supervision.state, state),
            (Supervision.level, level),
            (Supervision.rule, rule),
        ):
            if value:
                query = query.where(column == value)
        with ctx.db.session() as uow:
            return list(
                uow.scalars(
                    query.order_by(Supervision.opened_at.desc(), Supervision.id).limit(limit).offset(offset)
                )
            )

    @router.get("/supervisions/{supervision_id}", response_model=SupervisionDetail, tags=["supervision"])
    def one(supervision_id: str, principal: Principal = Depends(require(*READERS))) -> SupervisionDetail:
        """One supervision with its history of steps."""
        return detail(supervision_id, principal)

    @router.post(
        "/supervisions/{supervision_id}/respond", response_model=SupervisionDetail, tags=["supervision"]
    )
    def respond(
        supervision_id: str,
        body: Respond,
        request: Request,
        principal: Principal = Depends(require(*RESPONDERS)),
    ) -> SupervisionDetail:
        """The supervised unit (or one above it) answers with its rectification report."""
        supervision.respond(
            ctx, supervision_id, body.response, principal=principal, request=request_info(request)
        )
        return detail(supervision_id, principal)

    @router.post(
        "/supervisions/{supervision_id}/close", response_model=SupervisionDetail, tags=["supervision"]
    )
    def close(
        supervision_id: str, body: Close, request: Request, principal: Principal = Depends(require(*OPENERS))
    ) -> SupervisionDetail:
        """End a case with its outcome (reviewers and admins)."""
        supervision.close(
            ctx, supervision_id, body.outcome, principal=principal, request=request_info(request)
        )
        return detail(supervision_id, principal)

    return router
