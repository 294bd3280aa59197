"""The deadline watcher: deadline.approaching and deadline.missed, exactly once per unit, deadline and lead.

Each run looks at every campaign's deadlines. A deadline is in its "approaching" stage for the
smallest configured lead time whose threshold (due - lead) has passed, and in its "missed" stage once
due (for DEADLINE_MISSED_WITHIN after it, so a late start or an old campaign does not flood anyone).
For each unit that still misses something, one row goes into deadline_alerts, keyed by (campaign,
deadline, due time, unit, lead), with INSERT ... ON CONFLICT DO NOTHING, and its event goes into the
outbox in the same transaction. Replicas racing on the same alert collide on that key: the one whose
insert took the row publishes, the other sees no row inserted and publishes nothing; after a restart
the rows are still there.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from services.intake import queries
from services.intake.coverage import UnitStanding, standings
from services.intake.definition import CampaignDefinition, Deadline
from services.intake.models import Campaign, DeadlineAlert
from shared.contracts import make_event
from shared.contracts.intake import DeadlineApproaching, DeadlineMissed
from shared.events import Envelope
from shared.runtime import ServiceContext

SERVICE = "intake"
MISSED = "missed"
_BATCH = 500
log = logging.getLogger(__name__)


def iso_duration(delta: timedelta) -> str:
    """A timedelta as an ISO-8601 duration: P3D, PT12H, P1DT6H30M."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if v)
    return "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "") if (days or clock) else "PT0S"


def stage(due: datetime, now: datetime, leads: tuple[timedelta, ...], missed_within: timedelta) -> str | None:
    """Which alert a deadline calls for now: the closest passed lead ("P1D"), "missed", or None."""
    if now >= due:
        return MISSED if now - due <= missed_within else None
    passed = [lead for lead in leads if now >= due - lead]
    return iso_duration(min(passed)) if passed else None


def missing_items(unit: UnitStanding, deadline: Deadline, d: CampaignDefinition) -> list[str]:
    """What the unit still owes for a deadline, in words for people."""
    items = []
    for requirement in deadline.requires:
        if requirement == "liaison" and not unit.liaison_name:
            items.append("联络员")
        elif requirement == "summary_report" and unit.summary_report[0] in ("missing", "returned"):
            items.append(
                "活动总结" + ("（已退回，待重新报送）" if unit.summary_report[0] == "returned" else "")
            )
        elif requirement == "measures" or requirement.startswith("measure:"):
            codes = (
                [m.code for m in d.measures] if requirement == "measures" else [requirement.split(":", 1)[1]]
            )
            for code in codes:
                state = unit.measures.get(code, "missing")
                if state in ("missing", "returned"):
                    measure = d.measure(code)  # cross_check refuses deadlines naming unknown measures
                    label = f"{code} {measure.name}" if measure else code
                    items.append(label + ("（已退回，待重新报送）" if state == "returned" else ""))
    return list(dict.fromkeys(items))


def watch_deadlines(*, ctx: ServiceContext) -> int:
    """One pass over every campaign; returns how many alerts this replica published."""
    now = ctx.clock.now()
    settings = ctx.settings
    with ctx.db.session() as uow:
        campaign_ids = list(uow.scalars(select(Campaign.id).order_by(Campaign.code)))
    fired = 0
    for campaign_id in campaign_ids:
        fired += _watch_campaign(
            campaign_id, now, settings.deadline_lead_times, settings.deadline_missed_within, ctx=ctx
        )
    if fired:
        log.info("deadline watcher: %d alert(s) published", fired)
    return fired


def _watch_campaign(campaign_id: str, now: datetime, leads, missed_within, *, ctx: ServiceContext) -> int:
    with ctx.db.session() as uow:
        definition = queries.current_definition(uow, campaign_id)
        if definition is None:
            return 0
        due = [
            (deadline, lead)
            for deadline in definition.deadlines
            if deadline.requires
            for lead in [stage(deadline.due, now, tuple(leads), missed_within)]
            if lead
        ]
        if not due:
            return 0
        rows = standings(uow, campaign_id, definition)
    fired = 0
    for deadline, lead in due:
        owing = {
            u.unit_id: items for u in rows for items in [missing_items(u, deadline, definition)] if items
        }
        if owing:
            fired += _fire(campaign_id, deadline, lead, owing, ctx=ctx)
    return fired


def _fire(
    campaign_id: str, deadline: Deadline, lead: str, owing: dict[str, list[str]], *, ctx: ServiceContext
) -> int:
    due_key = deadline.due.isoformat()
    key = (
        DeadlineAlert.campaign_id == campaign_id,
        DeadlineAlert.deadline_code == deadline.code,
        DeadlineAlert.due_at == due_key,
        DeadlineAlert.lead == lead,
    )
    fired = 0
    with ctx.db.transaction() as uow:
        done = set(uow.scalars(select(DeadlineAlert.unit_id).where(*key)))
        todo = [unit_id for unit_id in owing if unit_id not in done]
        now = ctx.clock.now()
        for start in range(0, len(todo), _BATCH):
            events = {
                unit_id: _event(campaign_id, deadline, lead, unit_id, owing[unit_id])
                for unit_id in todo[start : start + _BATCH]
            }
            rows = [
                {
                    "campaign_id": campaign_id,
                    "deadline_code": deadline.code,
                    "due_at": due_key,
                    "unit_id": unit_id,
                    "lead": lead,
                    "event_id": event.event_id,
                    "fired_at": now,
                }
                for unit_id, event in events.items()
            ]
            # Only rows this transaction inserted come back; a row another replica holds does not.
            inserted = uow.scalars(
                _insert(uow).values(rows).on_conflict_do_nothing().returning(DeadlineAlert.unit_id)
            ).all()
            for unit_id in inserted:
                ctx.outbox.add(uow, events[unit_id])
            fired += len(inserted)
    return fired


def _insert(uow):
    dialect = uow.get_bind().dialect.name
    module = {"postgresql": postgresql, "sqlite": sqlite}.get(dialect)
    if module is None:
        raise RuntimeError(f"the deadline watcher needs PostgreSQL or SQLite, not {dialect}")
    return module.insert(DeadlineAlert)


def _event(campaign_id: str, deadline: Deadline, lead: str, unit_id: str, missing: list[str]) -> Envelope:
    common: dict[str, Any] = dict(
        campaign_id=campaign_id,
        deadline_code=deadline.code,
        deadline_name=deadline.name,
        due_at=deadline.due,
        unit_id=unit_id,
        missing=missing,
    )
    payload = DeadlineMissed(**common) if lead == MISSED else DeadlineApproaching(lead=lead, **common)
    return make_event(payload, producer=SERVICE)
