"""Supervision (督办): opening, escalating, answering and closing cases, and the rules that open them by themselves.

Every step is one transaction holding the case, its SupervisionChange row, its timeline record, its outbox
event and (for API calls) its audit row. Rule cases carry a unique `rule_key`, so a rule that runs twice, or an
event delivered twice, opens its case once. The campaign's `supervision` section (intake's SupervisionRules)
says which rules apply; a campaign published before the section existed gets the defaults below.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.review import activity
from services.review.activity import SYSTEM, Actor
from services.review.models import ReviewCampaign, ReviewItem, ReviewUnit, Supervision, SupervisionChange
from shared.auth import Principal, can_see_unit
from shared.clock import as_utc
from shared.contracts import make_event, read_payload
from shared.contracts.intake import DeadlineMissed
from shared.contracts.review import (
    SupervisionClosed,
    SupervisionEscalated,
    SupervisionOpened,
    SupervisionResponded,
)
from shared.db import rows_affected
from shared.events import Envelope, new_id
from shared.http import ApiError, not_found
from shared.request_context import RequestInfo
from shared.runtime import ServiceContext

SERVICE = "review"
LEVELS = ("blue", "yellow", "red")
METHODS = ("phone", "on_site", "interview")
LEVEL_NAMES = {"blue": "蓝色", "yellow": "黄色", "red": "红色"}
METHOD_NAMES = {"phone": "电话督办", "on_site": "实地督办", "interview": "约谈"}
STATE_NAMES = {"open": "办理中", "responded": "已答复", "closed": "已办结"}
EVENTS = {
    "opened": SupervisionOpened,
    "escalated": SupervisionEscalated,
    "responded": SupervisionResponded,
    "closed": SupervisionClosed,
}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rules:
    """A campaign's supervision rules; the defaults match intake's SupervisionRules."""

    deadline_missed: bool = True
    returned_stale_days: int | None = 5
    inspection_problems: int | None = 3
    inspection_min_ratio: float | None = 0.6
    rectify_days: int = 5
    escalate: bool = True


def rules_of(campaign: ReviewCampaign | None) -> Rules:
    """The rules of a campaign (its `supervision` section over the defaults; unknown keys ignored)."""
    data = (campaign.supervision_rules if campaign is not None else None) or {}
    known = {f.name for f in fields(Rules)}
    return Rules(**{key: value for key, value in data.items() if key in known})


@dataclass
class RulesRun:
    """What one run of the periodic rules did."""

    opened: list[Supervision] = field(default_factory=list)
    escalated: list[Supervision] = field(default_factory=list)


# --- the steps of a case ---------------------------------------------------------------------------------------


def open_case(
    uow: Session,
    ctx: ServiceContext,
    *,
    campaign_id: str,
    unit_id: str,
    unit_path: str,
    rule: str,
    level: str,
    method: str,
    reason: str,
    actor: Actor,
    rectify_by: datetime | None = None,
    rule_key: str | None = None,
    subject_id: str | None = None,
    submission_id: str | None = None,
    cause: Envelope | None = None,
) -> Supervision | None:
    """Open a case inside the caller's transaction; None when a case with this rule_key exists already."""
    if rule_key and uow.scalar(select(Supervision.id).where(Supervision.rule_key == rule_key)) is not None:
        return None
    now = ctx.clock.now()
    if rectify_by is None:
        rectify_by = now + timedelta(days=rules_of(uow.get(ReviewCampaign, campaign_id)).rectify_days)
    case = Supervision(
        id=new_id(),
        campaign_id=campaign_id,
        unit_id=unit_id,
        unit_path=unit_path or "",
        rule=rule,
        rule_key=rule_key,
        subject_id=subject_id,
        level=level,
        method=method,
        reason=reason,
        state="open",
        opened_by=actor.name,
        opened_at=now,
        rectify_by=as_utc(rectify_by),
        escalations=0,
    )
    uow.add(case)
    uow.flush()
    _step(uow, ctx, case, "opened", actor, note=reason, cause=cause, submission_id=submission_id)
    return case


def _step(
    uow: Session,
    ctx: ServiceContext,
    case: Supervision,
    action: str,
    actor: Actor,
    *,
    note: str = "",
    cause: Envelope | None = None,
    submission_id: str | None = None,
) -> None:
    """The history row, timeline record, outbox event and (for API calls) audit row of one step."""
    now = ctx.clock.now()
    rectify_by = as_utc(case.rectify_by) if case.rectify_by else None
    uow.add(
        SupervisionChange(
            supervision_id=case.id,
            unit_id=case.unit_id,
            action=action,
            level=case.level,
            method=case.method,
            actor=actor.name,
            note=note,
            at=now,
        )
    )
    detail = {
        "rule": case.rule,
        "level": case.level,
        "method": case.method,
        "state": case.state,
        "rectify_by": rectify_by.isoformat() if rectify_by else None,
        "escalations": case.escalations,
        "note": note,
    }
    activity.record(
        uow,
        actor,
        f"supervision.{action}",
        ("supervision", case.id),
        at=now,
        unit_id=case.unit_id,
        submission_id=submission_id,
        detail=detail,
    )
    extra = {"responded": {"response": case.response or ""}, "closed": {"outcome": case.outcome or ""}}.get(
        action, {}
    )
    payload = EVENTS[action](
        supervision_id=case.id,
        unit_id=case.unit_id,
        campaign_id=case.campaign_id,
        level=case.level,
        method=case.method,
        reason=case.reason,
        rectify_by=rectify_by,
        **extra,
    )
    ctx.outbox.add(uow, make_event(payload, producer=SERVICE, cause=cause))


def _one_up(value: str, ladder: tuple[str, ...]) -> str:
    return ladder[min(ladder.index(value) + 1, len(ladder) - 1)] if value in ladder else value


def escalate(uow: Session, ctx: ServiceContext, case_id: str, *, actor: Actor) -> Supervision | None:
    """Raise an open case whose rectification deadline passed by one level and one method (compare-and-set).

    A case already red and at interview (约谈) stays as it is; None when nothing changed.
    """
    now = ctx.clock.now()
    case = uow.get(Supervision, case_id)
    if case is None or case.state != "open" or case.rectify_by is None or as_utc(case.rectify_by) >= now:
        return None
    rules = rules_of(uow.get(ReviewCampaign, case.campaign_id))
    level, method = _one_up(case.level, LEVELS), _one_up(case.method, METHODS)
    if not rules.escalate or (level, method) == (case.level, case.method):
        return None
    before = f"{LEVEL_NAMES.get(case.level, case.level)}{METHOD_NAMES.get(case.method, case.method)}"
    changed = uow.execute(
        update(Supervision)
        .where(
            Supervision.id == case.id,
            Supervision.state == "open",
            Supervision.escalations == case.escalations,
        )
        .values(
            level=level,
            method=method,
            rectify_by=now + timedelta(days=rules.rectify_days),
            escalations=case.escalations + 1,
        )
    )
    if rows_affected(changed) != 1:
        return None
    uow.refresh(case)
    after = f"{LEVEL_NAMES[level]}{METHOD_NAMES[method]}"
    _step(uow, ctx, case, "escalated", actor, note=f"整改期限已过，由{before}升级为{after}")
    return case


def _visible_case(uow: Session, case_id: str, principal: Principal) -> Supervision:
    case = uow.get(Supervision, case_id, with_for_update=True)
    if case is None or not can_see_unit(principal, case.unit_path, case.unit_id):
        raise not_found("督办事项", "supervision", case_id)
    return case


def respond(
    ctx: ServiceContext,
    case_id: str,
    response: str,
    *,
    principal: Principal,
    request: RequestInfo | None = None,
) -> Supervision:
    """The supervised unit (or a unit above it) answers with its rectification report: open → responded."""
    with ctx.db.transaction() as uow:
        case = _visible_case(uow, case_id, principal)
        if case.state != "open":
            raise ApiError(
                409,
                "supervision_not_open",
                f"该督办事项{STATE_NAMES.get(case.state, case.state)}，不能再答复",
                f"the supervision is {case.state}; it takes no response",
            )
        case.state, case.response = "responded", response
        case.responded_by, case.responded_at = principal.name, ctx.clock.now()
        uow.flush()
        _step(uow, ctx, case, "responded", Actor.of(principal, request), note=response)
    return case


def close(
    ctx: ServiceContext,
    case_id: str,
    outcome: str,
    *,
    principal: Principal,
    request: RequestInfo | None = None,
) -> Supervision:
    """A reviewer or admin ends a case with its outcome: open or responded → closed."""
    with ctx.db.transaction() as uow:
        case = _visible_case(uow, case_id, principal)
        if case.state == "closed":
            raise ApiError(409, "supervision_closed", "该督办事项已办结", "the supervision is already closed")
        case.state, case.outcome = "closed", outcome
        case.closed_by, case.closed_at = principal.name, ctx.clock.now()
        uow.flush()
        _step(uow, ctx, case, "closed", Actor.of(principal, request), note=outcome)
    return case


def open_manual(
    ctx: ServiceContext,
    *,
    campaign_id: str,
    unit_id: str,
    level: str,
    method: str,
    reason: str,
    rectify_by: datetime | None,
    principal: Principal,
    request: RequestInfo | None = None,
) -> Supervision:
    """A reviewer or admin opens a case by hand (rule `manual`)."""
    now = ctx.clock.now()
    if rectify_by is not None and as_utc(rectify_by) <= now:
        raise ApiError(
            422, "rectify_by_past", "整改期限必须晚于当前时间", "rectify_by must lie in the future"
        )
    with ctx.db.transaction() as uow:
        if uow.get(ReviewCampaign, campaign_id) is None:
            raise not_found("活动", "campaign", campaign_id)
        unit = uow.get(ReviewUnit, unit_id)
        if unit is None:
            raise not_found("单位", "unit", unit_id)
        case = open_case(
            uow,
            ctx,
            campaign_id=campaign_id,
            unit_id=unit.unit_id,
            unit_path=unit.unit_path,
            rule="manual",
            level=level,
            method=method,
            reason=reason,
            actor=Actor.of(principal, request),
            rectify_by=rectify_by,
        )
    assert case is not None  # only cases with a rule_key can already exist
    return case


# --- the rules ---------------------------------------------------------------------------------------------------


def on_deadline_missed(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """deadline.missed opens a red phone supervision, once per campaign, unit and deadline (rule deadline_missed)."""
    data = read_payload(DeadlineMissed, event)
    if not rules_of(uow.get(ReviewCampaign, data.campaign_id)).deadline_missed:
        return
    unit = uow.get(ReviewUnit, data.unit_id)
    if unit is None:  # the unit's own event is still on its way: the bus retries this one later
        raise LookupError(f"deadline.missed for unit {data.unit_id}, which review does not know yet")
    missing = "、".join(data.missing)
    reason = f"逾期未完成“{data.deadline_name}”" + (f"，尚缺：{missing}" if missing else "")
    open_case(
        uow,
        ctx,
        campaign_id=data.campaign_id,
        unit_id=unit.unit_id,
        unit_path=unit.unit_path,
        rule="deadline_missed",
        level="red",
        method="phone",
        reason=reason,
        actor=Actor(SYSTEM),
        rule_key=f"deadline:{data.campaign_id}:{data.unit_id}:{data.deadline_code}",
        subject_id=data.deadline_code,
        cause=event,
    )


def inspection_breach(
    rules: Rules, *, problems: int, score: float | None, max_points: float | None
) -> str | None:
    """Why an inspection breaks the rules (Chinese), or None when it does not."""
    reasons = []
    if rules.inspection_problems is not None and problems >= rules.inspection_problems:
        reasons.append(f"检查发现问题 {problems} 项（达到 {rules.inspection_problems} 项）")
    if rules.inspection_min_ratio is not None and score is not None and max_points:
        floor = round(rules.inspection_min_ratio * max_points, 2)
        if score < floor:
            reasons.append(
                f"检查得分 {score:g} 分，低于 {floor:g} 分（满分 {max_points:g} 分的 {rules.inspection_min_ratio:.0%}）"
            )
    return "；".join(reasons) or None


def open_for_inspection(
    uow: Session,
    ctx: ServiceContext,
    *,
    inspection_id: str,
    campaign: ReviewCampaign,
    unit: ReviewUnit,
    problems: int,
    score: float | None,
    max_points: float | None,
    actor: Actor,
) -> Supervision | None:
    """Open a yellow on-site supervision when an inspection breaks the rules (rule inspection), in its transaction."""
    reason = inspection_breach(rules_of(campaign), problems=problems, score=score, max_points=max_points)
    if reason is None:
        return None
    return open_case(
        uow,
        ctx,
        campaign_id=campaign.campaign_id,
        unit_id=unit.unit_id,
        unit_path=unit.unit_path,
        rule="inspection",
        level="yellow",
        method="on_site",
        reason=reason,
        actor=actor,
        rule_key=f"inspection:{inspection_id}",
        subject_id=inspection_id,
    )


def _stale_returns(ctx: ServiceContext, now: datetime) -> list[tuple[ReviewItem, int]]:
    """Returned items not resubmitted within their campaign's returned_stale_days, that have no case yet."""
    with ctx.db.session() as uow:
        items = uow.scalars(
            select(ReviewItem)
            .where(
                ReviewItem.state == "returned",
                ReviewItem.campaign_id.is_not(None),
                ReviewItem.decided_at.is_not(None),
            )
            .order_by(ReviewItem.decided_at)
        ).all()
        rules = {cid: rules_of(uow.get(ReviewCampaign, cid)) for cid in {item.campaign_id for item in items}}
        taken = set(uow.scalars(select(Supervision.rule_key).where(Supervision.rule == "returned_stale")))
    due = []
    for item in items:
        days = rules[item.campaign_id].returned_stale_days
        if (
            days is not None
            and item.decided_at is not None
            and as_utc(item.decided_at) + timedelta(days=days) <= now
            and _returned_key(item) not in taken
        ):
            due.append((item, days))
    return due


def _returned_key(item: ReviewItem) -> str:
    return f"returned:{item.submission_id}:v{item.version}"


def _open_returned_stale(
    ctx: ServiceContext, item: ReviewItem, days: int, actor: Actor
) -> Supervision | None:
    with ctx.db.transaction() as uow:
        current = uow.get(ReviewItem, item.submission_id)
        if (
            current is None
            or current.state != "returned"
            or current.version != item.version
            or not item.campaign_id
        ):
            return None  # resubmitted meanwhile (the query only finds items of a campaign)
        unit = uow.get(ReviewUnit, item.unit_id)
        unit_path = current.unit_path or (unit.unit_path if unit is not None else "")
        reason = f"退回修改的“{item.title}”（第 {item.version} 版）超过 {days} 天未重新报送"
        return open_case(
            uow,
            ctx,
            campaign_id=item.campaign_id,
            unit_id=item.unit_id,
            unit_path=unit_path,
            rule="returned_stale",
            level="yellow",
            method="phone",
            reason=reason,
            actor=actor,
            rule_key=_returned_key(item),
            subject_id=item.submission_id,
            submission_id=item.submission_id,
        )


def run_rules(ctx: ServiceContext, *, actor: Actor | None = None) -> RulesRun:
    """One pass of the periodic rules: stale returned submissions, then escalation of overdue cases.

    Each case is its own transaction; a case another worker opened first (same rule_key) is skipped.
    """
    actor = actor or Actor(SYSTEM)
    rule_actor = Actor(SYSTEM, "", actor.principal, actor.request)
    now = ctx.clock.now()
    run = RulesRun()
    for item, days in _stale_returns(ctx, now):
        try:
            case = _open_returned_stale(ctx, item, days, rule_actor)
        except IntegrityError:
            log.info("returned-stale supervision for %s opened by another worker", item.submission_id)
            continue
        if case is not None:
            run.opened.append(case)
    with ctx.db.session() as uow:
        overdue = list(
            uow.scalars(
                select(Supervision.id)
                .where(
                    Supervision.state == "open",
                    Supervision.rectify_by.is_not(None),
                    Supervision.rectify_by < now,
                )
                .order_by(Supervision.opened_at)
            )
        )
    for case_id in overdue:
        with ctx.db.transaction() as uow:
            case = escalate(uow, ctx, case_id, actor=rule_actor)
        if case is not None:
            run.escalated.append(case)
    if run.opened or run.escalated:
        log.info("supervision rules: %d opened, %d escalated", len(run.opened), len(run.escalated))
    return run
