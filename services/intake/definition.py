"""Campaign definitions as data: the YAML/JSON format, its validation, and its canonical hash.

The format is documented in docs/campaign-definition.md. Parsing happens in three steps: the text is
read (YAML, or JSON) into plain data and a node tree that remembers each key's line; pydantic checks
types and required fields; `cross_check` checks what pydantic cannot see from one field (unique
codes, known parents, deadlines inside the campaign). Every problem becomes an `Issue` naming the
field (`measures[2].code`) and, where the text has lines, the line.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

CODE_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
Code = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=10000)]

# Levels of the unit tree; a child's rank must be greater than its parent's.
LEVEL_RANK = {"city": 0, "county": 1, "member": 1, "township": 2, "village": 3}
LEVEL_NAMES = {
    "city": "市",
    "county": "县（区）",
    "member": "市直单位",
    "township": "乡镇（街道）",
    "village": "村（社区）",
}
Level = Literal["city", "county", "member", "township", "village"]
EvidenceKind = Literal["photo", "video", "document"]
EVIDENCE_KINDS: tuple[EvidenceKind, ...] = ("photo", "video", "document")
REQUIREMENT_PATTERN = r"^(liaison|summary_report|measures|measure:[A-Za-z0-9_.-]{1,64})$"
MAX_DEFINITION_BYTES = 2 * 1024 * 1024


def _end_of_day(value: Any) -> Any:
    """A bare date means "by the end of that day" in the campaign's time zone."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(23, 59, 59))
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return datetime.combine(date.fromisoformat(value.strip()), time(23, 59, 59))
    return value


LocalTime = Annotated[datetime, BeforeValidator(_end_of_day)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class Window(_Model):
    """A span of whole days, both ends included."""

    start: date
    end: date


class Windows(_Model):
    """The campaign's publicity window and, if any, its inspection window."""

    publicity: Window
    inspection: Window | None = None


class EvidenceRule(_Model):
    """What proof a measure needs: at least min_count files of the accepted kinds."""

    min_count: int = Field(1, ge=0, le=100)
    kinds: list[EvidenceKind] = Field(default_factory=lambda: list(EVIDENCE_KINDS), min_length=1)


Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class MeasureText(_Model):
    """What the text in a measure's photos should say: the evidence worker reads it (OCR) and looks for these
    keywords; `expected` measures (banners, boards) get `no_campaign_text` when none is found."""

    keywords: list[Keyword] = Field(default_factory=list, max_length=100)
    expected: bool = True


class Measure(_Model):
    """A required publicity measure (宣传措施)."""

    code: Code
    name: Name
    description: LongText = ""
    evidence: EvidenceRule = Field(default_factory=EvidenceRule)
    weight: float = Field(1.0, ge=0, le=1000)
    text: MeasureText | None = None  # optional: keywords the photos' text should carry (docs/ocr.md)


class Topic(_Model):
    """A focus topic (宣传重点) the publicity should cover."""

    code: Code
    name: Name
    description: LongText = ""


class Deadline(_Model):
    """A date by which units must have done what `requires` lists."""

    code: Code
    name: Name
    due: LocalTime
    requires: list[Annotated[str, StringConstraints(pattern=REQUIREMENT_PATTERN)]] = []
    description: LongText = ""


class LiaisonDef(_Model):
    """A unit's liaison (联络员) as the office recorded it."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    email: EmailStr
    phone: Annotated[str, StringConstraints(pattern=r"^[0-9+\- ()]{3,32}$")] | None = None
    designated_at: LocalTime | None = None


class UnitDef(_Model):
    """A node of the unit tree."""

    code: Code
    name: Name
    level: Level
    parent: Code | None = None
    participates: bool = True
    liaison: LiaisonDef | None = None


class Material(_Model):
    """A reference material (参考资料) the office hands to every unit."""

    code: Code
    title: Name
    file: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = None
    description: LongText = ""

    @field_validator("file")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        # Resolved against the definition's folder by the CLI: never absolute, never climbing out.
        if value is not None and (
            value.startswith("/") or "\\" in value or ".." in value.split("/") or "\x00" in value
        ):
            raise ValueError("file must be a relative path inside the definition's folder")
        return value


class RubricMeasures(_Model):
    """Points for carried-out measures, split across the measures by their weight."""

    points: float = Field(ge=0)
    counts: Literal["approved"] = "approved"


class RubricTimeliness(_Model):
    """Points for meeting the listed deadlines, less a deduction per day late."""

    points: float = Field(ge=0)
    deadlines: list[Code] = []
    late_deduction_per_day: float = Field(0, ge=0)


class RubricCriterion(_Model):
    """One criterion inspectors score."""

    code: Code
    name: Name
    points: float = Field(ge=0)


class RubricInspection(_Model):
    """Points inspectors award, by criterion."""

    points: float = Field(ge=0)
    criteria: list[RubricCriterion] = []


class RubricSupervision(_Model):
    """Deductions per supervision (督办) by method, capped."""

    phone: float = Field(0, ge=0)
    on_site: float = Field(0, ge=0)
    interview: float = Field(0, ge=0)
    max_deduction: float | None = Field(None, ge=0)


class RubricGoodPractice(_Model):
    """A bonus per approved good-practice report, capped."""

    per_item: float = Field(0, ge=0)
    max_bonus: float = Field(0, ge=0)


class Rubric(_Model):
    """How units are scored (考核); the review service computes scores from it."""

    total: float = Field(gt=0)
    measures: RubricMeasures
    timeliness: RubricTimeliness
    inspection: RubricInspection
    supervision_deductions: RubricSupervision = Field(default_factory=RubricSupervision)
    good_practice: RubricGoodPractice = Field(default_factory=RubricGoodPractice)


class SupervisionRules(_Model):
    """When the review service opens, and how it escalates, a supervision (督办) by itself."""

    deadline_missed: bool = True  # a missed deadline opens a red supervision
    returned_stale_days: int | None = Field(
        5, ge=1, le=365
    )  # a returned submission not resubmitted within N days
    inspection_problems: int | None = Field(3, ge=1, le=100)  # this many problems in one inspection
    inspection_min_ratio: float | None = Field(
        0.6, ge=0, le=1
    )  # inspection points below this share of the maximum
    rectify_days: int = Field(5, ge=1, le=365)  # days a unit has to rectify
    escalate: bool = True  # a missed rectification deadline raises the level (blue→yellow→red) and the method


class CircularRules(_Model):
    """Who a circular (通报) commends and criticises."""

    commend_top: int = Field(3, ge=0, le=100)  # per unit level, among those at or above commend_min_score
    commend_min_score: float = Field(90, ge=0)
    criticise_below: float = Field(60, ge=0)  # and every unit with a red supervision


GroupPostedEvent = Literal[
    "campaign.published",
    "deadline.approaching",
    "deadline.missed",
    "submission.submitted",
    "submission.approved",
    "submission.returned",
    "submission.rejected",
    "inspection.recorded",
    "supervision.opened",
    "supervision.escalated",
    "supervision.closed",
    "circular.published",
]


class ChannelRules(_Model):
    """Which notices of a unit's liaison are also posted to the unit's group robots (DingTalk, WeCom); none by default.

    The robots themselves (webhook, secret) are configuration of the notification service, never part of a
    campaign: docs/notification.md.
    """

    unit_group: list[GroupPostedEvent] = []


class CoverageRule(_Model):
    """When an open cell turns red on the coverage matrix."""

    red_within_days: int = Field(3, ge=0, le=365)


class DateShift(_Model):
    """Every date of a definition moved by the same number of days, recorded on the campaign: how `make demo`
    runs an old plan as if it were under way today."""

    days: int = Field(ge=-36500, le=36500)
    source: Code  # the code of the definition the dates come from
    note: LongText = ""


class CampaignDefinition(_Model):
    """A whole campaign: the document an office loads to run it."""

    code: Code
    name: Name
    organiser: Name
    description: LongText = ""
    timezone: str = "Asia/Shanghai"
    windows: Windows
    deadlines: list[Deadline] = []
    measures: list[Measure] = Field(min_length=1)
    topics: list[Topic] = []
    units: list[UnitDef] = Field(min_length=1)
    rubric: Rubric | None = None
    materials: list[Material] = []
    coverage: CoverageRule = Field(default_factory=CoverageRule)
    supervision: SupervisionRules = Field(default_factory=SupervisionRules)
    circular: CircularRules = Field(default_factory=CircularRules)
    channels: ChannelRules = Field(default_factory=ChannelRules)
    shift: DateShift | None = None  # set when every date was moved from another definition's (see shifted())

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone: {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _to_utc(self) -> CampaignDefinition:
        # Times without an offset are the campaign's local time; everything is kept in UTC.
        zone = ZoneInfo(self.timezone)
        for deadline in self.deadlines:
            deadline.due = _utc(deadline.due, zone)
        for unit in self.units:
            if unit.liaison and unit.liaison.designated_at:
                unit.liaison.designated_at = _utc(unit.liaison.designated_at, zone)
        return self

    # -- lookups used by the service ------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        """The campaign's time zone."""
        return ZoneInfo(self.timezone)

    def publicity_starts_at(self) -> datetime:
        """The first instant of the publicity window, in UTC."""
        return datetime.combine(self.windows.publicity.start, time(0), self.zone).astimezone(UTC)

    def measure(self, code: str) -> Measure | None:
        """The measure with that code, if any."""
        return next((m for m in self.measures if m.code == code), None)

    def deadline_for(self, requirement: str) -> Deadline | None:
        """The earliest deadline that requires the item ("liaison", "summary_report", "measure:M1")."""
        wanted = {requirement, "measures"} if requirement.startswith("measure:") else {requirement}
        matching = [d for d in self.deadlines if wanted & set(d.requires)]
        return min(matching, key=lambda d: d.due) if matching else None

    def in_publicity_window(self, day: date) -> bool:
        """Whether a day falls inside the publicity window."""
        return self.windows.publicity.start <= day <= self.windows.publicity.end

    def shifted(self, days: int, *, code: str, name: str, note: str = "") -> CampaignDefinition:
        """A copy under a new code and name with every date (windows, deadlines, liaison designations) moved by
        days, all together, and the shift recorded in `shift`."""
        step = timedelta(days=days)

        def window(w: Window) -> Window:
            return Window(start=w.start + step, end=w.end + step)

        units = [
            u.model_copy(
                update={
                    "liaison": u.liaison.model_copy(update={"designated_at": u.liaison.designated_at + step})
                }
            )
            if u.liaison and u.liaison.designated_at
            else u
            for u in self.units
        ]
        source = self.shift.source if self.shift else self.code
        return self.model_copy(
            update={
                "code": code,
                "name": name,
                "units": units,
                "windows": Windows(
                    publicity=window(self.windows.publicity),
                    inspection=window(self.windows.inspection) if self.windows.inspection else None,
                ),
                "deadlines": [d.model_copy(update={"due": d.due + step}) for d in self.deadlines],
                "shift": DateShift(
                    days=days + (self.shift.days if self.shift else 0), source=source, note=note
                ),
            }
        )


def _utc(value: datetime, zone: ZoneInfo) -> datetime:
    return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)


# ---------------------------------------------------------------- problems


@dataclass(frozen=True)
class Issue:
    """One problem in a definition: which field, which line (if known), what is wrong."""

    loc: tuple[str | int, ...]
    message: str
    message_en: str
    line: int | None = None

    @property
    def field(self) -> str:
        """The field path as people write it: measures[2].code."""
        return field_path(self.loc)

    def describe(self) -> str:
        """One Chinese line for people: field, line, problem."""
        where = f"（第 {self.line} 行）" if self.line else ""
        return f"{self.field or '（整个文件）'}{where}：{self.message}"

    def describe_en(self) -> str:
        """The same line in English."""
        where = f" (line {self.line})" if self.line else ""
        return f"{self.field or '(document)'}{where}: {self.message_en}"

    def as_dict(self) -> dict:
        """The issue as the API returns it."""
        return {
            "field": self.field,
            "line": self.line,
            "message": self.message,
            "message_en": self.message_en,
        }


class DefinitionInvalid(ValueError):
    """A definition was refused; carries every issue found."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(issue.describe_en() for issue in issues))
        self.issues = issues


def field_path(loc: tuple[str | int, ...]) -> str:
    """("measures", 2, "code") → "measures[2].code"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_PYDANTIC_ZH = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不认识的字段（是否拼写错误？）",
    "string_pattern_mismatch": "格式不正确",
    "string_too_short": "不能为空",
    "string_too_long": "内容太长",
    "string_type": "应为文本",
    "literal_error": "取值不在允许的范围内",
    "date_parsing": "日期格式不正确，应为 YYYY-MM-DD",
    "date_from_datetime_parsing": "日期格式不正确，应为 YYYY-MM-DD",
    "date_from_datetime_inexact": "日期不应带时间",
    "date_type": "应为日期（YYYY-MM-DD）",
    "datetime_parsing": "时间格式不正确，应为 YYYY-MM-DD 或 YYYY-MM-DDTHH:MM:SS+08:00",
    "datetime_from_date_parsing": "时间格式不正确，应为 YYYY-MM-DD 或 YYYY-MM-DDTHH:MM:SS+08:00",
    "datetime_type": "应为日期或时间",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "greater_than": "数值太小",
    "greater_than_equal": "数值太小",
    "less_than": "数值太大",
    "less_than_equal": "数值太大",
    "too_short": "项数太少",
    "too_long": "项数太多",
    "list_type": "应为列表",
    "model_type": "应为键值映射",
    "model_attributes_type": "应为键值映射",
    "dict_type": "应为键值映射",
    "value_error": "取值不正确",
}


_VALUE_ERRORS_ZH = {
    "email": "电子邮箱格式不正确",
    "time zone": "不认识的时区",
    "relative path": "应为定义文件所在文件夹内的相对路径",
}


def _from_pydantic(error: ErrorDetails) -> Issue:
    loc = tuple(
        part
        for part in error["loc"]
        if not (isinstance(part, str) and part.startswith(("function-", "constrained-")))
    )
    zh = _PYDANTIC_ZH.get(error["type"], "取值不正确")
    message = str(error.get("msg", ""))
    if error["type"] == "value_error":
        zh = next((text for needle, text in _VALUE_ERRORS_ZH.items() if needle in message.lower()), zh)
    return Issue(loc=loc, message=zh, message_en=error["msg"])


# ---------------------------------------------------------------- reading text


def parse_definition(text: str, *, fmt: str | None = None) -> CampaignDefinition:
    """Read and validate a definition (YAML or JSON); raises DefinitionInvalid naming each bad field."""
    if len(text.encode("utf-8")) > MAX_DEFINITION_BYTES:
        raise DefinitionInvalid(
            [
                Issue(
                    (),
                    f"定义文件太大（上限 {MAX_DEFINITION_BYTES} 字节）",
                    f"definition larger than {MAX_DEFINITION_BYTES} bytes",
                )
            ]
        )
    fmt = fmt or sniff_format(text)
    data, root, issues = _read(text, fmt)
    line_of = _line_finder(root)
    if not issues and not isinstance(data, dict):
        issues = [
            Issue(
                (),
                "定义应为键值映射（顶层是 code、name、measures 等字段）",
                "the definition must be a mapping at the top level",
            )
        ]
    if issues:
        raise DefinitionInvalid([_with_line(i, line_of) for i in issues])
    try:
        definition = CampaignDefinition.model_validate(data)
    except ValidationError as exc:
        raise DefinitionInvalid([_with_line(_from_pydantic(e), line_of) for e in exc.errors()]) from None
    problems = cross_check(definition)
    if problems:
        raise DefinitionInvalid([_with_line(i, line_of) for i in problems])
    return definition


def sniff_format(text: str) -> str:
    """ "json" when the text starts with a brace, else "yaml"."""
    return "json" if text.lstrip("\ufeff \t\r\n").startswith("{") else "yaml"


class _Loader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: dates stay text for pydantic, so a bad date is a field error."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read(text: str, fmt: str) -> tuple[Any, yaml.Node | None, list[Issue]]:
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return (
                None,
                None,
                [Issue((), f"JSON 语法错误：{exc.msg}", f"JSON syntax error: {exc.msg}", exc.lineno)],
            )
        try:  # JSON is (almost always) YAML too: compose it only to learn the lines
            root = yaml.compose(text, Loader=_Loader)
        except yaml.YAMLError:
            root = None
        return data, root, _duplicate_keys(root)
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        return (
            None,
            None,
            [
                Issue(
                    (),
                    f"YAML 语法错误：{problem}",
                    f"YAML syntax error: {problem}",
                    mark.line + 1 if mark else None,
                )
            ],
        )
    return data, root, _duplicate_keys(root)


def _duplicate_keys(root: yaml.Node | None) -> list[Issue]:
    issues: list[Issue] = []

    def walk(node: yaml.Node, loc: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
                if name in seen:
                    issues.append(
                        Issue(loc + (name,), "字段重复出现", "duplicate key", key.start_mark.line + 1)
                    )
                seen.add(name)
                walk(value, loc + (name,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, loc + (index,))

    if root is not None:
        walk(root, ())
    return issues


def _line_finder(root: yaml.Node | None) -> Callable[[tuple], int | None]:
    def line_of(loc: tuple) -> int | None:
        if root is None:
            return None
        node, line = root, root.start_mark.line + 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = next(
                    (
                        (k, v)
                        for k, v in node.value
                        if isinstance(k, yaml.ScalarNode) and k.value == str(part)
                    ),
                    None,
                )
                if match is None:
                    break
                line, node = match[0].start_mark.line + 1, match[1]
            elif (
                isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value)
            ):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line

    return line_of


def _with_line(issue: Issue, line_of: Callable[[tuple], int | None]) -> Issue:
    if issue.line is not None:
        return issue
    return Issue(issue.loc, issue.message, issue.message_en, line_of(issue.loc))


# ---------------------------------------------------------------- cross-field checks


def cross_check(d: CampaignDefinition) -> list[Issue]:
    """What one field cannot tell: unique codes, the unit tree, deadlines and the rubric."""
    issues: list[Issue] = []
    for section in ("measures", "topics", "deadlines", "units", "materials"):
        issues += _unique_codes(section, getattr(d, section))
    issues += _check_windows(d)
    issues += _check_deadlines(d)
    issues += _check_units(d)
    if d.rubric:
        issues += _check_rubric(d, d.rubric)
    return issues


def _unique_codes(section: str, items: list) -> list[Issue]:
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.code in seen:
            issues.append(
                Issue(
                    (section, index, "code"),
                    f"代码 {item.code} 重复（与第 {seen[item.code] + 1} 项相同）",
                    f"duplicate code {item.code} (same as item {seen[item.code] + 1})",
                )
            )
        else:
            seen[item.code] = index
    return issues


def _check_windows(d: CampaignDefinition) -> list[Issue]:
    issues = []
    for name in ("publicity", "inspection"):
        window = getattr(d.windows, name)
        if window and window.end < window.start:
            issues.append(
                Issue(("windows", name, "end"), "结束日期早于开始日期", "end date is before the start date")
            )
    return issues


def _check_deadlines(d: CampaignDefinition) -> list[Issue]:
    issues = []
    start = d.publicity_starts_at()
    measures = {m.code for m in d.measures}
    for index, deadline in enumerate(d.deadlines):
        if deadline.due < start:
            issues.append(
                Issue(
                    ("deadlines", index, "due"),
                    f"截止时间早于宣传期开始（{d.windows.publicity.start}）",
                    f"deadline is before the publicity window starts ({d.windows.publicity.start})",
                )
            )
        for j, requirement in enumerate(deadline.requires):
            if requirement.startswith("measure:") and requirement.split(":", 1)[1] not in measures:
                issues.append(
                    Issue(
                        ("deadlines", index, "requires", j),
                        f"不认识的宣传措施：{requirement.split(':', 1)[1]}",
                        f"unknown measure: {requirement.split(':', 1)[1]}",
                    )
                )
    return issues


def _check_units(d: CampaignDefinition) -> list[Issue]:
    issues = []
    by_code = {u.code: u for u in d.units}
    for index, unit in enumerate(d.units):
        if unit.parent is None:
            continue
        parent = by_code.get(unit.parent)
        if parent is None:
            issues.append(
                Issue(
                    ("units", index, "parent"),
                    f"上级单位 {unit.parent} 不在 units 中",
                    f"unknown parent unit {unit.parent}",
                )
            )
        elif unit.parent == unit.code:
            issues.append(
                Issue(("units", index, "parent"), "单位不能是自己的上级", "a unit cannot be its own parent")
            )
        elif LEVEL_RANK[unit.level] <= LEVEL_RANK[parent.level]:
            issues.append(
                Issue(
                    ("units", index, "level"),
                    f"层级 {unit.level}（{LEVEL_NAMES[unit.level]}）不能隶属于 {parent.level}（{LEVEL_NAMES[parent.level]}）",
                    f"level {unit.level} cannot sit under {parent.level}",
                )
            )
    # Ranks strictly grow towards the leaves, so with known parents and valid levels no cycle is possible.
    return issues


def _check_rubric(d: CampaignDefinition, rubric: Rubric) -> list[Issue]:
    issues: list[Issue] = []
    parts = rubric.measures.points + rubric.timeliness.points + rubric.inspection.points
    if abs(parts - rubric.total) > 1e-6:
        issues.append(
            Issue(
                ("rubric", "total"),
                f"各部分分值之和（{parts:g}）不等于总分（{rubric.total:g}）",
                f"the parts add up to {parts:g}, not the total {rubric.total:g}",
            )
        )
    deadlines = {x.code for x in d.deadlines}
    for j, code in enumerate(rubric.timeliness.deadlines):
        if code not in deadlines:
            issues.append(
                Issue(
                    ("rubric", "timeliness", "deadlines", j),
                    f"不认识的截止时间：{code}",
                    f"unknown deadline: {code}",
                )
            )
    criteria = sum(c.points for c in rubric.inspection.criteria)
    if rubric.inspection.criteria and abs(criteria - rubric.inspection.points) > 1e-6:
        issues.append(
            Issue(
                ("rubric", "inspection", "points"),
                f"检查各项分值之和（{criteria:g}）不等于检查分值",
                f"inspection criteria add up to {criteria:g}, not {rubric.inspection.points:g}",
            )
        )
    issues += _unique_codes_at(("rubric", "inspection", "criteria"), rubric.inspection.criteria)
    if sum(m.weight for m in d.measures) <= 0 and rubric.measures.points > 0:
        issues.append(
            Issue(("measures",), "所有宣传措施权重均为 0，无法分配措施分值", "all measure weights are 0")
        )
    return issues


def _unique_codes_at(loc: tuple, items: list) -> list[Issue]:
    return [Issue(loc + i.loc[1:], i.message, i.message_en) for i in _unique_codes("_", items)]


# ---------------------------------------------------------------- identity of a definition


def canonical_json(definition: CampaignDefinition) -> str:
    """The normalised definition as compact JSON with sorted keys (what versions are compared by)."""
    data = definition.model_dump(mode="json")
    if not definition.channels.unit_group:
        del data["channels"]  # a definition without the (later) section keeps the hash it had
    for measure in data["measures"]:
        if measure.get("text") is None:
            measure.pop("text", None)  # a definition without text keywords keeps the hash it had before them
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def definition_sha256(definition: CampaignDefinition) -> str:
    """SHA-256 of the canonical JSON: equal for the same content whatever its layout or format."""
    return hashlib.sha256(canonical_json(definition).encode("utf-8")).hexdigest()


_PARSED: OrderedDict[str, CampaignDefinition] = OrderedDict()
_PARSED_LOCK = threading.Lock()
_PARSED_MAX = 32


def stored_definition(sha256: str, load_text: Callable[[], str | None]) -> CampaignDefinition | None:
    """A stored (valid, UTC-normalised) definition by its hash, parsed once per process.

    load_text is only called on a miss: a 5,000-unit definition is half a megabyte, too much to fetch
    and parse for every request or every unit touched.
    """
    with _PARSED_LOCK:
        if sha256 in _PARSED:
            _PARSED.move_to_end(sha256)
            return _PARSED[sha256]
    text = load_text()
    if text is None:
        return None
    definition = CampaignDefinition.model_validate_json(text)
    with _PARSED_LOCK:
        _PARSED[sha256] = definition
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return definition
