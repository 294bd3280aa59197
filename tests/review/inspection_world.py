"""The whole platform with a fixed clock and the Huaibei campaign loaded through intake's API (helpers only).

Shared by the sampling, inspection and supervision tests: each test builds its own world under tmp_path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from deploy.embedded import build_platform
from services.review.models import AUDIT, ReviewCampaign, ReviewUnit
from shared.auth import INSPECTOR, REVIEWER, UNIT, issuer_from_settings
from shared.clock import FixedClock
from shared.settings import Settings
from tests.flows.steps import admin_token
from tests.helpers import read_eml, wait_until

HUAIBEI = Path(__file__).resolve().parents[2] / "deploy" / "campaigns" / "huaibei-2020.yaml"
START = datetime(2020, 3, 25, 2, 0, tzinfo=UTC)  # 10:00 in Beijing, inside the inspection window


def huaibei(**changes) -> str:
    """The Huaibei definition as YAML, with top-level sections replaced (a value of None removes a section)."""
    data = yaml.safe_load(HUAIBEI.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


class CampaignWorld:
    """The embedded platform on a FixedClock, with one campaign loaded and a token for every kind of caller."""

    def __init__(
        self, tmp_path: Path, *, start: datetime = START, definition: str | None = None, **settings
    ) -> None:
        self.tmp_path = tmp_path
        self.clock = FixedClock(start)
        options = {
            "bus_retry_delays_ms": (50, 100),
            "outbox_poll_s": 0.1,
            "supervision_rules_interval_s": 0,
            **settings,
        }
        self.settings = Settings(data_dir=tmp_path, **options)
        self.platform = build_platform(self.settings, clock=self.clock)
        self._client = TestClient(self.platform.app)
        self.client = self._client.__enter__()
        self.review = self.platform.contexts["review"]
        self._issuer = issuer_from_settings(self.settings)
        self._admin = {"Authorization": f"Bearer {admin_token(self.platform.contexts['intake'])}"}
        self.campaign_id = self.load(definition or HUAIBEI.read_text(encoding="utf-8"))
        with self.review.db.session() as uow:
            rows = uow.scalars(select(ReviewUnit).where(ReviewUnit.campaign_id == self.campaign_id)).all()
            self.units = {u.code: u.unit_id for u in rows}
            self.paths = {u.code: u.unit_path for u in rows}

    def __enter__(self) -> CampaignWorld:
        return self

    def __exit__(self, *exc) -> None:
        self._client.__exit__(*exc)

    def load(self, text: str) -> str:
        """Load a definition through intake's API; wait until review knows the campaign and every unit."""
        loaded = self.client.post(
            "/intake/campaigns",
            content=text.encode("utf-8"),
            headers={**self._admin, "Content-Type": "application/yaml"},
        )
        assert loaded.status_code == 201, loaded.text
        campaign_id = loaded.json()["campaign_id"]
        count = len(yaml.safe_load(text)["units"])

        def ready() -> bool:
            with self.review.db.session() as uow:
                known = uow.scalar(
                    select(func.count())
                    .select_from(ReviewUnit)
                    .where(ReviewUnit.campaign_id == campaign_id, ReviewUnit.unit_path != "")
                )
                return uow.get(ReviewCampaign, campaign_id) is not None and known == count

        wait_until(ready, timeout=20, what="review to learn the campaign and its units")
        return campaign_id

    # ------------------------------------------------------------------ callers

    def admin(self) -> dict[str, str]:
        """An admin (王芳)."""
        return dict(self._admin)

    def _token(self, **claims) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._issuer.issue(ttl_s=3600, **claims)}"}

    def inspector(self) -> dict[str, str]:
        """An inspector (孙丽)."""
        return self._token(subject="i1", name="孙丽", role=INSPECTOR)

    def reviewer(self) -> dict[str, str]:
        """A reviewer (赵强)."""
        return self._token(subject="r1", name="赵强", role=REVIEWER)

    def unit(self, code: str) -> dict[str, str]:
        """The liaison of the unit with this code."""
        return self._token(
            subject=f"liaison-{code}",
            name=f"{code}联络员",
            role=UNIT,
            unit_id=self.units[code],
            unit_path=self.paths[code],
        )

    # ------------------------------------------------------------------ use

    def inspection_body(self, code: str = "XSQ", **overrides) -> dict:
        """A plausible on-site inspection of a unit on 2020-03-25."""
        body = {
            "campaign_id": self.campaign_id,
            "unit_id": self.units[code],
            "method": "on_site",
            "inspected_on": "2020-03-25",
            "measures_verified": ["M1", "M2", "M3", "M4", "M5", "M6"],
            "residents_asked": 10,
            "residents_aware": 8,
            "residents_able": 5,
            "staff_tested": 4,
            "staff_proficient": 3,
            "findings": "宣传角设置规范，横幅数量偏少。",
            "problems": ["横幅数量不足"],
        }
        return {**body, **overrides}

    # ------------------------------------------------------------------ looking inside

    def outbox(self, event_type: str) -> list[dict]:
        """Payloads review wrote to its outbox for one event type, in order."""
        table = self.review.messaging.outbox
        with self.review.db.session() as uow:
            bodies = uow.scalars(select(table.c.body).where(table.c.type == event_type).order_by(table.c.id))
            return [json.loads(body)["payload"] for body in bodies]

    def audit_actions(self, resource_id: str) -> list[str]:
        """Review's audit actions on one resource, oldest first."""
        with self.review.db.session() as uow:
            return list(
                uow.scalars(
                    select(AUDIT.c.action).where(AUDIT.c.resource_id == resource_id).order_by(AUDIT.c.id)
                )
            )

    def mail_subjects(self) -> list[str]:
        """Subjects of the e-mails the notification service wrote so far."""
        folder = self.settings.mail_folder
        return (
            sorted(str(read_eml(path)["Subject"]) for path in folder.glob("*.eml")) if folder.exists() else []
        )

    def wait_mail(self, fragment: str, count: int = 1) -> list[str]:
        """Wait until at least count e-mails have a subject containing fragment."""

        def found() -> list[str] | None:
            subjects = [s for s in self.mail_subjects() if fragment in s]
            return subjects if len(subjects) >= count else None

        return wait_until(found, timeout=20, what=f"{count} e-mail(s) with {fragment!r}")


def ok(response, status: int = 200):
    """The JSON of a response that must have this status."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()


def error(response, status: int) -> dict:
    """The error detail of a response that must have this status."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()


def seed_review_samples(client, campaign_id: str, unit_id: str) -> dict[str, str]:
    """An inspection, a supervision and a sampling for the authorisation matrix (client logged in as an admin)."""
    body = {
        "campaign_id": campaign_id,
        "unit_id": unit_id,
        "method": "phone",
        "inspected_on": "2020-03-25",
        "measures_verified": ["M1"],
        "residents_asked": 2,
        "residents_aware": 1,
    }
    inspection = wait_until(
        lambda: (r := client.post("/review/inspections", json=body)).status_code == 201 and r.json(),
        timeout=20,
        what="review to learn the campaign and the unit",
    )
    case = ok(
        client.post(
            "/review/supervisions",
            json={
                "campaign_id": campaign_id,
                "unit_id": unit_id,
                "level": "blue",
                "method": "phone",
                "reason": "宣传进度滞后",
            },
        ),
        201,
    )
    draw = ok(client.post("/review/samplings", json={"campaign_id": campaign_id, "size": 1, "seed": 1}), 201)
    return {"inspection_id": inspection["id"], "supervision_id": case["id"], "sampling_id": draw["id"]}
