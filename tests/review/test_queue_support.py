"""A review service of its own for the queue, comment and timeline tests (helpers only, no tests here).

The service runs for real (SQLite under tmp_path or a fresh PostgreSQL database, its FastAPI app through
TestClient); the facts other services would publish are fed through review's own event handlers.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from services.review import handlers
from services.review.api import create_app
from services.review.bootstrap import bootstrap
from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT, issuer_from_settings
from shared.clock import FixedClock
from shared.contracts import make_event
from shared.contracts.evidence import EvidenceDownloaded, EvidenceStored
from shared.contracts.intake import SubmissionSubmitted, UnitRegistered
from shared.settings import Settings

START = datetime(2020, 3, 20, 8, 0, tzinfo=UTC)
CITY = "c0000000-0000-0000-0000-000000000000"


class ReviewWorld:
    """One review service with a fixed clock, an HTTP client and tokens for every kind of caller."""

    def __init__(self, tmp_path, *, database_url: str | None = None, **settings) -> None:
        extra = {"database_url": database_url} if database_url else {}
        self.settings = Settings(data_dir=tmp_path, **extra, **settings)
        self.clock = FixedClock(START)
        self.ctx = bootstrap(self.settings, clock=self.clock)
        self.client = TestClient(create_app(self.ctx))
        self._issuer = issuer_from_settings(self.settings)
        self.units: dict[str, str] = {}

    def close(self) -> None:
        """Close the client and the database."""
        self.client.close()
        self.ctx.db.dispose()

    # -------------------------------------------------------------- callers

    def token(self, role: str, subject: str, name: str, unit: str | None = None) -> dict[str, str]:
        """Authorization header for a caller (a unit caller names one of the world's units)."""
        claims = {"unit_id": unit, "unit_path": self.units[unit]} if unit else {}
        return {
            "Authorization": f"Bearer {self._issuer.issue(subject=subject, name=name, role=role, ttl_s=600, **claims)}"
        }

    def admin(self) -> dict[str, str]:
        """An admin (王芳)."""
        return self.token(ADMIN, "admin-1", "王芳")

    def reviewer(self, n: int = 1) -> dict[str, str]:
        """Reviewer n (r1 赵强, r2 钱敏, ...)."""
        return self.token(REVIEWER, f"r{n}", {1: "赵强", 2: "钱敏"}.get(n, f"审核员{n}"))

    def inspector(self) -> dict[str, str]:
        """An inspector (孙丽)."""
        return self.token(INSPECTOR, "i1", "孙丽")

    def unit_caller(self, unit: str) -> dict[str, str]:
        """The liaison of a unit."""
        return self.token(UNIT, f"liaison-{unit}", "李明", unit=unit)

    # -------------------------------------------------------------- facts from other services

    def feed(self, payload, handler, *, occurred_at: datetime | None = None) -> None:
        """Deliver one event to a review handler, in its own transaction, as the worker would."""
        event = make_event(payload, producer="test")
        if occurred_at is not None:
            event = event.model_copy(update={"occurred_at": occurred_at})
        with self.ctx.db.transaction() as uow:
            handler(event, uow=uow, ctx=self.ctx)

    def unit(self, name: str, *, parent: str | None = None) -> str:
        """Register a unit (below the city, or below parent); returns its id."""
        unit_id = str(uuid.uuid4())
        base = self.units[parent] if parent else f"/{CITY}/"
        self.units[unit_id] = f"{base}{unit_id}/"
        self.feed(
            UnitRegistered(
                unit_id=unit_id,
                code=name,
                name=name,
                level="county" if parent is None else "township",
                parent_id=parent or CITY,
                unit_path=self.units[unit_id],
            ),
            handlers.project_unit,
        )
        return unit_id

    def submit(
        self,
        unit: str,
        *,
        measure: str = "M1",
        version: int = 1,
        submission_id: str | None = None,
        at: datetime | None = None,
        kind: str = "measure",
        campaign_id: str | None = "camp-1",
        outside_window: bool = False,
        title: str = "召开专题会议传达部署",
    ) -> str:
        """A (re)submitted version reaches review (a second later than the one before); returns the submission id."""
        submission_id = submission_id or str(uuid.uuid4())
        if at is None:
            self.clock.advance(timedelta(seconds=1))
        self.feed(
            SubmissionSubmitted(
                submission_id=submission_id,
                unit_id=unit,
                measure_code=measure if kind == "measure" else "",
                title=title,
                version=version,
                kind=kind,
                campaign_id=campaign_id,
                unit_path=self.units[unit],
                outside_window=outside_window,
                submitted_at=at or self.clock.now(),
            ),
            handlers.enqueue_submission,
        )
        return submission_id

    def evidence(
        self,
        submission_id: str,
        unit: str,
        *,
        evidence_id: str | None = None,
        duplicate_of=(),
        near_duplicate_of=(),
        outside_window: bool | None = False,
    ) -> str:
        """Evidence stored for a submission, with its flags; returns the evidence id."""
        evidence_id = evidence_id or str(uuid.uuid4())
        self.feed(
            EvidenceStored(
                evidence_id=evidence_id,
                submission_id=submission_id,
                unit_id=unit,
                object_key=f"evidence/{unit}/{submission_id}/{evidence_id}.jpg",
                media_type="image/jpeg",
                size=1234,
                sha256=uuid.uuid4().hex * 2,
                filename="会议.jpg",
                category="photo",
                outside_window=outside_window,
                duplicate_of=list(duplicate_of),
                near_duplicate_of=list(near_duplicate_of),
            ),
            handlers.attach_evidence,
            occurred_at=self.clock.now(),
        )
        return evidence_id

    def download(
        self, submission_id: str, unit: str, evidence_id: str, *, actor: str = "赵强", role: str = REVIEWER
    ) -> None:
        """evidence_storage reports a download."""
        self.feed(
            EvidenceDownloaded(
                evidence_id=evidence_id,
                submission_id=submission_id,
                unit_id=unit,
                filename="会议.jpg",
                actor=actor,
                actor_role=role,
                at=self.clock.now(),
            ),
            handlers.record_download,
        )

    # -------------------------------------------------------------- looking inside

    def outbox_types(self) -> list[str]:
        """Types of the events review wrote to its outbox, in order."""
        table = self.ctx.messaging.outbox
        with self.ctx.db.session() as uow:
            return list(uow.scalars(select(table.c.type).order_by(table.c.id)))

    def outbox_payloads(self, event_type: str) -> list[dict]:
        """Payloads of the outbox events of one type, in order."""
        table = self.ctx.messaging.outbox
        with self.ctx.db.session() as uow:
            bodies = uow.scalars(select(table.c.body).where(table.c.type == event_type).order_by(table.c.id))
            return [json.loads(body)["payload"] for body in bodies]

    def audit_actions(self, resource_id: str) -> list[str]:
        """Audit actions recorded for one submission, oldest first."""
        from services.review.models import AUDIT

        with self.ctx.db.session() as uow:
            return list(
                uow.scalars(
                    select(AUDIT.c.action).where(AUDIT.c.resource_id == resource_id).order_by(AUDIT.c.id)
                )
            )

    def tamper(self, *statements: str) -> None:
        """Run SQL as a DBA with full access would: drop the append-only triggers first ({t} names the table)."""
        table = "timeline_records" if self.ctx.db.is_sqlite else "review.timeline_records"
        with self.ctx.db.engine.begin() as conn:
            if self.ctx.db.is_sqlite:
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS timeline_records_no_update")
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS timeline_records_no_delete")
            else:
                conn.exec_driver_sql(
                    "DROP TRIGGER IF EXISTS timeline_records_no_change ON review.timeline_records"
                )
            for statement in statements:
                conn.execute(text(statement.replace("{t}", table)))


def open_world(request, tmp_path, backend: str) -> ReviewWorld:
    """A world on SQLite, or on a fresh PostgreSQL database (the postgres_url fixture)."""
    if backend == "postgresql":
        return ReviewWorld(tmp_path, database_url=request.getfixturevalue("postgres_url"))
    return ReviewWorld(tmp_path)


def ok(response, status: int = 200) -> dict | list:
    """The JSON of a response that must have this status."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()


def error_code(response, status: int) -> str:
    """The error code of a response that must have this status."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()["code"]
