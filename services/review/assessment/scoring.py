"""The assessment (考核): every participating unit's score under the campaign's rubric, as of a moment.

`load_facts` reads the dated facts that existed at time T (decisions decided, versions handed in,
inspections recorded and supervision steps taken at or before T, liaisons named by T); `assess` is
a pure function of those facts. Every point is a `Line` naming the submission, inspection,
supervision, liaison or deadline behind it; a unit's lines add up to its total. How each part is
computed: docs/assessment-circulars.md.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.review import rubric as rubrics
from services.review.models import (
    Inspection,
    ReviewCampaign,
    ReviewDecision,
    ReviewUnit,
    ReviewVersion,
    Supervision,
    SupervisionChange,
)
from shared.clock import as_utc
from shared.http import ApiError, not_found

PARTS = ("measures", "timeliness", "inspection", "deductions", "bonus")
PART_NAMES = {
    "measures": "宣传措施",
    "timeliness": "报送时效",
    "inspection": "检查",
    "deductions": "督办扣分",
    "bonus": "经验做法加分",
}
LEVEL_ORDER = ("city", "county", "member", "township", "village")
LEVEL_NAMES = {
    "city": "市",
    "county": "县（区）",
    "member": "市直单位",
    "township": "乡镇（街道）",
    "village": "村（社区）",
}
SUPERVISION_LEVELS = {"blue": "蓝", "yellow": "黄", "red": "红"}
SUPERVISION_METHODS = {"phone": "电话", "on_site": "实地", "interview": "约谈"}
SUPERVISION_STATES = {"open": "督办中", "responded": "已反馈", "closed": "已办结"}
INSPECTION_METHODS = {"phone": "电话", "on_site": "实地"}
LIAISON_DEADLINE = "liaison"  # the deadline met by naming a liaison; every other one by the summary report
_STATE_AFTER = {"opened": "open", "escalated": "open", "responded": "responded", "closed": "closed"}


# ---------------------------------------------------------------- facts as of a moment


@dataclass(frozen=True)
class CampaignFacts:
    """The campaign's rules as review knows them (its latest published version)."""

    campaign_id: str
    code: str
    name: str
    organiser: str
    version: int
    timezone: str
    measures: list[dict]
    deadlines: list[dict]
    rubric: dict | None
    circular_rules: dict

    @property
    def zone(self) -> ZoneInfo:
        """The campaign's time zone."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class UnitFacts:
    """A participating unit; its liaison counts only if named by the moment assessed."""

    unit_id: str
    code: str
    name: str
    level: str
    unit_path: str
    liaison_designated_at: datetime | None


@dataclass(frozen=True)
class VersionFact:
    """A version handed in."""

    submission_id: str
    version: int
    unit_id: str
    measure_code: str
    kind: str
    submitted_at: datetime


@dataclass(frozen=True)
class DecisionFact:
    """A reviewer's decision on a version."""

    id: int
    submission_id: str
    unit_id: str
    measure_code: str
    kind: str
    version: int
    decision: str
    score: float | None
    decided_at: datetime


@dataclass(frozen=True)
class InspectionFact:
    """An inspection as recorded (also what rubric.inspection_scores reads)."""

    id: str
    unit_id: str
    method: str
    inspected_on: date
    recorded_at: datetime
    score: float | None
    measures_verified: list[str]
    residents_asked: int
    residents_aware: int
    residents_able: int
    staff_tested: int
    staff_proficient: int
    criteria: dict


@dataclass(frozen=True)
class SupervisionFact:
    """A supervision opened by the moment assessed, with its level, method and state at that moment."""

    id: str
    unit_id: str
    reason: str
    opened_at: datetime
    level: str
    method: str
    state: str


@dataclass(frozen=True)
class Facts:
    """Everything the assessment of one campaign counts, as of one moment."""

    campaign: CampaignFacts
    as_of: datetime
    units: list[UnitFacts]
    versions: list[VersionFact] = field(default_factory=list)
    decisions: list[DecisionFact] = field(default_factory=list)
    inspections: list[InspectionFact] = field(default_factory=list)
    supervisions: list[SupervisionFact] = field(default_factory=list)


def campaign_facts(row: ReviewCampaign) -> CampaignFacts:
    """The campaign row as plain data."""
    return CampaignFacts(
        campaign_id=row.campaign_id,
        code=row.code,
        name=row.name,
        organiser=row.organiser or "",
        version=row.version,
        timezone=row.timezone or "Asia/Shanghai",
        measures=list(row.measures or []),
        deadlines=list(row.deadlines or []),
        rubric=row.rubric,
        circular_rules=dict(row.circular_rules or {}),
    )


def load_campaign(uow: Session, campaign_id: str) -> CampaignFacts:
    """The campaign with a rubric; 404 when review does not know it, 422 when it has no rubric."""
    row = uow.get(ReviewCampaign, campaign_id)
    if row is None:
        raise not_found("活动", "campaign", campaign_id)
    if not row.rubric:
        raise ApiError(
            422,
            "no_rubric",
            "该活动未设置考核细则（rubric），无法计算考核得分",
            "the campaign has no scoring rubric; nothing to assess",
        )
    return campaign_facts(row)


def load_facts(uow: Session, campaign_id: str, as_of: datetime) -> Facts:
    """Read the campaign's facts that existed at as_of (times compared in UTC)."""
    campaign = load_campaign(uow, campaign_id)
    at = as_utc(as_of)
    units = [
        UnitFacts(
            u.unit_id,
            u.code,
            u.name,
            u.level,
            u.unit_path or "",
            as_utc(u.liaison_designated_at)
            if u.liaison_designated_at and as_utc(u.liaison_designated_at) <= at
            else None,
        )
        for u in uow.scalars(
            select(ReviewUnit).where(ReviewUnit.campaign_id == campaign_id, ReviewUnit.participates.is_(True))
        )
    ]
    ids = {u.unit_id for u in units}

    def ours(column):  # facts from before events carried the campaign have none; the unit decides
        return or_(column == campaign_id, column.is_(None))

    # Plain column rows, not ORM objects: building tens of thousands of instances is most of the time.
    v_ = ReviewVersion
    versions = [
        VersionFact(v.submission_id, v.version, v.unit_id, v.measure_code, v.kind, as_utc(v.submitted_at))
        for v in uow.execute(
            select(v_.submission_id, v_.version, v_.unit_id, v_.measure_code, v_.kind, v_.submitted_at).where(
                ours(v_.campaign_id), v_.submitted_at <= at
            )
        )
        if v.unit_id in ids
    ]
    d_ = ReviewDecision
    decisions = [
        DecisionFact(
            d.id,
            d.submission_id,
            d.unit_id,
            d.measure_code,
            d.kind,
            d.version,
            d.decision,
            d.score,
            as_utc(d.decided_at),
        )
        for d in uow.execute(
            select(
                d_.id,
                d_.submission_id,
                d_.unit_id,
                d_.measure_code,
                d_.kind,
                d_.version,
                d_.decision,
                d_.score,
                d_.decided_at,
            ).where(ours(d_.campaign_id), d_.decided_at <= at)
        )
        if d.unit_id in ids
    ]
    inspections = [
        InspectionFact(
            i.id,
            i.unit_id,
            i.method,
            i.inspected_on,
            as_utc(i.recorded_at),
            i.score,
            list(i.measures_verified or []),
            i.residents_asked,
            i.residents_aware,
            i.residents_able,
            i.staff_tested,
            i.staff_proficient,
            dict(i.criteria or {}),
        )
        for i in uow.scalars(
            select(Inspection).where(Inspection.campaign_id == campaign_id, Inspection.recorded_at <= at)
        )
        if i.unit_id in ids
    ]
    opened = list(
        uow.scalars(
            select(Supervision).where(Supervision.campaign_id == campaign_id, Supervision.opened_at <= at)
        )
    )
    steps: dict[str, list[SupervisionChange]] = defaultdict(list)
    if opened:
        for change in uow.scalars(
            select(SupervisionChange).where(
                SupervisionChange.supervision_id.in_(
                    select(Supervision.id).where(
                        Supervision.campaign_id == campaign_id, Supervision.opened_at <= at
                    )
                ),
                SupervisionChange.at <= at,
            )
        ):
            steps[change.supervision_id].append(change)
    supervisions = [_supervision_as_of(s, steps.get(s.id, [])) for s in opened if s.unit_id in ids]
    return Facts(
        campaign=campaign,
        as_of=at,
        units=units,
        versions=versions,
        decisions=decisions,
        inspections=inspections,
        supervisions=supervisions,
    )


def _supervision_as_of(row: Supervision, changes: list[SupervisionChange]) -> SupervisionFact:
    level, method, state = row.level, row.method, "open"
    if changes:
        last = max(changes, key=lambda c: (as_utc(c.at), c.id))
        level, method, state = last.level, last.method, _STATE_AFTER.get(last.action, "open")
    return SupervisionFact(row.id, row.unit_id, row.reason, as_utc(row.opened_at), level, method, state)


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Line:
    """Points from one fact: a negative line is a deduction."""

    part: str  # measures, timeliness, inspection, deductions, bonus
    points: float
    max_points: float
    source_type: str  # submission, inspection, supervision, liaison, deadline
    source_id: str | None
    note: str  # Chinese
    item: str | None = None  # the measure, deadline or criterion code the line is about


@dataclass
class UnitResult:
    """One unit's score, its lines, its rank within its level, and what the circular reports about it."""

    unit_id: str
    code: str
    name: str
    level: str
    unit_path: str
    lines: list[Line]
    parts: dict[str, float]
    total: float
    rank: int = 0
    inspected: bool = False
    missing_measures: list[str] = field(default_factory=list)  # measure names not approved
    deadline_findings: list[str] = field(default_factory=list)  # Chinese: late or missing reports
    supervisions: list[SupervisionFact] = field(default_factory=list)

    @property
    def red_supervision(self) -> bool:
        """Whether a supervision of this unit is red as of the moment assessed."""
        return any(s.level == "red" for s in self.supervisions)


@dataclass
class Assessment:
    """All participating units' results, ranked within each level."""

    campaign: CampaignFacts
    as_of: datetime
    units: list[UnitResult]

    def by_level(self) -> list[tuple[str, list[UnitResult]]]:
        """(level, units in rank order) for each level, in the unit tree's order."""
        groups: dict[str, list[UnitResult]] = defaultdict(list)
        for unit in self.units:
            groups[unit.level].append(unit)
        return [
            (level, sorted(groups[level], key=lambda u: (u.rank, u.code))) for level in level_order(groups)
        ]

    def unit(self, unit_id: str) -> UnitResult | None:
        """One unit's result."""
        return next((u for u in self.units if u.unit_id == unit_id), None)


def level_order(levels: Iterable[str]) -> list[str]:
    """Levels from the top of the tree down; unknown levels last, by name."""
    known = [level for level in LEVEL_ORDER if level in levels]
    return known + sorted(set(levels) - set(LEVEL_ORDER))


def round2(value: float) -> float:
    """Round half up to 2 decimals, as people round by hand (2.675 → 2.68)."""
    return float(Decimal(repr(float(value))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) + 0.0


def fmt(value: float) -> str:
    """A figure without trailing zeros: 7.50 → 7.5, 5.00 → 5."""
    return f"{round2(value):g}"


# ---------------------------------------------------------------- the computation


def assess(facts: Facts) -> Assessment:
    """Score and rank every participating unit from the facts (pure)."""
    rubric = rubrics.parse(facts.campaign.rubric)
    if rubric is None:
        raise ValueError("the campaign has no rubric")
    by_unit: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for kind, items in (
        ("versions", facts.versions),
        ("decisions", facts.decisions),
        ("inspections", facts.inspections),
        ("supervisions", facts.supervisions),
    ):
        for item in items:
            by_unit[item.unit_id][kind].append(item)
    results = [_unit_result(unit, rubric, facts, by_unit[unit.unit_id]) for unit in facts.units]
    rank(results)
    return Assessment(campaign=facts.campaign, as_of=facts.as_of, units=results)


def rank(results: list[UnitResult]) -> None:
    """Rank within each level by total, highest first; equal totals share a rank (1, 2, 2, 4)."""
    groups: dict[str, list[UnitResult]] = defaultdict(list)
    for result in results:
        groups[result.level].append(result)
    for group in groups.values():
        group.sort(key=lambda r: (-r.total, r.code))
        for position, result in enumerate(group, start=1):
            previous = group[position - 2] if position > 1 else None
            result.rank = (
                previous.rank if previous is not None and previous.total == result.total else position
            )


def _unit_result(unit: UnitFacts, rubric: rubrics.Rubric, facts: Facts, mine: dict[str, list]) -> UnitResult:
    zone = facts.campaign.zone
    latest = _latest_decisions(mine["decisions"])
    measure_lines, missing = _measure_lines(
        rubric, facts.campaign.measures, mine["versions"], mine["decisions"], latest
    )
    timeliness_lines, findings = _timeliness_lines(
        rubric, facts.campaign.deadlines, unit, mine["versions"], mine["decisions"], facts.as_of, zone
    )
    measures_total = round2(sum(line.points for line in measure_lines))
    inspection_lines = _inspection_lines(
        rubric, facts.campaign.measures, mine["inspections"], measures_total, zone
    )
    supervisions = sorted(mine["supervisions"], key=lambda s: (s.opened_at, s.id))
    deduction_lines = _deduction_lines(rubric, supervisions)
    bonus_lines = _bonus_lines(rubric, mine["decisions"], latest)
    lines = measure_lines + timeliness_lines + inspection_lines + deduction_lines + bonus_lines
    parts = {part: round2(sum(line.points for line in lines if line.part == part)) for part in PARTS}
    parts["deductions"] = round2(-parts["deductions"]) + 0.0
    total = round2(
        parts["measures"] + parts["timeliness"] + parts["inspection"] - parts["deductions"] + parts["bonus"]
    )
    return UnitResult(
        unit_id=unit.unit_id,
        code=unit.code,
        name=unit.name,
        level=unit.level,
        unit_path=unit.unit_path,
        lines=lines,
        parts=parts,
        total=total,
        inspected=bool(mine["inspections"]),
        missing_measures=missing,
        deadline_findings=findings,
        supervisions=supervisions,
    )


def _latest_decisions(decisions: list[DecisionFact]) -> dict[str, DecisionFact]:
    latest: dict[str, DecisionFact] = {}
    for decision in sorted(decisions, key=lambda d: (d.decided_at, d.id)):
        latest[decision.submission_id] = decision
    return latest


def _measure_lines(
    rubric: rubrics.Rubric,
    measures: list[dict],
    versions: list[VersionFact],
    decisions: list[DecisionFact],
    latest: dict[str, DecisionFact],
) -> tuple[list[Line], list[str]]:
    shares = rubrics.measure_shares(rubric, measures)
    returned_before = {d.submission_id for d in decisions if d.decision == "returned"}
    lines, missing = [], []
    for measure in measures:
        code, name, share = measure["code"], measure.get("name", measure["code"]), shares[measure["code"]]
        mine = [d for d in latest.values() if d.kind == "measure" and d.measure_code == code]
        approved = [d for d in mine if d.decision == "approved"]
        if approved:
            best = max(approved, key=lambda d: (_share_of(d.score), -d.decided_at.timestamp()))
            points = round2(share * _share_of(best.score))
            how = "经退回修改后审核通过" if best.submission_id in returned_before else "审核通过"
            scored = f"，评分 {fmt(best.score)}" if best.score is not None else "（未评分，按满分计）"
            lines.append(
                Line(
                    "measures",
                    points,
                    round2(share),
                    "submission",
                    best.submission_id,
                    f"{name}：{how}{scored}，得 {fmt(points)}/{fmt(share)} 分",
                    code,
                )
            )
            continue
        missing.append(name)
        handed = sorted(
            (v for v in versions if v.kind == "measure" and v.measure_code == code),
            key=lambda v: (v.submitted_at, v.version),
        )
        if not handed and not mine:
            lines.append(Line("measures", 0.0, round2(share), "submission", None, f"{name}：未报送", code))
            continue
        newest = (
            handed[-1].submission_id
            if handed
            else max(mine, key=lambda d: (d.decided_at, d.id)).submission_id
        )
        decision = latest.get(newest)
        pending = handed and (
            decision is None
            or any(v.submission_id == newest and v.version > decision.version for v in handed)
        )
        state = (
            "已报送，待审核"
            if pending
            else "已退回修改，尚未审核通过"
            if decision is not None and decision.decision == "returned"
            else "未通过审核（已驳回）"
        )
        lines.append(Line("measures", 0.0, round2(share), "submission", newest, f"{name}：{state}", code))
    return lines, missing


def _share_of(score: float | None) -> float:
    return 1.0 if score is None else min(max(score, 0.0), 100.0) / 100.0


def _timeliness_lines(
    rubric: rubrics.Rubric,
    deadlines: list[dict],
    unit: UnitFacts,
    versions: list[VersionFact],
    decisions: list[DecisionFact],
    as_of: datetime,
    zone: ZoneInfo,
) -> tuple[list[Line], list[str]]:
    known = {d["code"]: d for d in deadlines}
    listed = [known[code] for code in rubric.timeliness_deadlines if code in known]
    if not listed:
        if rubric.timeliness_points <= 0:
            return [], []
        return [
            Line(
                "timeliness",
                round2(rubric.timeliness_points),
                round2(rubric.timeliness_points),
                "deadline",
                None,
                "考核细则未列截止时间，时效分按满分计",
            )
        ], []
    share = rubric.timeliness_points / len(listed)
    rejected = {d.submission_id for d in decisions if d.decision == "rejected"}
    summaries = sorted(
        (v for v in versions if v.kind == "summary_report" and v.submission_id not in rejected),
        key=lambda v: (v.submitted_at, v.submission_id, v.version),
    )
    lines, findings = [], []
    for deadline in listed:
        due, name = _due(deadline), deadline.get("name") or deadline["code"]
        met_at: datetime | None = None  # when the deadline's item was done, from source (kind, id)
        source: tuple[str, str] = ("deadline", deadline["code"])
        if deadline["code"] == LIAISON_DEADLINE:
            met_at, source = unit.liaison_designated_at, ("liaison", unit.unit_id)
            verb = "完成"
        else:
            if summaries:
                met_at, source = summaries[0].submitted_at, ("submission", summaries[0].submission_id)
            verb = "报送"
        if met_at is None:
            overdue = as_of > due
            state = "逾期未报送" if overdue else "尚未报送"
            lines.append(
                Line(
                    "timeliness",
                    0.0,
                    round2(share),
                    "deadline",
                    deadline["code"],
                    f"{name}：{state}（截止 {_day(due, zone)}）",
                    deadline["code"],
                )
            )
            if overdue:
                findings.append(f"{name}逾期未报送")
            continue
        if met_at <= due:
            lines.append(
                Line(
                    "timeliness",
                    round2(share),
                    round2(share),
                    source[0],
                    source[1],
                    f"{name}：{_day(met_at, zone)}{verb}，未超过截止时间（{_day(due, zone)}）",
                    deadline["code"],
                )
            )
            continue
        days = math.ceil((met_at - due) / timedelta(days=1))
        points = round2(max(share - days * rubric.late_deduction_per_day, 0.0))
        lines.append(
            Line(
                "timeliness",
                points,
                round2(share),
                source[0],
                source[1],
                f"{name}：{_day(met_at, zone)}{verb}，逾期 {days} 天（截止 {_day(due, zone)}），"
                f"扣 {fmt(round2(share) - points)} 分",
                deadline["code"],
            )
        )
        findings.append(f"{name}逾期 {days} 天")
    return lines, findings


def _due(deadline: dict) -> datetime:
    value = deadline["due_at"]
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def _day(at: datetime, zone: ZoneInfo) -> str:
    local = at.astimezone(zone)
    return f"{local.month}月{local.day}日"


def _inspection_lines(
    rubric: rubrics.Rubric,
    measures: list[dict],
    inspections: list[InspectionFact],
    measures_total: float,
    zone: ZoneInfo,
) -> list[Line]:
    if not inspections:
        ratio = measures_total / rubric.measure_points if rubric.measure_points > 0 else 0.0
        points = round2(rubric.inspection_points * ratio)
        return [
            Line(
                "inspection",
                points,
                round2(rubric.inspection_points),
                "inspection",
                None,
                f"未被抽查，按审核通过比例折算（措施得分 {fmt(measures_total)}/{fmt(rubric.measure_points)}）",
            )
        ]
    latest = max(inspections, key=lambda i: (i.recorded_at, i.id))
    when = f"{latest.inspected_on.month}月{latest.inspected_on.day}日{INSPECTION_METHODS.get(latest.method, latest.method)}检查"
    scores = rubrics.inspection_scores(rubric, latest, [m["code"] for m in measures], latest.criteria)
    computed = rubrics.inspection_total(scores)
    if latest.score is None or abs(latest.score - computed) < 0.005:
        return [
            Line(
                "inspection",
                s.points,
                round2(s.max_points),
                "inspection",
                latest.id,
                f"{when} · {s.name}：{s.note}",
                s.code,
            )
            for s in scores
        ]
    return [
        Line(
            "inspection",
            round2(latest.score),
            round2(rubric.inspection_points),
            "inspection",
            latest.id,
            f"{when}得分 {fmt(latest.score)}/{fmt(rubric.inspection_points)}",
        )
    ]


def _deduction_lines(rubric: rubrics.Rubric, supervisions: list[SupervisionFact]) -> list[Line]:
    lines, taken = [], 0.0
    cap = rubric.max_deduction
    for case in supervisions:
        amount = rubric.deductions.get(case.method, 0.0)
        applied = amount if cap is None else max(min(amount, cap - taken), 0.0)
        taken += applied
        kind = f"{SUPERVISION_LEVELS.get(case.level, case.level)}色{SUPERVISION_METHODS.get(case.method, case.method)}督办"
        note = f"{kind}（{case.reason}），扣 {fmt(applied)} 分"
        if cap is not None and applied < amount:
            note += f"（扣分上限 {fmt(cap)} 分，应扣 {fmt(amount)} 分）"
        lines.append(Line("deductions", round2(-applied) + 0.0, 0.0, "supervision", case.id, note))
    return lines


def _bonus_lines(
    rubric: rubrics.Rubric, decisions: list[DecisionFact], latest: dict[str, DecisionFact]
) -> list[Line]:
    approved = sorted(
        (d for d in latest.values() if d.kind == "good_practice" and d.decision == "approved"),
        key=lambda d: (d.decided_at, d.id),
    )
    lines, given = [], 0.0
    for decision in approved:
        points = max(min(rubric.good_practice_per_item, rubric.good_practice_max - given), 0.0)
        given += points
        note = f"经验做法审核通过，加 {fmt(points)} 分"
        if points < rubric.good_practice_per_item:
            note += f"（加分上限 {fmt(rubric.good_practice_max)} 分）"
        lines.append(
            Line(
                "bonus",
                round2(points),
                round2(rubric.good_practice_per_item),
                "submission",
                decision.submission_id,
                note,
            )
        )
    return lines


# ---------------------------------------------------------------- moments


@dataclass(frozen=True)
class AsOf:
    """The moment an assessment or circular is computed at, and whether the asked-for moment was pulled back to now."""

    at: datetime  # UTC
    clamped: bool = False


def resolve_as_of(
    text: str | None, zone: ZoneInfo, now: datetime, *, default: datetime | None = None
) -> AsOf:
    """The one `as_of` rule of the assessment and of circulars (docs/assessment-circulars.md).

    A date means the end of that day in the campaign's time zone; a datetime without an offset is campaign time;
    nothing means `default` (else now). A moment after now means now: the facts known so far, since later ones
    cannot be known yet (and deadlines between now and then are not missed yet). Both answer the moment used.
    """
    wanted = (
        parse_as_of(text, zone, now)
        if text and text.strip()
        else (as_utc(default) if default else as_utc(now))
    )
    current = as_utc(now)
    return AsOf(current, True) if wanted > current else AsOf(wanted, False)


def parse_as_of(text: str | None, zone: ZoneInfo, now: datetime) -> datetime:
    """A moment from an ISO date (the end of that day, campaign time) or datetime (no offset: campaign time); None: now."""
    if text is None or not text.strip():
        return as_utc(now)
    value = text.strip()
    try:
        if len(value) == 10:
            return end_of_day(date.fromisoformat(value), zone)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            422,
            "invalid_as_of",
            "as_of 格式不正确，应为 YYYY-MM-DD 或 YYYY-MM-DDTHH:MM:SS+08:00",
            "as_of must be an ISO date or datetime",
        ) from None
    return as_utc(moment if moment.tzinfo else moment.replace(tzinfo=zone))


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The last instant of a local day, in UTC."""
    return datetime.combine(day, time(23, 59, 59, 999999), zone).astimezone(UTC)


def compute(uow: Session, campaign_id: str, as_of: datetime) -> Assessment:
    """Load the campaign's facts as of a moment and assess them."""
    return assess(load_facts(uow, campaign_id, as_of))


def line_dict(line: Line) -> dict[str, Any]:
    """A line as plain JSON."""
    return {
        "part": line.part,
        "item": line.item,
        "points": line.points,
        "max_points": line.max_points,
        "source_type": line.source_type,
        "source_id": line.source_id,
        "note": line.note,
    }
