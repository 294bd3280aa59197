"""Post a liaison's notice to the unit's group robots too (DingTalk, WeCom), when the campaign says so.

Which events post is data: the campaign definition's `channels.unit_group` (event types), carried by
campaign.published as `channel_rules`. Which robots post a unit's notices is configuration: CHANNEL_ROBOTS
names each robot's units (by code) and campaigns (by code). A post is a delivery row of its own
(`channel` dingtalk or wecom, `recipient` the robot's name), one per notice and group: the dedupe key is
`<channel>:<robot>|<notice key>`, and for notices every unit gets (campaign.published, circular.published)
the notice key without the unit, so a group hearing from several units sees such a notice once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notification import contexts
from services.notification.models import Delivery, KnownCampaign, KnownUnit
from shared.channels.port import Robot
from shared.events import Envelope, new_id
from shared.runtime import ServiceContext

BROADCASTS = ("campaign.published", "circular.published")
ALL_UNITS = "各单位"
# The worker's group-robot loop (subscriptions.jobs), woken by each commit that queued a post.
POST_TO_GROUPS = "post-to-groups"


def post_to_groups(
    uow: Session,
    *,
    ctx: ServiceContext,
    event: Envelope,
    unit_id: str,
    family: str,
    context: Mapping[str, object],
    dedupe_key: str,
) -> int:
    """Queue one post per robot of the unit's groups, if the unit's campaign posts this event type; returns how many."""
    channels = ctx.channels
    if channels is None:
        return 0
    unit = uow.get(KnownUnit, unit_id)
    campaign_id = (unit.campaign_id if unit else None) or _campaign_of(event)
    campaign = uow.get(KnownCampaign, campaign_id) if campaign_id else None
    if campaign is None or event.type not in _posted_types(campaign.payload):
        return 0
    robots = channels.robots.for_unit(unit.code if unit else None, str(campaign.payload.get("code") or ""))
    broadcast = event.type in BROADCASTS
    notice = dedupe_key.removesuffix(f":{unit_id}") if broadcast else dedupe_key
    queued = 0
    for robot in robots:
        key = _fit(f"{robot.kind}:{robot.name}|{notice}")
        if uow.scalar(select(Delivery.id).where(Delivery.dedupe_key == key)):
            continue
        several = broadcast and not (unit is not None and robot.units == (unit.code,))
        title, markdown = group_message(
            uow, ctx=ctx, family=family, context={**context, "unit_name": ALL_UNITS} if several else context
        )
        _queue_post(
            uow, ctx=ctx, event=event, unit_id=unit_id, robot=robot, key=key, title=title, text=markdown
        )
        queued += 1
    return queued


def group_message(
    uow: Session, *, ctx: ServiceContext, family: str, context: Mapping[str, object]
) -> tuple[str, str]:
    """The notice as a group post: the e-mail's subject as title, its body (no greeting) as markdown, the office."""
    from services.notification.compose import render_mail  # compose calls this module

    office = ctx.settings.notify_office_name
    common = contexts.common(greeting="", office=office, in_digest=True)
    mail = render_mail(uow, ctx=ctx, family=family, context={**context, **common})
    return mail.subject, to_markdown(mail.subject, mail.text, office=office)


def to_markdown(title: str, text: str, *, office: str) -> str:
    """Plain e-mail text as markdown both platforms show: a heading, paragraphs, indented lines as a list."""
    blocks: list[str] = [f"#### {_escape(title)}"]
    items: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[:1].isspace():
            items.append(f"- {_escape(line.strip())}")
            continue
        if items:
            blocks.append("\n".join(items))
            items = []
        blocks.append(_escape(line.strip()))
    if items:
        blocks.append("\n".join(items))
    blocks.append(f"> {_escape(office)}")
    return "\n\n".join(blocks)


def _escape(line: str) -> str:
    # User text (titles, comments) must not start a heading, quote or list of its own, nor hide behind HTML.
    line = line.replace("<", "\uff1c").replace(">", "\uff1e")  # fullwidth: shown, not parsed
    return "\\" + line if line[:1] in "#-*+>|`" else line


def _posted_types(payload: Mapping[str, Any]) -> set[str]:
    rules = payload.get("channel_rules") or {}
    return set(rules.get("unit_group") or ()) if isinstance(rules, dict) else set()


def _campaign_of(event: Envelope) -> str | None:
    value = event.payload.get("campaign_id") if isinstance(event.payload, dict) else None
    return str(value) if value else None


def _fit(key: str) -> str:
    from services.notification.compose import fit_key

    return fit_key(key)


def _queue_post(
    uow: Session,
    *,
    ctx: ServiceContext,
    event: Envelope,
    unit_id: str,
    robot: Robot,
    key: str,
    title: str,
    text: str,
) -> None:
    now = ctx.clock.now()
    uow.add(
        Delivery(
            id=new_id(),
            channel=robot.kind,
            message_id=None,
            dedupe_key=key,
            event_id=event.event_id,
            event_type=event.type,
            unit_id=unit_id,
            recipient=robot.name,
            subject=title[:300],
            body_text=text,
            body_html="",
            status="queued",
            attempts=0,
            resends=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    ctx.wake_job_after_commit(uow, POST_TO_GROUPS)
