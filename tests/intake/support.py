"""Helpers for the intake tests: the shipped definition, variants of it, and reading the outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import yaml
from sqlalchemy import select

from services.intake.models import MESSAGING
from shared.events import Envelope

ROOT = Path(__file__).resolve().parents[2]
HUAIBEI = ROOT / "deploy" / "campaigns" / "huaibei-2020.yaml"
# 1 March 2020, 09:00 in Beijing: before the publicity window opens.
BEFORE_CAMPAIGN = datetime(2020, 3, 1, 1, 0, tzinfo=UTC)


def huaibei_text() -> str:
    """The shipped Huaibei definition."""
    return HUAIBEI.read_text(encoding="utf-8")


def huaibei_data() -> dict:
    """The shipped Huaibei definition as plain data, to derive variants from."""
    return yaml.safe_load(huaibei_text())


def outbox(ctx, event_type: str | None = None) -> list[Envelope]:
    """The events the service has written to its outbox, in order, optionally of one type."""
    table = MESSAGING.outbox
    with ctx.db.session() as uow:
        rows = uow.execute(select(table.c.body).order_by(table.c.id)).scalars().all()
    events = [Envelope.from_json(body) for body in rows]
    return [e for e in events if event_type is None or e.type == event_type]


def as_yaml(data: dict) -> str:
    """A definition as YAML text (block style, keys in their order)."""
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def as_json(data: dict) -> str:
    """A definition as JSON text (dates as ISO strings)."""
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


def small_definition(code: str = "demo-2020", **changes) -> dict:
    """A small made-up campaign: a city, two districts with a street and a community below one, two measures."""
    data = {
        "code": code,
        "name": "示例宣传月",
        "organiser": "示例市活动办公室",
        "windows": {"publicity": {"start": "2020-03-09", "end": "2020-03-31"}},
        "deadlines": [
            {"code": "liaison", "name": "明确联络员", "due": "2020-03-12", "requires": ["liaison"]},
            {
                "code": "summary",
                "name": "报送总结",
                "due": "2020-04-05",
                "requires": ["summary_report", "measures"],
            },
        ],
        "measures": [
            {"code": "M1", "name": "专题会议", "evidence": {"min_count": 1, "kinds": ["photo", "document"]}},
            {"code": "M2", "name": "宣传横幅", "evidence": {"min_count": 2, "kinds": ["photo"]}},
        ],
        "topics": [{"code": "T1", "name": "优势"}, {"code": "T2", "name": "注意事项"}],
        "units": [
            {"code": "C", "name": "示例市信访局", "level": "city", "participates": False},
            {
                "code": "D1",
                "name": "甲区信访局",
                "level": "county",
                "parent": "C",
                "liaison": {"name": "李明", "email": "li.ming@example.org"},
            },
            {"code": "D2", "name": "乙区信访局", "level": "county", "parent": "C"},
            {"code": "S1", "name": "甲区东街道", "level": "township", "parent": "D1"},
            {"code": "V1", "name": "东街道幸福社区", "level": "village", "parent": "S1"},
        ],
    }
    data.update(changes)
    return data


def setup_campaign(api) -> dict:
    """Load the small campaign; returns its units by code (with the campaign id under "_campaign")."""
    loaded = api.post(
        "/campaigns",
        content=as_yaml(small_definition()).encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert loaded.status_code == 201, loaded.text
    campaign_id = loaded.json()["campaign_id"]
    units = {u["code"]: u for u in api.get(f"/campaigns/{campaign_id}/units").json()}
    return {**units, "_campaign": campaign_id}


def post(api, **body):
    """POST /submissions with body as JSON."""
    return api.post("/submissions", json=body)


def handle(ctx, event, handler) -> None:
    """Run an event handler the way the worker's consumer does: in one transaction."""
    with ctx.db.transaction() as uow:
        handler(event, uow=uow, ctx=ctx)


def admin_header(ctx) -> dict:
    """An Authorization header for an admin, minted with the service's own key (no user account needed)."""
    from shared.auth import ADMIN, issuer_from_settings

    token = issuer_from_settings(ctx.settings).issue(
        subject="test-admin", name="王芳", role=ADMIN, ttl_s=3600
    )
    return {"Authorization": f"Bearer {token}"}
