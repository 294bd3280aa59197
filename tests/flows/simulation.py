"""A whole campaign played on a controllable clock: the cast of units and their behaviour as data, and the driver.

The Huaibei definition (deploy/campaigns/huaibei-2020.yaml) is loaded as it is, except that two member
units are left out (14 take part: 4 county-level, 10 member units) and two units name no liaison in it
(市交通运输局 names one 2 days late through the API, 市农业农村局 never does). Every unit acts through the
HTTP API with its own unit token; the office, reviewer and inspector with theirs. The clock stands still
unless the driver moves it: each simulated day starts at 08:00 with the intake worker's deadline watcher
and the review worker's supervision rules, then the day's reports, inspections, answers and review
passes follow, and every step waits until the in-process bus has settled. The story of each unit:
docs/simulation.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from PIL import Image

from services.intake.deadlines import watch_deadlines
from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT, issuer_from_settings
from shared.clock import FixedClock
from shared.messaging import Outbox

DEFINITION = Path(__file__).resolve().parents[2] / "deploy" / "campaigns" / "huaibei-2020.yaml"
ZONE = ZoneInfo("Asia/Shanghai")
YEAR = 2020
START, END = "03-05", "04-10"
LEFT_OUT = ("CGJ", "HBJ")  # two member units stay out, so 14 take part
WITHOUT_LIAISON = ("JTJ", "NYJ")  # named by the unit later (JTJ) or never (NYJ)
MEASURES = ("M1", "M2", "M3", "M4", "M5", "M6", "M7")
REVIEW_PASSES = (
    "03-16",
    "03-19",
    "03-23",
    "03-28",
    "04-02",
    "04-08",
)  # the reviewer works the queue at 15:00
SAMPLING_DAY, SAMPLE_SIZE = "03-21", 5
# random.Random(SAMPLING_SEED).sample(population of 14 sorted by code, 5) draws DJQ, GAJ, SJJ, SXX and XSQ:
# the seed was chosen once so that the inspections of the cast follow a real, reproducible draw.
SAMPLING_SEED = 2257
TOPICS = {
    "M1": ["T1", "T3"],
    "M2": ["T1", "T4", "T5"],
    "M3": ["T2"],
    "M4": ["T3", "T4"],
    "M5": ["T1"],
    "M6": ["T5", "T6"],
    "M7": ["T1", "T2", "T3", "T4", "T5", "T6"],
}


def at(day: str, hhmm: str = "10:00") -> datetime:
    """A local campaign moment ("03-14", "10:00") as an aware UTC time."""
    month, dom = (int(part) for part in day.split("-"))
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime(YEAR, month, dom, hour, minute, tzinfo=ZONE).astimezone(UTC)


def day_of(day: str) -> date:
    """ "03-14" as a date of the campaign year."""
    month, dom = (int(part) for part in day.split("-"))
    return date(YEAR, month, dom)


# ---------------------------------------------------------------- the cast, as data


@dataclass(frozen=True)
class Approve:
    """The reviewer approves the version with a score (share of the measure's points, %)."""

    score: float = 100


@dataclass(frozen=True)
class Return:
    """The reviewer returns the version; the unit resubmits it on a day with new photos, or never."""

    comment: str
    resubmit_on: str | None = None
    files: int = 1


@dataclass(frozen=True)
class Reject:
    """The reviewer rejects the version."""

    reason: str


@dataclass(frozen=True)
class Report:
    """One submission a unit hands in, its photos, and what the reviewer decides on each version."""

    kind: str  # measure, summary_report, good_practice
    on: str
    measure: str | None = None
    files: int = 1
    verdicts: tuple = (Approve(),)  # one per version
    copies: tuple[str, str] | None = (
        None  # (unit code, label): its first photo is that unit's report's, byte for byte
    )

    @property
    def label(self) -> str:
        """M3, summary_report or good_practice."""
        return self.measure or self.kind


@dataclass(frozen=True)
class InspectionPlan:
    """What the inspector records for the unit."""

    on: str
    method: str  # phone, on_site
    measures_verified: tuple[str, ...]
    residents: tuple[int, int, int]  # asked, aware, able
    staff: tuple[int, int]  # tested, proficient
    findings: str
    problems: tuple[str, ...] = ()
    sampled: bool = True  # drawn by the sampling; False: a targeted check


@dataclass(frozen=True)
class Act:
    """A dated step outside the queue: a liaison named, a supervision opened, answered or closed."""

    on: str
    what: str  # liaison, open, respond, close
    text: str = ""
    rule: str = ""  # the supervision's rule (respond, close)
    subject: str | None = None  # the rule's subject, e.g. the deadline code
    level: str = ""
    method: str = ""
    email: str = ""  # the liaison's (liaison)
    hhmm: str = "11:00"


@dataclass(frozen=True)
class UnitPlan:
    """One participating unit of the definition and how it behaves through the campaign."""

    code: str
    shows: str
    reports: tuple[Report, ...] = ()
    inspection: InspectionPlan | None = None
    acts: tuple[Act, ...] = ()


def measures(
    on: str,
    *,
    only: tuple[str, ...] = MEASURES,
    scores: dict[str, float] | None = None,
    verdicts: dict[str, tuple] | None = None,
    copies: dict[str, tuple[str, str]] | None = None,
    files: dict[str, int],
) -> tuple[Report, ...]:
    """A unit's reports on measures, all handed in on one day with the photos each measure needs."""
    scores, verdicts, copies = scores or {}, verdicts or {}, copies or {}
    return tuple(
        Report(
            "measure",
            on,
            code,
            files=files[code],
            copies=copies.get(code),
            verdicts=verdicts.get(code, (Approve(scores.get(code, 100)),)),
        )
        for code in only
    )


def summary(on: str) -> Report:
    """The unit's summary report (活动总结) with one photo."""
    return Report("summary_report", on)


def good_practices(*days: str) -> tuple[Report, ...]:
    """Good-practice reports (经验做法), one per day given."""
    return tuple(Report("good_practice", day) for day in days)


def perfect(on: str, method: str) -> InspectionPlan:
    """An inspection that finds everything in place and everyone informed."""
    return InspectionPlan(
        on,
        method,
        MEASURES,
        (10, 10, 10),
        (5, 5),
        "七项宣传措施全部落实，群众和工作人员普遍知晓并会使用网上信访。",
    )


def min_files() -> dict[str, int]:
    """Photos each measure needs (evidence.min_count of the definition)."""
    definition = yaml.safe_load(DEFINITION.read_text(encoding="utf-8"))
    return {m["code"]: m["evidence"]["min_count"] for m in definition["measures"]}


def cast() -> tuple[UnitPlan, ...]:
    """The 14 participating units and their behaviour (docs/simulation.md)."""
    need = min_files()
    return (
        # 三区一县 (county level)
        UnitPlan(
            "XSQ",
            "model county: complete and on time, perfect on-site inspection, two good practices",
            reports=measures("03-10", files=need) + (summary("04-01"),) + good_practices("03-18", "04-01"),
            inspection=perfect("03-23", "on_site"),
        ),
        UnitPlan(
            "DJQ",
            "returned then fixed: its banner photos (M5) are returned, resubmitted and approved",
            reports=measures(
                "03-11",
                files=need,
                verdicts={
                    "M5": (
                        Return(
                            "横幅照片模糊，看不清横幅内容和悬挂地点，请补充清晰照片",
                            resubmit_on="03-18",
                            files=2,
                        ),
                        Approve(),
                    )
                },
            )
            + (summary("04-01"),),
            inspection=InspectionPlan(
                "03-25", "phone", MEASURES, (10, 9, 8), (4, 3), "电话抽查群众和工作人员，知晓率较高。"
            ),
        ),
        UnitPlan(
            "LSQ",
            "good-practice champion: seven reports approved, the bonus stops at 5",
            reports=measures("03-12", files=need)
            + (summary("04-01"),)
            + good_practices("03-20", "03-26", "04-01", "04-01", "04-02", "04-02", "04-03"),
        ),
        UnitPlan(
            "SXX",
            "fails its on-site inspection: 3 of 7 measures in place, 4 problems → yellow on-site supervision; answers, closed",
            reports=measures("03-12", files=need) + (summary("04-01"),),
            inspection=InspectionPlan(
                "03-24",
                "on_site",
                ("M1", "M2", "M3"),
                (10, 3, 1),
                (5, 1),
                "报送材料齐全，但现场多项宣传措施未见落实。",
                (
                    "宣传横幅已撤除，现场未见横幅",
                    "未见公益广告牌、电子屏宣传内容",
                    "未开展巡回宣讲",
                    "抽查群众多数不了解网上信访",
                ),
            ),
            acts=(
                Act(
                    "03-28",
                    "respond",
                    "已重新悬挂横幅，电子屏滚动播放宣传标语，3月27日开展巡回宣讲。",
                    rule="inspection",
                ),
                Act("03-30", "close", "经复查，问题已整改到位。", rule="inspection", hhmm="16:00"),
            ),
        ),
        # 市直单位 (member units)
        UnitPlan(
            "GAJ",
            "model member unit: complete and on time, perfect on-site inspection",
            reports=measures("03-11", files=need) + (summary("04-01"),),
            inspection=perfect("03-24", "on_site"),
        ),
        UnitPlan(
            "RSJ",
            "reviewer scores below 100 on four measures",
            reports=measures("03-12", files=need, scores={"M1": 90, "M2": 80, "M4": 90, "M7": 80})
            + (summary("04-01"),),
        ),
        UnitPlan(
            "ZJJ",
            "copies 市公安局's M3 photo byte for byte: flagged duplicate, rejected; hands in its own, approved at 80",
            reports=measures(
                "03-12",
                files=need,
                copies={"M3": ("GAJ", "M3")},
                verdicts={"M3": (Reject("照片与其他单位报送的照片完全相同，不能作为本单位佐证"),)},
            )
            + (Report("measure", "03-18", "M3", verdicts=(Approve(80),)), summary("04-01")),
        ),
        UnitPlan(
            "ZRJ",
            "returned and never resubmitted: returned_stale supervision escalates to 约谈; summary deadline missed",
            reports=measures(
                "03-11", files=need, verdicts={"M6": (Return("未见LED电子屏或村社广播的宣传内容，请补充"),)}
            )
            + (summary("04-01"),),
        ),
        UnitPlan(
            "JYJ",
            "lagging: the reviewer opens a yellow phone supervision; ignored past its deadline it becomes red "
            "on-site; the unit catches up and answers; closed",
            reports=measures("03-11", files=need, only=("M1", "M2", "M3"))
            + measures("03-27", files=need, only=("M4", "M5", "M6", "M7"))
            + (summary("04-01"),),
            acts=(
                Act(
                    "03-20",
                    "open",
                    "宣传措施推进缓慢：截至3月20日仅报送M1—M3，M4—M7尚未报送",
                    level="yellow",
                    method="phone",
                ),
                Act("03-27", "respond", "已补报M4—M7全部宣传措施材料。", rule="manual"),
                Act("03-30", "close", "已补齐材料，督办事项办结。", rule="manual", hhmm="16:00"),
            ),
        ),
        UnitPlan(
            "WJW",
            "summary report 2 days late: summary deadline missed → red phone supervision; answers, closed",
            reports=measures("03-13", files=need) + (summary("04-07"),),
            acts=(
                Act(
                    "04-07", "respond", "活动总结已于4月7日补报。", rule="deadline_missed", subject="summary"
                ),
                Act(
                    "04-08",
                    "close",
                    "已补报，督办事项办结。",
                    rule="deadline_missed",
                    subject="summary",
                    hhmm="16:00",
                ),
            ),
        ),
        UnitPlan(
            "MZJ",
            "complete and on time, not inspected (inspection points follow its approved measures)",
            reports=measures("03-13", files=need) + (summary("04-01"),),
        ),
        UnitPlan(
            "SJJ",
            "complete and on time, phone inspection with imperfect spot checks",
            reports=measures("03-10", files=need) + (summary("04-01"),),
            inspection=InspectionPlan(
                "03-26", "phone", MEASURES, (10, 8, 7), (5, 4), "电话抽查，部分群众不会使用网上信访。"
            ),
        ),
        UnitPlan(
            "NYJ",
            "silent: no liaison, nothing handed in; a targeted phone inspection finds nothing; "
            "three supervisions, deductions capped at 20",
            inspection=InspectionPlan(
                "03-23",
                "phone",
                (),
                (5, 0, 0),
                (2, 0),
                "电话检查：单位尚未开展宣传月工作。",
                ("未召开专题会议部署宣传月工作", "信访接待场所未设置网上信访宣传角", "未开展任何宣传活动"),
                sampled=False,
            ),
        ),
        UnitPlan(
            "JTJ",
            "liaison named 2 days late: liaison deadline missed → red phone supervision; answers, closed",
            reports=measures("03-15", files=need) + (summary("04-01"),),
            acts=(
                Act("03-14", "liaison", "许亮", email="xu.liang@example.org", hhmm="10:00"),
                Act(
                    "03-14",
                    "respond",
                    "已于3月14日明确联络员许亮。",
                    rule="deadline_missed",
                    subject="liaison",
                ),
                Act(
                    "03-16",
                    "close",
                    "已明确联络员，督办事项办结。",
                    rule="deadline_missed",
                    subject="liaison",
                    hhmm="16:00",
                ),
            ),
        ),
    )


def definition_json() -> str:
    """The Huaibei definition as the simulation loads it: two member units out, two liaisons left to the units."""
    data = yaml.safe_load(DEFINITION.read_text(encoding="utf-8"))
    data["units"] = [u for u in data["units"] if u["code"] not in LEFT_OUT]
    for unit in data["units"]:
        if unit["code"] in WITHOUT_LIAISON:
            unit.pop("liaison", None)
    return json.dumps(data, ensure_ascii=False, default=str)


def photo(key: str) -> bytes:
    """A small JPEG of random colour blocks, the same for the same key and unlike any other key's."""
    rng = random.Random(hashlib.sha256(key.encode("utf-8")).digest())
    image = Image.new("RGB", (8, 6))
    image.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(48)])
    out = io.BytesIO()
    image.resize((96, 72), Image.NEAREST).save(out, "JPEG", quality=80)
    return out.getvalue()


# ---------------------------------------------------------------- settling the in-process bus


class BusMonitor:
    """Counts events being handled on the in-process bus, so a step can wait until all it caused is done."""

    def __init__(self, platform) -> None:
        self.platform, self._lock = platform, threading.Lock()
        self.in_flight = self.handled = 0
        for queue in platform.bus._queues.values():  # the test wraps the bus's delivery callbacks
            queue.handler = self._counting(queue.handler)

    def _counting(self, handler: Callable) -> Callable:
        def handle(event):
            with self._lock:
                self.in_flight += 1
            try:
                return handler(event)
            finally:
                with self._lock:
                    self.in_flight -= 1
                    self.handled += 1

        return handle

    def _state(self) -> tuple[bool, int]:
        with self._lock:
            busy = self.in_flight
            handled = self.handled
        queues = self.platform.bus.health()["queues"].values()
        pending = 0
        for ctx in self.platform.contexts.values():
            with ctx.db.session() as uow:
                pending += Outbox(ctx.messaging.outbox).pending(uow)
        return busy == 0 and pending == 0 and all(q["ready"] == 0 for q in queues), handled

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until no outbox holds unpublished events and no event waits or is being handled (twice in a row)."""
        deadline = time.monotonic() + timeout
        previous = None
        while True:
            idle, handled = self._state()
            if idle and previous == handled:
                return
            previous = handled if idle else None
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the bus did not settle within {timeout}s: {self.platform.bus.health()}"
                )
            time.sleep(0.01)


# ---------------------------------------------------------------- the driver


@dataclass
class Simulation:
    """Plays the cast through the campaign on the platform and keeps what happened for the assertions."""

    platform: Any
    client: Any
    clock: FixedClock
    plans: tuple[UnitPlan, ...] = field(default_factory=cast)
    campaign_id: str = ""
    units: dict[str, dict] = field(default_factory=dict)  # code → intake's unit
    submissions: dict[tuple[str, int], str] = field(
        default_factory=dict
    )  # (code, report index) → submission id
    decisions: list[tuple[str, str, str, int, str]] = field(
        default_factory=list
    )  # day, code, label, version, decision
    duplicate_flags: dict[str, list[dict]] = field(
        default_factory=dict
    )  # review pass day → flagged queue items
    sampling: dict = field(default_factory=dict)
    inspections: dict[str, dict] = field(default_factory=dict)  # code → the recorded inspection
    rule_runs: list[tuple[str, dict]] = field(
        default_factory=list
    )  # (day, what run-rules opened and escalated)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.monitor = BusMonitor(self.platform)
        self._issuer = issuer_from_settings(self.platform.contexts["intake"].settings)
        self._tokens = {
            role: self._issuer.issue(subject=f"sim-{role}", name=name, role=role, ttl_s=3600)
            for role, name in ((ADMIN, "王芳"), (REVIEWER, "赵强"), (INSPECTOR, "孙丽"))
        }
        self.plan = {p.code: p for p in self.plans}
        self._report_of: dict[str, tuple[str, int]] = {}

    # -- HTTP as one of the cast

    def auth(self, who: str) -> dict[str, str]:
        """The Authorization header of a role (admin, reviewer, inspector) or of a unit (its code)."""
        if who in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[who]}"}
        unit = self.units[who]
        token = self._issuer.issue(
            subject=f"sim-unit-{who}",
            name=unit["liaison_name"] or unit["name"],
            role=UNIT,
            ttl_s=3600,
            unit_id=unit["id"],
            unit_path=unit["unit_path"],
        )
        return {"Authorization": f"Bearer {token}"}

    def call(
        self, who: str, method: str, path: str, *, expect: int = 200, raw: bool = False, **kwargs
    ) -> Any:
        """One API call as someone, giving its JSON (raw: the response); fails with the step and the answer when
        the status is not the expected one."""
        response = self.client.request(
            method, path, headers={**kwargs.pop("headers", {}), **self.auth(who)}, **kwargs
        )
        if response.status_code != expect:
            raise AssertionError(
                f"{method} {path} as {who} on {self.now_text()}: {response.status_code} {response.text}"
            )
        return response if raw else response.json()

    def now_text(self) -> str:
        """The simulated local time, for messages."""
        return self.clock.now().astimezone(ZONE).strftime("%m-%d %H:%M")

    def move_to(self, moment: datetime) -> None:
        """Advance the clock to a moment (never backwards)."""
        delta = moment - self.clock.now()
        if delta < timedelta(0):
            raise AssertionError(f"the agenda went back in time to {moment}")
        self.clock.advance(delta)

    def unit_id(self, code: str) -> str:
        """A unit's id."""
        return self.units[code]["id"]

    def code_of(self, unit_id: str) -> str:
        """A unit's code from its id."""
        return next(code for code, unit in self.units.items() if unit["id"] == unit_id)

    def submission(self, code: str, label: str, nth: int = 0) -> str:
        """The id of a unit's nth report with this label (M3, summary_report, good_practice)."""
        ids = [self.submissions[(code, i)] for i, r in enumerate(self.plan[code].reports) if r.label == label]
        return ids[nth]

    # -- the agenda

    def agenda(self) -> list[tuple[datetime, int, str, Callable[[], None]]]:
        """Every dated step of the campaign: (moment, order within the moment, label, step)."""
        steps: list[tuple[datetime, int, str, Callable[[], None]]] = []
        first, last = day_of(START), day_of(END)
        day = first + timedelta(days=1)
        while day <= last:
            text = day.strftime("%m-%d")
            steps.append((at(text, "08:00"), 0, f"{text} morning jobs", lambda t=text: self.morning_jobs(t)))
            day += timedelta(days=1)
        for plan in self.plans:
            for index, report in enumerate(plan.reports):
                steps.append(
                    (
                        at(report.on),
                        2,
                        f"{plan.code} hands in {report.label}",
                        lambda p=plan, i=index: self.hand_in(p, i),
                    )
                )
                for version, verdict in enumerate(report.verdicts, start=1):
                    if isinstance(verdict, Return) and verdict.resubmit_on:
                        steps.append(
                            (
                                at(verdict.resubmit_on),
                                3,
                                f"{plan.code} resubmits {report.label}",
                                lambda p=plan, i=index, v=verdict, n=version: self.resubmit(p, i, v, n),
                            )
                        )
            if plan.inspection:
                steps.append(
                    (
                        at(plan.inspection.on, "10:30"),
                        5,
                        f"inspection of {plan.code}",
                        lambda p=plan: self.inspect(p),
                    )
                )
            for act in plan.acts:
                steps.append(
                    (at(act.on, act.hhmm), 6, f"{plan.code} {act.what}", lambda p=plan, a=act: self.act(p, a))
                )
        steps.append((at(SAMPLING_DAY, "09:00"), 4, "sampling", self.draw_sample))
        for text in REVIEW_PASSES:
            steps.append((at(text, "15:00"), 7, f"{text} review pass", lambda t=text: self.review_pass(t)))
        return sorted(steps, key=lambda s: (s[0], s[1]))

    def run(self) -> Simulation:
        """Load the campaign on 03-05 and play every step up to 04-10 16:00, settling the bus after each."""
        self.move_to(at(START))
        self.load()
        for moment, _, label, step in self.agenda():
            self.move_to(moment)
            self.log.append(f"{self.now_text()} {label}")
            step()
            self.monitor.settle()
        self.move_to(at(END, "16:00"))
        return self

    # -- the steps

    def load(self) -> None:
        """The office loads the definition; wait until review and notification know every unit."""
        loaded = self.call(
            ADMIN,
            "POST",
            "/intake/campaigns",
            expect=201,
            content=definition_json().encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        self.campaign_id = loaded["campaign_id"]
        for unit in self.call(ADMIN, "GET", f"/intake/campaigns/{self.campaign_id}/units"):
            self.units[unit["code"]] = unit
        self.monitor.settle()

    def morning_jobs(self, day: str) -> None:
        """08:00: the intake worker's deadline watcher, then the review worker's supervision rules."""
        watch_deadlines(ctx=self.platform.contexts["intake"])
        self.monitor.settle()
        run = self.call(ADMIN, "POST", "/review/supervisions/run-rules")
        if run["opened"] or run["escalated"]:
            self.rule_runs.append((day, run))

    def hand_in(self, plan: UnitPlan, index: int) -> None:
        """The unit creates its submission, then uploads its photos (all in one multipart request)."""
        report = plan.reports[index]
        body = {
            "unit_id": self.unit_id(plan.code),
            "kind": report.kind,
            "title": _title(report),
            "description": f"{plan.code} {report.label} 报送材料",
            "held_on": day_of(min(report.on, "03-31")).isoformat(),
        }
        if report.kind == "measure":
            body |= {"measure_code": report.measure, "topics": TOPICS[report.measure]}
        created = self.call(plan.code, "POST", "/intake/submissions", expect=201, json=body)
        self.submissions[(plan.code, index)] = created["id"]
        self._report_of[created["id"]] = (plan.code, index)
        self.monitor.settle()
        photos = [photo(f"{plan.code}/{index}/v1/{n}") for n in range(report.files)]
        if report.copies:
            other, label = report.copies
            source = next(i for i, r in enumerate(self.plan[other].reports) if r.label == label)
            photos[0] = photo(f"{other}/{source}/v1/0")
        self.upload(plan.code, created["id"], photos, "v1")

    def upload(self, code: str, submission_id: str, photos: list[bytes], tag: str) -> None:
        """Upload photos to a submission as its unit."""
        files = [("files", (f"{tag}-{n + 1}.jpg", data, "image/jpeg")) for n, data in enumerate(photos)]
        self.call(code, "POST", f"/evidence/submissions/{submission_id}/evidence", expect=201, files=files)

    def resubmit(self, plan: UnitPlan, index: int, verdict: Return, version: int) -> None:
        """The unit uploads new photos to its returned submission and hands it in again."""
        submission_id = self.submissions[(plan.code, index)]
        photos = [photo(f"{plan.code}/{index}/v{version + 1}/{n}") for n in range(verdict.files)]
        self.upload(plan.code, submission_id, photos, f"v{version + 1}")
        self.call(
            plan.code,
            "POST",
            f"/intake/submissions/{submission_id}/resubmit",
            json={"description": f"已按审核意见补充清晰照片（第 {version + 1} 版）"},
        )

    def review_pass(self, day: str) -> None:
        """15:00: the reviewer looks at the duplicate flags, then decides every pending item by the cast's plan."""
        self.duplicate_flags[day] = self.call(
            REVIEWER,
            "GET",
            "/review/queue",
            params={"campaign_id": self.campaign_id, "flag": "duplicate", "limit": 1000},
        )
        pending = self.call(
            REVIEWER, "GET", "/review/queue", params={"campaign_id": self.campaign_id, "limit": 1000}
        )
        for item in pending:
            code, index = self._report_of[item["submission_id"]]
            report = self.plan[code].reports[index]
            verdict = report.verdicts[item["version"] - 1]
            path = f"/review/submissions/{item['submission_id']}"
            if isinstance(verdict, Approve):
                self.call(
                    REVIEWER,
                    "POST",
                    f"{path}/approve",
                    json={"version": item["version"], "score": verdict.score},
                )
            elif isinstance(verdict, Return):
                self.call(
                    REVIEWER,
                    "POST",
                    f"{path}/return",
                    json={"version": item["version"], "comment": verdict.comment},
                )
            else:
                self.call(
                    REVIEWER,
                    "POST",
                    f"{path}/reject",
                    json={"version": item["version"], "reason": verdict.reason},
                )
            self.decisions.append((day, code, report.label, item["version"], type(verdict).__name__.lower()))

    def draw_sample(self) -> None:
        """The inspector draws the units to inspect with a recorded seed."""
        self.sampling = self.call(
            INSPECTOR,
            "POST",
            "/review/samplings",
            expect=201,
            json={"campaign_id": self.campaign_id, "size": SAMPLE_SIZE, "seed": SAMPLING_SEED},
        )

    def inspect(self, plan: UnitPlan) -> None:
        """The inspector records the unit's inspection (with the sampling that drew it, if any)."""
        spec = plan.inspection
        body = {
            "campaign_id": self.campaign_id,
            "unit_id": self.unit_id(plan.code),
            "method": spec.method,
            "inspected_on": day_of(spec.on).isoformat(),
            "measures_verified": list(spec.measures_verified),
            "residents_asked": spec.residents[0],
            "residents_aware": spec.residents[1],
            "residents_able": spec.residents[2],
            "staff_tested": spec.staff[0],
            "staff_proficient": spec.staff[1],
            "findings": spec.findings,
            "problems": list(spec.problems),
        }
        if spec.sampled:
            body["sampling_id"] = self.sampling["id"]
        self.inspections[plan.code] = self.call(
            INSPECTOR, "POST", "/review/inspections", expect=201, json=body
        )

    def act(self, plan: UnitPlan, act: Act) -> None:
        """A liaison named, or a supervision opened (reviewer), answered (unit) or closed (reviewer)."""
        if act.what == "liaison":
            self.units[plan.code] = self.call(
                plan.code,
                "PUT",
                f"/intake/units/{self.unit_id(plan.code)}/liaison",
                json={"name": act.text, "email": act.email},
            )
        elif act.what == "open":
            self.call(
                REVIEWER,
                "POST",
                "/review/supervisions",
                expect=201,
                json={
                    "campaign_id": self.campaign_id,
                    "unit_id": self.unit_id(plan.code),
                    "level": act.level,
                    "method": act.method,
                    "reason": act.text,
                },
            )
        elif act.what == "respond":
            case = self.case(plan.code, act.rule, act.subject)
            self.call(
                plan.code, "POST", f"/review/supervisions/{case['id']}/respond", json={"response": act.text}
            )
        elif act.what == "close":
            case = self.case(plan.code, act.rule, act.subject)
            self.call(
                REVIEWER, "POST", f"/review/supervisions/{case['id']}/close", json={"outcome": act.text}
            )
        else:
            raise ValueError(act.what)

    def case(self, code: str, rule: str, subject: str | None = None) -> dict:
        """The unit's one supervision under a rule (and subject)."""
        cases = [
            c
            for c in self.call(
                ADMIN, "GET", "/review/supervisions", params={"unit_id": self.unit_id(code), "rule": rule}
            )
            if subject is None or c["subject_id"] == subject
        ]
        assert len(cases) == 1, f"{code} has {len(cases)} {rule} supervisions on {self.now_text()}: {cases}"
        return cases[0]


def _title(report: Report) -> str:
    if report.kind == "summary_report":
        return "网上信访宣传月活动总结"
    if report.kind == "good_practice":
        return "网上信访宣传经验做法"
    return f"{report.measure} 宣传措施落实情况"
