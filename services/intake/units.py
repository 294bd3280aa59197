"""Unit use cases: register units in the tree and designate liaisons (history kept, lateness recorded)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.intake import auditing, queries, schemas
from services.intake.auditing import Actor
from services.intake.definition import LEVEL_NAMES, LEVEL_RANK, CampaignDefinition
from services.intake.models import Campaign, LiaisonDesignation, Submission, Unit
from shared.contracts import make_event
from shared.contracts.intake import LiaisonDesignated, UnitRegistered
from shared.events import new_id
from shared.http import ApiError, not_found
from shared.runtime import ServiceContext

SERVICE = "intake"
# Units loaded from a definition get ids derived from (campaign, code), so a reload finds them again.
_UNIT_IDS = uuid.UUID("8f5b2a9e-4c1d-5e7f-9a3b-2d6c8e0f1a4b")


def unit_id_for(campaign_id: str, code: str) -> str:
    """The deterministic id of a definition's unit."""
    return str(uuid.uuid5(_UNIT_IDS, f"{campaign_id}/{code}"))


def child_path(parent_path: str | None, unit_id: str) -> str:
    """The materialised path of a unit under a parent path (a root when None)."""
    return f"{parent_path or '/'}{unit_id}/"


def register_unit(
    command: schemas.UnitCreate, *, ctx: ServiceContext, scope: str | None = None, actor: Actor | None = None
) -> Unit:
    """Create a unit (in a campaign's tree when its parent or campaign says so); publishes unit.registered
    and, with a liaison, liaison.designated."""
    now = ctx.clock.now()
    try:
        with ctx.db.transaction() as uow:
            parent = None
            if command.parent_id:
                parent = queries.get_unit(uow, command.parent_id, scope=scope)
                if parent is None:
                    raise not_found("上级单位", "parent unit", command.parent_id)
                if LEVEL_RANK[command.level] <= LEVEL_RANK.get(parent.level, -1):
                    raise ApiError(
                        422,
                        "invalid_level",
                        f"层级 {LEVEL_NAMES[command.level]} 不能隶属于 {LEVEL_NAMES.get(parent.level, parent.level)}",
                        f"level {command.level} cannot sit under {parent.level}",
                    )
            elif scope is not None:
                raise ApiError(
                    403, "forbidden", "只能在本单位之下登记单位", "you may only register units below your own"
                )
            campaign_id = command.campaign_id or (parent.campaign_id if parent else None)
            if parent and command.campaign_id and parent.campaign_id != command.campaign_id:
                raise ApiError(
                    422,
                    "campaign_mismatch",
                    "上级单位不属于该活动",
                    "the parent unit belongs to another campaign",
                )
            if campaign_id and uow.get(Campaign, campaign_id) is None:
                raise not_found("活动", "campaign", campaign_id)
            if uow.scalar(select(Unit.id).where(Unit.code == command.code, _same_campaign(campaign_id))):
                raise _duplicate_code(command.code)
            unit_id = new_id()
            unit = Unit(
                id=unit_id,
                campaign_id=campaign_id,
                code=command.code,
                name=command.name,
                level=command.level,
                parent_id=parent.id if parent else None,
                unit_path=child_path(parent.unit_path if parent else None, unit_id),
                participates=command.participates,
                active=True,
                source="api",
                liaison_late=False,
                created_at=now,
                updated_at=now,
            )
            uow.add(unit)
            uow.flush()
            ctx.outbox.add(uow, make_event(registered_payload(unit), producer=SERVICE))
            if command.liaison:
                designate(
                    uow,
                    unit,
                    command.liaison.name,
                    str(command.liaison.email),
                    command.liaison.phone,
                    at=now,
                    source="api",
                    ctx=ctx,
                )
            auditing.record(
                actor,
                uow,
                "unit.registered",
                ("unit", unit.id),
                {"code": unit.code, "name": unit.name, "parent_id": unit.parent_id},
            )
    except IntegrityError:
        raise _duplicate_code(command.code) from None
    return unit


def designate_liaison(
    unit_id: str,
    liaison: schemas.LiaisonIn,
    *,
    ctx: ServiceContext,
    scope: str | None = None,
    actor: Actor | None = None,
) -> Unit:
    """Designate (or replace) a unit's liaison; the same liaison again changes nothing. Publishes liaison.designated."""
    with ctx.db.transaction() as uow:
        unit = queries.get_unit(uow, unit_id, scope=scope)
        if unit is None:
            raise not_found("单位", "unit", unit_id)
        if (unit.liaison_name, unit.liaison_email, unit.liaison_phone) != (
            liaison.name,
            str(liaison.email),
            liaison.phone,
        ):
            designate(
                uow,
                unit,
                liaison.name,
                str(liaison.email),
                liaison.phone,
                at=ctx.clock.now(),
                source="api",
                ctx=ctx,
            )
            auditing.record(
                actor,
                uow,
                "liaison.designated",
                ("unit", unit.id),
                {"name": liaison.name, "email": str(liaison.email)},
            )
    return unit


def designate(
    uow: Session,
    unit: Unit,
    name: str,
    email: str,
    phone: str | None,
    *,
    at: datetime,
    source: str,
    ctx: ServiceContext,
    definition: CampaignDefinition | None = None,
) -> LiaisonDesignation:
    """Record a designation in the unit's history, make it current, and publish liaison.designated.

    Lateness is judged against the liaison deadline of `definition` (default: the campaign's current one).
    """
    definition = definition or queries.current_definition(uow, unit.campaign_id)
    deadline = definition.deadline_for("liaison") if definition else None
    late = bool(deadline and at > deadline.due)
    row = LiaisonDesignation(
        unit_id=unit.id,
        name=name,
        email=email,
        phone=phone,
        designated_at=at,
        late=late,
        source=source,
        recorded_at=ctx.clock.now(),
    )
    uow.add(row)
    unit.liaison_name, unit.liaison_email, unit.liaison_phone = name, email, phone
    unit.liaison_designated_at, unit.liaison_late = at, late
    unit.updated_at = ctx.clock.now()
    ctx.outbox.add(
        uow,
        make_event(
            LiaisonDesignated(
                unit_id=unit.id,
                unit_code=unit.code,
                unit_name=unit.name,
                liaison_name=name,
                liaison_email=email,
                late=late,
                unit_path=unit.unit_path,
                designated_at=at,
            ),
            producer=SERVICE,
        ),
    )
    return row


def registered_payload(unit: Unit) -> UnitRegistered:
    """The unit.registered payload of a unit."""
    return UnitRegistered(
        unit_id=unit.id,
        code=unit.code,
        name=unit.name,
        level=unit.level,
        parent_id=unit.parent_id,
        unit_path=unit.unit_path,
        campaign_id=unit.campaign_id,
        participates=unit.participates,
    )


def repath_campaign(uow: Session, campaign_id: str) -> list[Unit]:
    """Recompute every unit path of a campaign from the parent links; copy changes onto submissions.

    Returns the units whose path changed (a unit moved, or one of its ancestors did).
    """
    units = {u.id: u for u in uow.scalars(select(Unit).where(Unit.campaign_id == campaign_id))}
    paths: dict[str, str] = {}

    def path_of(unit: Unit) -> str:
        if unit.id not in paths:
            parent = units.get(unit.parent_id) if unit.parent_id else None
            paths[unit.id] = child_path(path_of(parent) if parent else None, unit.id)
        return paths[unit.id]

    changed, moved = [], []
    for unit in units.values():
        path = path_of(unit)
        if unit.unit_path != path:
            if unit.unit_path:  # a new unit (no path yet) has no submissions to follow it
                moved.append(unit)
            unit.unit_path = path
            changed.append(unit)
    for unit in moved:
        uow.execute(update(Submission).where(Submission.unit_id == unit.id).values(unit_path=unit.unit_path))
    return changed


def _same_campaign(campaign_id: str | None):
    return Unit.campaign_id == campaign_id if campaign_id else Unit.campaign_id.is_(None)


def _duplicate_code(code: str) -> ApiError:
    return ApiError(409, "duplicate_code", f"单位代码已存在：{code}", f"unit code already exists: {code}")
