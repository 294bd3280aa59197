"""The campaign's scoring rubric (考核细则), read from the JSON that campaign.published carries.

Pure functions: no database, no clock. The assessment and the inspection form both score with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# Inspection criteria the system can score from the spot-check counts; any other criterion code
# is scored by the inspector as a share (0..1) in the inspection's `criteria`.
COUNTED_CRITERIA = ("measures_in_place", "residents_aware", "residents_able", "staff_proficient")
METHODS = ("phone", "on_site", "interview")


@dataclass(frozen=True)
class Criterion:
    """One inspection criterion and its points."""

    code: str
    name: str
    points: float


@dataclass(frozen=True)
class Rubric:
    """How units are scored; parts add up to `total`, good practice is a capped bonus on top."""

    total: float
    measure_points: float
    timeliness_points: float
    timeliness_deadlines: tuple[str, ...]
    late_deduction_per_day: float
    inspection_points: float
    criteria: tuple[Criterion, ...]
    deductions: dict[str, float] = field(default_factory=dict)  # per supervision, by method
    max_deduction: float | None = None
    good_practice_per_item: float = 0.0
    good_practice_max: float = 0.0


def parse(data: dict[str, Any] | None) -> Rubric | None:
    """The rubric of a campaign, or None when its definition has none."""
    if not data:
        return None
    measures, timeliness, inspection = data["measures"], data["timeliness"], data["inspection"]
    supervision, good = data.get("supervision_deductions") or {}, data.get("good_practice") or {}
    return Rubric(
        total=float(data["total"]),
        measure_points=float(measures["points"]),
        timeliness_points=float(timeliness["points"]),
        timeliness_deadlines=tuple(timeliness.get("deadlines") or ()),
        late_deduction_per_day=float(timeliness.get("late_deduction_per_day") or 0),
        inspection_points=float(inspection["points"]),
        criteria=tuple(
            Criterion(c["code"], c["name"], float(c["points"])) for c in inspection.get("criteria") or ()
        ),
        deductions={m: float(supervision.get(m) or 0) for m in METHODS},
        max_deduction=None
        if supervision.get("max_deduction") is None
        else float(supervision["max_deduction"]),
        good_practice_per_item=float(good.get("per_item") or 0),
        good_practice_max=float(good.get("max_bonus") or 0),
    )


def measure_shares(rubric: Rubric, measures: list[dict[str, Any]]) -> dict[str, float]:
    """The points each measure is worth: the measure points split by the measures' weights."""
    weights = {m["code"]: float(m.get("weight", 1.0)) for m in measures}
    total = sum(weights.values())
    if total <= 0:
        return dict.fromkeys(weights, 0.0)
    return {code: rubric.measure_points * weight / total for code, weight in weights.items()}


class InspectionFacts(Protocol):
    """What an inspection recorded (the Inspection row, or the API body before it is stored)."""

    # Read-only properties, so frozen dataclasses (assessment's InspectionFact) qualify too.
    @property
    def measures_verified(self) -> list[str]: ...
    @property
    def residents_asked(self) -> int: ...
    @property
    def residents_aware(self) -> int: ...
    @property
    def residents_able(self) -> int: ...
    @property
    def staff_tested(self) -> int: ...
    @property
    def staff_proficient(self) -> int: ...


@dataclass(frozen=True)
class CriterionScore:
    """Points one inspection earned on one criterion, with how they were reached."""

    code: str
    name: str
    points: float
    max_points: float
    note: str  # Chinese, e.g. "抽查群众 10 人，知晓 8 人"


def _share(part: int, whole: int) -> float:
    return min(max(part / whole, 0.0), 1.0) if whole > 0 else 0.0


def inspection_scores(
    rubric: Rubric, facts: InspectionFacts, measure_codes: list[str], given: dict[str, float] | None = None
) -> list[CriterionScore]:
    """Score one inspection on each criterion; without criteria, the measures in place earn all points.

    `given` holds the inspector's shares (0..1) for criteria the counts cannot score.
    """
    given = given or {}
    criteria = rubric.criteria or (
        Criterion("measures_in_place", "宣传措施落实到位", rubric.inspection_points),
    )
    verified = [code for code in facts.measures_verified if code in measure_codes]
    scores = []
    for c in criteria:
        if c.code in given:
            share, note = min(max(float(given[c.code]), 0.0), 1.0), f"检查人员评定 {float(given[c.code]):.0%}"
        elif c.code == "measures_in_place":
            share = _share(len(verified), len(measure_codes))
            note = f"核实措施 {len(verified)}/{len(measure_codes)} 项"
        elif c.code == "residents_aware":
            share = _share(facts.residents_aware, facts.residents_asked)
            note = (
                f"抽查群众 {facts.residents_asked} 人，知晓 {facts.residents_aware} 人"
                if facts.residents_asked
                else "未抽查群众"
            )
        elif c.code == "residents_able":
            share = _share(facts.residents_able, facts.residents_asked)
            note = (
                f"抽查群众 {facts.residents_asked} 人，会使用 {facts.residents_able} 人"
                if facts.residents_asked
                else "未抽查群众"
            )
        elif c.code == "staff_proficient":
            share = _share(facts.staff_proficient, facts.staff_tested)
            note = (
                f"抽查工作人员 {facts.staff_tested} 人，熟练掌握 {facts.staff_proficient} 人"
                if facts.staff_tested
                else "未抽查工作人员"
            )
        else:
            share, note = 0.0, "检查人员未评定该项"
        scores.append(CriterionScore(c.code, c.name, round(c.points * share, 2), c.points, note))
    return scores


def inspection_total(scores: list[CriterionScore]) -> float:
    """The inspection points of a scored inspection."""
    return round(sum(s.points for s in scores), 2)
