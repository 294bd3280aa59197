"""Inspections (检查): record a phone or on-site check of a unit, score it by the rubric, and apply the rule.

Recording is one transaction: the Inspection row with its score, its timeline record, its audit row, the
`inspection.recorded` event and, when the inspection breaks the campaign's supervision rules, a yellow on-site
supervision (services/review/supervision/). Photos go through evidence_storage, which takes uploads for an
inspection id once it has consumed `inspection.recorded`; they come back on `evidence.stored`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from services.review import activity, rubric
from services.review.inspections.schemas import InspectionCreate
from services.review.models import (
    Inspection,
    ReviewCampaign,
    ReviewEvidence,
    ReviewUnit,
    SamplingDraw,
    Supervision,
)
from services.review.supervision import use_cases as supervision
from shared.auth import Principal, can_see_unit
from shared.contracts import make_event
from shared.contracts.review import InspectionRecorded
from shared.events import new_id
from shared.http import ApiError, not_found
from shared.request_context import RequestInfo
from shared.runtime import ServiceContext

SERVICE = "review"
NO_WINDOW_GRACE = timedelta(
    days=30
)  # without an inspection window: the publicity window and 30 days after it


@dataclass
class Recorded:
    """An inspection as the API shows it: the row, its score breakdown, photos and the cases it opened."""

    inspection: Inspection
    scores: list[rubric.CriterionScore]
    max_points: float | None
    photos: list[ReviewEvidence]
    supervision_ids: list[str]


def _invalid(code: str, message: str, message_en: str) -> ApiError:
    return ApiError(422, code, message, message_en)


def inspection_window(campaign: ReviewCampaign) -> tuple[date, date]:
    """The dates an inspection may carry: the inspection window, else the publicity window and 30 days after."""
    if campaign.inspection_start and campaign.inspection_end:
        return campaign.inspection_start, campaign.inspection_end
    return campaign.publicity_start, campaign.publicity_end + NO_WINDOW_GRACE


def measure_codes(campaign: ReviewCampaign) -> list[str]:
    """The campaign's measure codes in definition order."""
    return [m["code"] for m in campaign.measures or []]


def validate(
    facts: InspectionCreate,
    campaign: ReviewCampaign,
    scheme: rubric.Rubric | None,
    *,
    today: date | None = None,
) -> list[str]:
    """Check dates, counts, measure codes and criteria (422 in Chinese); returns the verified codes, de-duplicated.

    `today` (the campaign's local date) refuses an inspection dated in the future.
    """
    start, end = inspection_window(campaign)
    if not start <= facts.inspected_on <= end:
        raise _invalid(
            "outside_inspection_window",
            f"检查日期 {facts.inspected_on.isoformat()} 不在检查时间（{start.isoformat()} 至 {end.isoformat()}）内",
            f"inspected_on {facts.inspected_on} lies outside the inspection window {start}..{end}",
        )
    if today is not None and facts.inspected_on > today:
        raise _invalid(
            "inspection_in_future",
            f"检查日期 {facts.inspected_on.isoformat()} 晚于今天（{today.isoformat()}）",
            f"inspected_on {facts.inspected_on} is after today ({today})",
        )
    for part, whole, part_zh, whole_zh in (
        (facts.residents_aware, facts.residents_asked, "知晓网上信访的群众", "抽查群众"),
        (facts.residents_able, facts.residents_asked, "会使用网上信访的群众", "抽查群众"),
        (facts.staff_proficient, facts.staff_tested, "熟练掌握的工作人员", "抽查工作人员"),
    ):
        if part > whole:
            raise _invalid(
                "inconsistent_counts",
                f"{part_zh}人数（{part}）不能多于{whole_zh}人数（{whole}）",
                f"a spot-check count ({part}) exceeds the number asked or tested ({whole})",
            )
    known = measure_codes(campaign)
    unknown = [code for code in facts.measures_verified if code not in known]
    if unknown:
        raise _invalid(
            "unknown_measure",
            f"本活动没有这些宣传措施：{'、'.join(unknown)}（应为 {'、'.join(known)} 之一）",
            f"unknown measure codes for this campaign: {', '.join(unknown)}",
        )
    judged = {c.code for c in scheme.criteria} - set(rubric.COUNTED_CRITERIA) if scheme else set()
    stray = [code for code in facts.criteria if code not in judged]
    if stray:
        allowed = "、".join(sorted(judged)) or "无"
        raise _invalid(
            "unknown_criterion",
            f"以下评分项不由检查人员评定：{'、'.join(stray)}（可评定：{allowed}）",
            f"these criteria are not scored by the inspector: {', '.join(stray)}",
        )
    return list(dict.fromkeys(facts.measures_verified))


def _sampling_check(uow, facts: InspectionCreate) -> None:
    if facts.sampling_id is None:
        return
    draw = uow.get(SamplingDraw, facts.sampling_id)
    if draw is None or draw.campaign_id != facts.campaign_id:
        raise not_found("抽查记录", "sampling", facts.sampling_id)
    if facts.unit_id not in draw.selected:
        raise _invalid(
            "unit_not_sampled", "该单位不在这次抽查抽中的单位之中", "the unit was not drawn in that sampling"
        )


def score(campaign: ReviewCampaign, row) -> tuple[list[rubric.CriterionScore], float | None]:
    """The per-criterion scores and the maximum inspection points under the campaign's rubric ([] and None without one)."""
    scheme = rubric.parse(campaign.rubric)
    if scheme is None:
        return [], None
    return rubric.inspection_scores(
        scheme, row, measure_codes(campaign), given=row.criteria
    ), scheme.inspection_points


def record(
    ctx: ServiceContext, facts: InspectionCreate, *, principal: Principal, request: RequestInfo | None = None
) -> Recorded:
    """Validate, score and store an inspection; open a supervision when it breaks the rules."""
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        campaign = uow.get(ReviewCampaign, facts.campaign_id)
        if campaign is None:
            raise not_found("活动", "campaign", facts.campaign_id)
        unit = uow.get(ReviewUnit, facts.unit_id)
        if unit is None:
            raise not_found("单位", "unit", facts.unit_id)
        if unit.campaign_id not in (None, campaign.campaign_id):
            raise _invalid(
                "unit_not_in_campaign", "该单位不属于本次活动", "the unit does not take part in this campaign"
            )
        scheme = rubric.parse(campaign.rubric)
        today = ctx.clock.now().astimezone(ZoneInfo(campaign.timezone or "Asia/Shanghai")).date()
        verified = validate(facts, campaign, scheme, today=today)
        _sampling_check(uow, facts)
        row = Inspection(
            id=new_id(),
            campaign_id=campaign.campaign_id,
            unit_id=unit.unit_id,
            unit_path=unit.unit_path or "",
            sampling_id=facts.sampling_id,
            method=facts.method,
            inspected_on=facts.inspected_on,
            inspector=principal.name,
            measures_verified=verified,
            residents_asked=facts.residents_asked,
            residents_aware=facts.residents_aware,
            residents_able=facts.residents_able,
            staff_tested=facts.staff_tested,
            staff_proficient=facts.staff_proficient,
            findings=facts.findings,
            problems=list(facts.problems),
            criteria=dict(facts.criteria),
            recorded_at=now,
        )
        scores, max_points = score(campaign, row)
        row.score = rubric.inspection_total(scores) if scheme else None
        uow.add(row)
        uow.flush()
        detail = {
            "method": row.method,
            "inspected_on": row.inspected_on.isoformat(),
            "score": row.score,
            "measures_verified": verified,
            "problems": row.problems,
            "sampling_id": row.sampling_id,
        }
        activity.record(
            uow,
            activity.Actor.of(principal, request),
            "inspection.recorded",
            ("inspection", row.id),
            at=now,
            unit_id=row.unit_id,
            detail=detail,
        )
        ctx.outbox.add(
            uow,
            make_event(
                InspectionRecorded(
                    inspection_id=row.id,
                    unit_id=row.unit_id,
                    campaign_id=row.campaign_id,
                    method=row.method,
                    inspected_on=row.inspected_on,
                    inspector=row.inspector,
                    measures_verified=verified,
                    residents_asked=row.residents_asked,
                    residents_aware=row.residents_aware,
                    residents_able=row.residents_able,
                    staff_tested=row.staff_tested,
                    staff_proficient=row.staff_proficient,
                    findings=row.findings,
                    problems=row.problems,
                    score=row.score,
                ),
                producer=SERVICE,
            ),
        )
        case = supervision.open_for_inspection(
            uow,
            ctx,
            inspection_id=row.id,
            campaign=campaign,
            unit=unit,
            problems=len(row.problems),
            score=row.score,
            max_points=max_points,
            actor=activity.Actor(activity.SYSTEM, "", principal, request),
        )
    return Recorded(row, scores, max_points, [], [case.id] if case else [])


def read(ctx: ServiceContext, inspection_id: str, *, principal: Principal) -> Recorded:
    """One inspection with its score breakdown, photos and supervisions (404 outside the caller's subtree)."""
    with ctx.db.session() as uow:
        row = uow.get(Inspection, inspection_id)
        if row is None or not can_see_unit(principal, row.unit_path, row.unit_id):
            raise not_found("检查记录", "inspection", inspection_id)
        return _present(uow, [row])[0]


def listing(ctx: ServiceContext, query, *, limit: int, offset: int) -> list[Recorded]:
    """Inspections matching a prepared query, newest inspection date first."""
    with ctx.db.session() as uow:
        rows = list(
            uow.scalars(
                query.order_by(Inspection.inspected_on.desc(), Inspection.recorded_at.desc())
                .limit(limit)
                .offset(offset)
            )
        )
        return _present(uow, rows)


def _present(uow, rows: list[Inspection]) -> list[Recorded]:
    ids = [row.id for row in rows]
    photos: dict[str, list[ReviewEvidence]] = {}
    for evidence in uow.scalars(select(ReviewEvidence).where(ReviewEvidence.submission_id.in_(ids))):
        photos.setdefault(evidence.submission_id, []).append(evidence)
    cases: dict[str, list[str]] = {}
    for case_id, subject in uow.execute(
        select(Supervision.id, Supervision.subject_id).where(
            Supervision.rule == "inspection", Supervision.subject_id.in_(ids)
        )
    ):
        cases.setdefault(subject, []).append(case_id)
    campaigns: dict[str, ReviewCampaign | None] = {}
    out = []
    for row in rows:
        if row.campaign_id not in campaigns:
            campaigns[row.campaign_id] = uow.get(ReviewCampaign, row.campaign_id)
        campaign = campaigns[row.campaign_id]
        scores, max_points = score(campaign, row) if campaign is not None else ([], None)
        out.append(Recorded(row, scores, max_points, photos.get(row.id, []), cases.get(row.id, [])))
    return out
