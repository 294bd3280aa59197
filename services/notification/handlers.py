"""Notification event handlers: learn units, liaisons and campaigns; tell each liaison once per notice."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from email.utils import parseaddr
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.notification import contexts, refusal_digest
from services.notification.compose import (
    LiaisonUnknown,
    keep_for_digest,
    liaison_of,
    links,
    tell_address,
    tell_liaison,
    wants_digest,
)
from services.notification.labels import SUBMISSION_KINDS, label
from services.notification.models import Delivery, HeldNotice, KnownCampaign, KnownUnit, Liaison
from services.notification.render import recipient_header
from shared.clock import as_utc
from shared.contracts import read_payload
from shared.contracts.evidence import EvidenceRejected
from shared.contracts.intake import (
    CampaignPublished,
    DeadlineApproaching,
    DeadlineMissed,
    LiaisonDesignated,
    SubmissionSubmitted,
    UnitRegistered,
)
from shared.contracts.notification import NotificationFailed
from shared.contracts.review import (
    DECISIONS,
    CircularPublished,
    InspectionRecorded,
    SupervisionClosed,
    SupervisionEscalated,
    SupervisionOpened,
)
from shared.db import rows_affected
from shared.events import Envelope
from shared.runtime import ServiceContext

SERVICE = "notification"
Handler = Callable[..., None]
log = logging.getLogger(__name__)
_HOLDING: dict[str, Handler] = {}  # handlers whose events wait for the unit's liaison, by name


def held_until_liaison(handler: Handler) -> Handler:
    """Wrap a handler that tells a unit's liaison: with none named yet, keep the event and tell it once one is.

    Without this the event would be retried and then parked, and the notice lost for good.
    """
    _HOLDING[handler.__name__] = handler

    @functools.wraps(handler)
    def wrapped(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
        try:
            handler(event, uow=uow, ctx=ctx)
        except LiaisonUnknown as missing:  # raised before anything is written
            if uow.get(HeldNotice, (event.event_id, handler.__name__)) is None:
                uow.add(
                    HeldNotice(
                        event_id=event.event_id,
                        handler=handler.__name__,
                        unit_id=str(missing.args[0]),
                        envelope=event.model_dump(mode="json"),
                        held_at=ctx.clock.now(),
                    )
                )
                log.info(
                    "no liaison yet for unit %s: %s held until one is named", missing.args[0], event.type
                )

    return wrapped


def _tell_held(uow: Session, ctx: ServiceContext, unit_id: str) -> None:
    for held in uow.scalars(
        select(HeldNotice).where(HeldNotice.unit_id == unit_id).order_by(HeldNotice.held_at)
    ).all():
        _HOLDING[held.handler](Envelope.model_validate(held.envelope), uow=uow, ctx=ctx)
        uow.delete(held)


SUPERVISIONS = {
    model.EVENT_TYPE: model for model in (SupervisionOpened, SupervisionEscalated, SupervisionClosed)
}
DEADLINES = {model.EVENT_TYPE: model for model in (DeadlineApproaching, DeadlineMissed)}


def remember_unit(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Keep the unit tree from unit.registered (names for units that have no liaison yet)."""
    data = read_payload(UnitRegistered, event)
    unit = uow.get(KnownUnit, data.unit_id) or KnownUnit(unit_id=data.unit_id)
    unit.code, unit.name, unit.level = data.code, data.name, data.level
    unit.parent_id, unit.unit_path, unit.campaign_id = data.parent_id, data.unit_path, data.campaign_id
    uow.add(unit)


def remember_liaison(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Keep the unit's current liaison; one named after a campaign was published is told about it too."""
    data = read_payload(LiaisonDesignated, event)
    liaison = uow.get(Liaison, data.unit_id)
    if liaison is None:
        liaison = Liaison(
            unit_id=data.unit_id, unit_name=data.unit_name, name=data.liaison_name, email=data.liaison_email
        )
        uow.add(liaison)
    else:
        before = recipient_header(liaison.name, liaison.email)
        liaison.unit_name, liaison.name, liaison.email = data.unit_name, data.liaison_name, data.liaison_email
        _readdress(uow, data.unit_id, before, recipient_header(liaison.name, liaison.email))
    unit = uow.get(KnownUnit, data.unit_id)
    if unit is None:  # the designation came first: enough of the unit to scope its delivery log
        uow.add(
            KnownUnit(
                unit_id=data.unit_id,
                code=data.unit_code,
                name=data.unit_name,
                level="",
                unit_path=data.unit_path,
            )
        )
    elif data.unit_path:
        unit.unit_path = data.unit_path
    uow.flush()
    today = ctx.clock.now().astimezone(ZoneInfo(ctx.settings.notify_timezone)).date()
    for campaign in uow.scalars(select(KnownCampaign).where(KnownCampaign.publicity_end >= today)):
        published = Envelope(
            event_id=campaign.event_id,
            type=CampaignPublished.EVENT_TYPE,
            producer="intake",
            payload=campaign.payload,
        )
        _tell_campaign(
            uow, ctx=ctx, event=published, data=read_payload(CampaignPublished, published), liaison=liaison
        )
    _tell_held(uow, ctx, data.unit_id)


def _readdress(uow: Session, unit_id: str, before: str, after: str) -> None:
    """Point the unit's e-mails still to send (queued, or failed for an operator to requeue) at its new liaison.

    A failed mail to a mistyped address is what the office corrects: the requeue after the correction must reach
    the new address, not the one the server refused. Mail under way (`sending`) and mail to others is left alone.
    """
    if before == after:
        return
    moved = rows_affected(
        uow.execute(
            update(Delivery)
            .where(
                Delivery.unit_id == unit_id,
                Delivery.channel == "email",
                Delivery.status.in_(("queued", "failed")),
                Delivery.recipient == before,
            )
            .values(recipient=after)
            .execution_options(synchronize_session=False)
        )
    )
    if moved:
        log.info("unit %s has a new liaison address: %d e-mail(s) to send re-addressed to it", unit_id, moved)


def notify_campaign(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Tell every known liaison that a campaign (or a new version of it) was published, once per version and unit."""
    data = read_payload(CampaignPublished, event)
    known = uow.get(KnownCampaign, data.campaign_id)
    if known is not None and data.version < known.version:
        return  # a late, superseded version: its units were told about the newer one
    known = known or KnownCampaign(campaign_id=data.campaign_id)
    known.event_id, known.name, known.version = event.event_id, data.name, data.version
    known.publicity_end, known.payload = data.publicity_end, dict(event.payload)
    uow.add(known)
    for liaison in uow.scalars(select(Liaison).order_by(Liaison.unit_id)):
        _tell_campaign(uow, ctx=ctx, event=event, data=data, liaison=liaison)


def _tell_campaign(
    uow: Session, *, ctx: ServiceContext, event: Envelope, data: CampaignPublished, liaison: Liaison
) -> None:
    context = contexts.campaign_published(data, unit_name=liaison.unit_name, links=links(ctx.settings))
    tell_liaison(
        uow,
        ctx=ctx,
        event=event,
        liaison=liaison,
        family="campaign_published",
        context=context,
        dedupe_key=f"campaign.published:{data.campaign_id}:v{data.version}:{liaison.unit_id}",
    )


def notify_submission(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """A receipt to the liaison (when NOTIFY_SUBMISSION_RECEIPTS is on), and an item for each reviewer's digest."""
    data = read_payload(SubmissionSubmitted, event)
    link = links(ctx.settings)
    liaison = uow.get(Liaison, data.unit_id)
    if (
        ctx.settings.notify_submission_receipts and liaison is not None
    ):  # no liaison yet: no receipt, still the digest
        tell_liaison(
            uow,
            ctx=ctx,
            event=event,
            liaison=liaison,
            family="submission_received",
            context=contexts.submission_received(data, unit_name=liaison.unit_name, links=link),
            dedupe_key=f"submission.submitted:{data.submission_id}:v{data.version}",
        )
    what = data.measure_code if data.kind == "measure" else label(SUBMISSION_KINDS, data.kind)
    line = f"{_unit_name(uow, data.unit_id)}：{data.title}（{what}，第{data.version}版）"
    for address in ctx.settings.reviewer_emails:
        keep_for_digest(
            uow,
            ctx=ctx,
            event=event,
            audience=f"reviewer:{address}",
            unit_id=data.unit_id,
            subject=line,
            body_text="",
            link=link.review_item(data.submission_id),
            dedupe_key=f"reviewer:{address}|submission.submitted:{data.submission_id}:v{data.version}",
        )


@held_until_liaison
def notify_evidence_rejected(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Tell the liaison that an upload was refused, and why: in the hourly refusal mail (or the daily digest)."""
    data = read_payload(EvidenceRejected, event)
    liaison = liaison_of(uow, data.unit_id)
    if not wants_digest(uow, liaison.unit_id):
        refusal_digest.keep(uow, ctx=ctx, event=event, data=data)
        return
    tell_liaison(
        uow,
        ctx=ctx,
        event=event,
        liaison=liaison,
        family="evidence_rejected",
        context=contexts.evidence_rejected(data, unit_name=liaison.unit_name, links=links(ctx.settings)),
        dedupe_key=f"evidence.rejected:{event.event_id}",
    )


@held_until_liaison
def notify_decision(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Tell the liaison a reviewer's decision (approved, returned with the comment, rejected)."""
    decision = read_payload(DECISIONS[event.type], event)
    liaison = liaison_of(uow, decision.unit_id)
    kind = event.type.split(".", 1)[1]
    tell_liaison(
        uow,
        ctx=ctx,
        event=event,
        liaison=liaison,
        family="decision",
        context=contexts.decision(kind, decision, unit_name=liaison.unit_name, links=links(ctx.settings)),
        dedupe_key=f"{event.type}:{decision.submission_id}:v{decision.version}",
    )


@held_until_liaison
def notify_deadline(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """A deadline is near or passed: tell the liaison what is missing; a unit with no liaison yet is reported to the office."""
    data = read_payload(DEADLINES[event.type], event)
    kind = event.type.split(".", 1)[1]
    lead = getattr(data, "lead", "")
    key = f"{event.type}:{data.campaign_id}:{data.deadline_code}:{data.unit_id}" + (
        f":{lead}" if lead else ""
    )
    campaign = uow.get(KnownCampaign, data.campaign_id)
    campaign_name = campaign.name if campaign else ""
    link = links(ctx.settings)
    if concerns_liaison(data.deadline_code):
        liaison = uow.get(Liaison, data.unit_id)
        reminder = functools.partial(
            contexts.liaison_reminder,
            kind=kind,
            unit_id=data.unit_id,
            deadline_name=data.deadline_name,
            due_at=as_utc(data.due_at),
            lead=lead,
            campaign_name=campaign_name,
            links=link,
        )
        if liaison is not None:
            tell_liaison(
                uow,
                ctx=ctx,
                event=event,
                liaison=liaison,
                family="liaison_reminder",
                dedupe_key=key,
                context=reminder(unit_name=liaison.unit_name, to_office=False),
            )
            return
        settings = ctx.settings
        tell_address(
            uow,
            ctx=ctx,
            event=event,
            unit_id=data.unit_id,
            name=settings.notify_office_name,
            email=settings.notify_office_email,
            greeting=settings.notify_office_name,
            family="liaison_reminder",
            dedupe_key=f"{key}:office",
            context=reminder(unit_name=_unit_name(uow, data.unit_id), to_office=True),
        )
        return
    liaison = liaison_of(uow, data.unit_id)
    tell_liaison(
        uow,
        ctx=ctx,
        event=event,
        liaison=liaison,
        family="deadline",
        dedupe_key=key,
        context=contexts.deadline(
            kind, data, unit_name=liaison.unit_name, campaign_name=campaign_name, links=link
        ),
    )


def concerns_liaison(deadline_code: str) -> bool:
    """Whether a deadline is the one for naming the unit's liaison (codes `liaison`, `liaison_designation`, ...)."""
    return deadline_code.strip().lower().startswith("liaison")


@held_until_liaison
def notify_inspection(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Tell the liaison what an inspection of the unit found."""
    data = read_payload(InspectionRecorded, event)
    liaison = liaison_of(uow, data.unit_id)
    tell_liaison(
        uow,
        ctx=ctx,
        event=event,
        liaison=liaison,
        family="inspection_recorded",
        context=contexts.inspection_recorded(data, unit_name=liaison.unit_name, links=links(ctx.settings)),
        dedupe_key=f"inspection.recorded:{data.inspection_id}",
    )


@held_until_liaison
def notify_supervision(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Tell the liaison that a supervision of the unit was opened, escalated (once per level) or closed."""
    data = read_payload(SUPERVISIONS[event.type], event)
    kind = event.type.split(".", 1)[1]
    liaison = liaison_of(uow, data.unit_id)
    key = f"{event.type}:{data.supervision_id}" + (f":{data.level}" if kind == "escalated" else "")
    tell_liaison(
        uow,
        ctx=ctx,
        event=event,
        liaison=liaison,
        family="supervision",
        dedupe_key=key,
        context=contexts.supervision(kind, data, unit_name=liaison.unit_name, links=links(ctx.settings)),
    )


def notify_circular(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Tell every known liaison that a circular was published, once per circular and unit."""
    data = read_payload(CircularPublished, event)
    campaign = uow.get(KnownCampaign, data.campaign_id)
    for liaison in uow.scalars(select(Liaison).order_by(Liaison.unit_id)):
        context = contexts.circular_published(
            data,
            unit_name=liaison.unit_name,
            campaign_name=campaign.name if campaign else "",
            links=links(ctx.settings),
        )
        tell_liaison(
            uow,
            ctx=ctx,
            event=event,
            liaison=liaison,
            family="circular_published",
            context=context,
            dedupe_key=f"circular.published:{data.circular_id}:{liaison.unit_id}",
        )


def _wants_submissions(settings) -> bool:
    # Neither receipts nor reviewers' digests: submission.submitted is not even consumed (shared/runtime.py).
    return bool(settings.notify_submission_receipts or settings.reviewer_emails)


# A plain function attribute that shared.runtime.wanted_subscriptions reads with getattr().
notify_submission.wanted = _wants_submissions  # type: ignore[attr-defined]


def _unit_name(uow: Session, unit_id: str) -> str:
    unit = uow.get(KnownUnit, unit_id)
    if unit is not None:
        return unit.name
    liaison = uow.get(Liaison, unit_id)
    return liaison.unit_name if liaison is not None else unit_id


def notify_delivery_failed(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """An e-mail (or group post) failed for good: tell the campaign office, at most once per address (robot) and day."""
    data = read_payload(NotificationFailed, event)
    settings = ctx.settings
    if parseaddr(data.recipient)[1].lower() == settings.notify_office_email.lower():
        log.error("a mail to the campaign office itself failed for good: %s", data.reason)
        return  # telling the office that mail to the office fails would fail too
    day = ctx.clock.now().astimezone(ZoneInfo(settings.notify_timezone)).date().isoformat()
    unit_name = _unit_name(uow, data.unit_id) if data.unit_id else ""
    # unit_id None: the notice is the office's, not part of the unit's own delivery log.
    tell_address(
        uow,
        ctx=ctx,
        event=event,
        unit_id=None,
        name=settings.notify_office_name,
        email=settings.notify_office_email,
        greeting=settings.notify_office_name,
        family="delivery_failed",
        dedupe_key=f"notification.failed:{data.recipient.lower()}:{day}",
        context=contexts.delivery_failed(
            recipient=data.recipient,
            reason=data.reason,
            unit_id=data.unit_id,
            unit_name=unit_name,
            links=links(ctx.settings),
            channel=data.channel,
        ),
    )
