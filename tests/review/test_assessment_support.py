"""A review service of its own for the assessment and circular tests (helpers only, no tests here).

The Huaibei campaign reaches review through its own campaign.published handler (built from the real
definition file); units, versions, decisions, inspections and supervisions are handmade rows with
chosen times, so each profile's score can be worked out by hand.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from services.intake.campaigns import published_payload
from services.intake.definition import parse_definition
from services.review import handlers, rubric
from services.review.api import create_app
from services.review.bootstrap import bootstrap
from services.review.models import (
    Inspection,
    ReviewCampaign,
    ReviewDecision,
    ReviewUnit,
    ReviewVersion,
    Supervision,
    SupervisionChange,
)
from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT, issuer_from_settings
from shared.blobs.folder import FolderBlobStore
from shared.clock import FixedClock
from shared.contracts import make_event
from shared.settings import Settings

HUAIBEI = Path(__file__).resolve().parents[2] / "deploy" / "campaigns" / "huaibei-2020.yaml"
ZONE = ZoneInfo("Asia/Shanghai")
CITY = "c0000000-0000-0000-0000-000000000000"
MEASURES = ("M1", "M2", "M3", "M4", "M5", "M6", "M7")
NOW = datetime(2020, 4, 20, 2, 0, tzinfo=UTC)  # the clock when the tests look back


def local(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment of 2020 in Beijing time, as UTC."""
    return datetime(2020, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


class AssessmentWorld:
    """One review service (SQLite or PostgreSQL) with a fixed clock, a folder blob store and the Huaibei campaign."""

    def __init__(self, tmp_path, *, database_url: str | None = None) -> None:
        extra = {"database_url": database_url} if database_url else {}
        self.settings = Settings(data_dir=tmp_path, **extra)
        self.clock = FixedClock(NOW)
        self.blobs = FolderBlobStore(tmp_path / "blob-store")
        self.ctx = bootstrap(self.settings, clock=self.clock, blobs=self.blobs)
        self.client = TestClient(create_app(self.ctx))
        self._issuer = issuer_from_settings(self.settings)
        self.units: dict[str, str] = {}  # code -> id
        self.paths: dict[str, str] = {}  # id -> unit path
        self.submissions: dict[str, dict] = {}
        self.campaign_id = self._publish_huaibei()
        with self.ctx.db.session() as uow:
            self.rubric = rubric.parse(uow.get(ReviewCampaign, self.campaign_id).rubric)

    def close(self) -> None:
        """Close the client and the database."""
        self.client.close()
        self.ctx.db.dispose()

    def _publish_huaibei(self) -> str:
        definition = parse_definition(HUAIBEI.read_text(encoding="utf-8"))
        campaign = SimpleNamespace(
            id=str(uuid.uuid4()), code=definition.code, version=1, definition_sha256="0" * 64
        )
        event = make_event(published_payload(campaign, definition), producer="intake")
        with self.ctx.db.transaction() as uow:
            handlers.project_campaign(event, uow=uow, ctx=self.ctx)
        return campaign.id

    # -------------------------------------------------------------- callers

    def _token(self, role: str, subject: str, name: str, unit_id: str | None = None) -> dict[str, str]:
        claims = {"unit_id": unit_id, "unit_path": self.paths[unit_id]} if unit_id else {}
        return {
            "Authorization": f"Bearer {self._issuer.issue(subject=subject, name=name, role=role, ttl_s=600, **claims)}"
        }

    def admin(self) -> dict[str, str]:
        """An admin (王芳)."""
        return self._token(ADMIN, "admin-1", "王芳")

    def reviewer(self) -> dict[str, str]:
        """A reviewer (赵强)."""
        return self._token(REVIEWER, "r1", "赵强")

    def inspector(self) -> dict[str, str]:
        """An inspector (孙丽)."""
        return self._token(INSPECTOR, "i1", "孙丽")

    def unit_caller(self, code: str) -> dict[str, str]:
        """The liaison of a unit, by code."""
        return self._token(UNIT, f"liaison-{code}", "李明", unit_id=self.units[code])

    # -------------------------------------------------------------- handmade facts

    def add(self, *rows) -> None:
        """Insert rows in one transaction."""
        with self.ctx.db.transaction() as uow:
            uow.add_all(rows)

    def unit(
        self,
        code: str,
        name: str,
        level: str,
        *,
        liaison_at: datetime | None = None,
        participates: bool = True,
        parent: str | None = None,
    ) -> str:
        """A unit of the campaign below the city (or below parent's code); returns its id."""
        unit_id = str(uuid.uuid4())
        base = self.paths[self.units[parent]] if parent else f"/{CITY}/"
        self.units[code], self.paths[unit_id] = unit_id, f"{base}{unit_id}/"
        self.add(
            ReviewUnit(
                unit_id=unit_id,
                campaign_id=self.campaign_id,
                code=code,
                name=name,
                level=level,
                parent_id=self.units[parent] if parent else CITY,
                unit_path=self.paths[unit_id],
                participates=participates,
                liaison_designated_at=liaison_at,
            )
        )
        return unit_id

    def submit(
        self,
        code: str,
        at: datetime,
        *,
        measure: str = "",
        kind: str = "measure",
        version: int = 1,
        submission_id: str | None = None,
    ) -> str:
        """A version handed in at `at`; returns the submission id."""
        submission_id = submission_id or str(uuid.uuid4())
        self.submissions[submission_id] = {"unit_id": self.units[code], "measure_code": measure, "kind": kind}
        self.add(
            ReviewVersion(
                submission_id=submission_id,
                version=version,
                unit_id=self.units[code],
                campaign_id=self.campaign_id,
                measure_code=measure,
                kind=kind,
                submitted_at=at,
            )
        )
        return submission_id

    def decide(
        self, submission_id: str, decision: str, at: datetime, *, score: float | None = None, version: int = 1
    ) -> None:
        """A reviewer's decision on a version, taken at `at`."""
        facts = self.submissions[submission_id]
        self.add(
            ReviewDecision(
                submission_id=submission_id,
                unit_id=facts["unit_id"],
                campaign_id=self.campaign_id,
                measure_code=facts["measure_code"],
                kind=facts["kind"],
                version=version,
                decision=decision,
                score=score,
                comment="" if decision == "approved" else "请补充",
                reviewer="赵强",
                decided_at=at,
            )
        )

    def approved(
        self,
        code: str,
        measure: str,
        submitted: datetime,
        *,
        score: float | None = None,
        kind: str = "measure",
    ) -> str:
        """A submission approved an hour after it was handed in."""
        submission_id = self.submit(code, submitted, measure=measure, kind=kind)
        self.decide(submission_id, "approved", submitted + timedelta(hours=1), score=score)
        return submission_id

    def inspect(
        self,
        code: str,
        at: datetime,
        *,
        verified=MEASURES,
        residents=(0, 0, 0),
        staff=(0, 0),
        method: str = "on_site",
    ) -> str:
        """An inspection recorded at `at`, scored by the rubric as the inspection form scores it."""
        row = Inspection(
            id=str(uuid.uuid4()),
            campaign_id=self.campaign_id,
            unit_id=self.units[code],
            unit_path=self.paths[self.units[code]],
            method=method,
            inspected_on=at.astimezone(ZONE).date(),
            inspector="孙丽",
            measures_verified=list(verified),
            residents_asked=residents[0],
            residents_aware=residents[1],
            residents_able=residents[2],
            staff_tested=staff[0],
            staff_proficient=staff[1],
            findings="",
            problems=[],
            criteria={},
            recorded_at=at,
        )
        row.score = rubric.inspection_total(rubric.inspection_scores(self.rubric, row, list(MEASURES)))
        self.add(row)
        return row.id

    def supervise(self, code: str, at: datetime, *, level: str, method: str, reason: str) -> str:
        """A supervision opened at `at`."""
        case_id = str(uuid.uuid4())
        unit_id = self.units[code]
        self.add(
            Supervision(
                id=case_id,
                campaign_id=self.campaign_id,
                unit_id=unit_id,
                unit_path=self.paths[unit_id],
                rule="manual",
                level=level,
                method=method,
                reason=reason,
                state="open",
                opened_by="赵强",
                opened_at=at,
                rectify_by=at + timedelta(days=5),
            ),
            SupervisionChange(
                supervision_id=case_id,
                unit_id=unit_id,
                action="opened",
                level=level,
                method=method,
                actor="赵强",
                note=reason,
                at=at,
            ),
        )
        return case_id

    def escalate(self, case_id: str, at: datetime, *, level: str, method: str) -> None:
        """A supervision raised at `at`."""
        with self.ctx.db.transaction() as uow:
            case = uow.get(Supervision, case_id)
            case.level, case.method, case.escalations = level, method, case.escalations + 1
            uow.add(
                SupervisionChange(
                    supervision_id=case_id,
                    unit_id=case.unit_id,
                    action="escalated",
                    level=level,
                    method=method,
                    actor="system",
                    note="整改期限已过",
                    at=at,
                )
            )


def build_profiles(w: AssessmentWorld) -> dict[str, str]:
    """Seven units with the behaviours the tests score by hand (EXPECTED); returns ids the tests look for."""
    w.unit("HB", "淮北市信访局", "city", participates=False)

    # 相山区: on time and complete, inspected well, one good practice.
    w.unit("XSQ", "相山区信访局", "county", liaison_at=local(3, 10, 9))
    for code in MEASURES:
        w.approved("XSQ", code, local(3, 15))
    w.submit("XSQ", local(4, 3), kind="summary_report")
    w.inspect("XSQ", local(3, 25, 16), residents=(10, 9, 8), staff=(5, 5))
    w.approved("XSQ", "", local(3, 20), kind="good_practice")

    # 杜集区: liaison named two (started) days late, every measure scored 80, not inspected.
    w.unit("DJQ", "杜集区信访局", "county", liaison_at=local(3, 14, 10))
    for code in MEASURES:
        w.approved("DJQ", code, local(3, 16), score=80)
    w.submit("DJQ", local(4, 2), kind="summary_report")

    # 烈山区: M2 returned then approved, M7 never sent, summary two days late, a poor phone inspection.
    w.unit("LSQ", "烈山区信访局", "county", liaison_at=local(3, 11))
    for code in ("M1", "M3", "M4", "M5", "M6"):
        w.approved("LSQ", code, local(3, 14))
    m2 = w.submit("LSQ", local(3, 14), measure="M2")
    w.decide(m2, "returned", local(3, 15))
    w.submit("LSQ", local(3, 17), measure="M2", version=2, submission_id=m2)
    w.decide(m2, "approved", local(3, 18), version=2)
    w.submit("LSQ", local(4, 7), kind="summary_report")
    w.inspect(
        "LSQ",
        local(3, 28),
        verified=("M1", "M2", "M3", "M4", "M5"),
        residents=(10, 3, 2),
        staff=(4, 1),
        method="phone",
    )

    # 濉溪县: complete but no summary, four supervisions (capped at 20), seven good practices (capped at 5).
    w.unit("SXX", "濉溪县信访局", "county", liaison_at=local(3, 12, 20))
    for code in MEASURES:
        w.approved("SXX", code, local(3, 15))
    first = w.supervise("SXX", local(3, 20), level="blue", method="phone", reason="宣传角未按要求设置")
    w.escalate(first, local(3, 26), level="yellow", method="on_site")
    w.supervise("SXX", local(3, 22), level="red", method="interview", reason="巡回宣讲弄虚作假")
    w.supervise("SXX", local(4, 1), level="yellow", method="on_site", reason="横幅悬挂数量不足")
    w.supervise("SXX", local(4, 2), level="blue", method="phone", reason="总结报送临近截止")
    for day in range(20, 27):
        w.approved("SXX", "", local(3, day), kind="good_practice")

    # 市人社局: everything right, a perfect inspection.
    w.unit("RSJ", "市人力资源和社会保障局", "member", liaison_at=local(3, 10))
    for code in MEASURES:
        w.approved("RSJ", code, local(3, 15))
    w.submit("RSJ", local(4, 1), kind="summary_report")
    w.inspect("RSJ", local(3, 27), residents=(10, 10, 10), staff=(5, 5))

    # 市交通局: liaison a day late, M1 rejected, M2 still waiting for review, not inspected.
    w.unit("JTJ", "市交通运输局", "member", liaison_at=local(3, 13, 9))
    m1 = w.submit("JTJ", local(3, 15), measure="M1")
    w.decide(m1, "rejected", local(3, 16))
    w.submit("JTJ", local(3, 16), measure="M2")
    for code in ("M3", "M4", "M5", "M6", "M7"):
        w.approved("JTJ", code, local(3, 15))
    w.submit("JTJ", local(4, 4), kind="summary_report")

    # 市公安局: silent; its only summary (on time) was rejected on 6 April.
    w.unit("GAJ", "市公安局", "member")
    summary = w.submit("GAJ", local(4, 4), kind="summary_report")
    w.decide(summary, "rejected", local(4, 6))
    return {"LSQ-M2": m2, "JTJ-M1": m1, "SXX-first": first, "GAJ-summary": summary}


# The figures worked out by hand for build_profiles, as of the end of 10 April 2020 (Huaibei rubric:
# measures 60 by weight — M2 and M7 weigh 1.5, so 11.25 points, the others 7.5; timeliness 5 per deadline;
# inspection 30 = 12 + 6 + 6 + 6; supervision 2/5/10 capped at 20; good practice +1 capped at 5).
EXPECTED = {
    "XSQ": {"measures": 60, "timeliness": 10, "inspection": 28.2, "deductions": 0, "bonus": 1, "total": 99.2},
    "DJQ": {"measures": 48, "timeliness": 8, "inspection": 24, "deductions": 0, "bonus": 0, "total": 80},
    "LSQ": {
        "measures": 48.75,
        "timeliness": 8,
        "inspection": 13.07,
        "deductions": 0,
        "bonus": 0,
        "total": 69.82,
    },
    "SXX": {"measures": 60, "timeliness": 5, "inspection": 30, "deductions": 20, "bonus": 5, "total": 80},
    "RSJ": {"measures": 60, "timeliness": 10, "inspection": 30, "deductions": 0, "bonus": 0, "total": 100},
    "JTJ": {
        "measures": 41.25,
        "timeliness": 9,
        "inspection": 20.63,
        "deductions": 0,
        "bonus": 0,
        "total": 70.88,
    },
    "GAJ": {"measures": 0, "timeliness": 0, "inspection": 0, "deductions": 0, "bonus": 0, "total": 0},
}
AS_OF = "2020-04-10"
