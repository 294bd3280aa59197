"""Turn a notice into an e-mail for one recipient: render it with the admin's overrides, then queue it
(one delivery per dedupe key) or keep it for the recipient's daily digest."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Mapping

from jinja2 import TemplateError
from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from services.notification import contexts
from services.notification.groups import post_to_groups
from services.notification.links import Links
from services.notification.models import Delivery, DigestItem, Liaison, Preference, TemplateOverride
from services.notification.render import (
    RenderedMail,
    TemplateOptions,
    delivery_message_id,
    recipient_header,
    render,
    sender_domain,
)
from shared.db import by_key
from shared.events import Envelope, new_id
from shared.runtime import ServiceContext
from shared.settings import Settings

MAX_KEY = 200
log = logging.getLogger(__name__)


class LiaisonUnknown(LookupError):
    """The unit's liaison has not reached this service yet; the event is retried later."""


def template_options(settings: Settings) -> TemplateOptions:
    """Where this process finds templates and in which time zone it shows dates."""
    folder = settings.notify_template_dir
    return TemplateOptions(template_dir=str(folder) if folder else None, timezone=settings.notify_timezone)


def links(settings: Settings) -> Links:
    """Link builder for PUBLIC_BASE_URL."""
    return Links(settings.public_base_url)


def overrides(uow: Session) -> dict[str, str]:
    """The admin's template overrides, by part name."""
    return {row.name: row.text for row in uow.scalars(select(TemplateOverride))}


def render_mail(
    uow: Session, *, ctx: ServiceContext, family: str, context: Mapping[str, object]
) -> RenderedMail:
    """Render a family with the overrides in force now; a broken override falls back to the packaged template."""
    options = template_options(ctx.settings)
    try:
        return render(family, context, options=options, overrides=overrides(uow))
    except TemplateError:
        # Overrides saved through the API were rendered before saving, but a folder override is not checked:
        # a mistake there must not stop the mail.
        log.exception("template override for %s failed; using the packaged template", family)
        return render(family, context, options=TemplateOptions(timezone=options.timezone))


def liaison_of(uow: Session, unit_id: str) -> Liaison:
    """The unit's liaison, or LiaisonUnknown so that the bus retries the event later."""
    liaison = by_key(uow, Liaison, unit_id)
    if liaison is None:
        raise LiaisonUnknown(unit_id)
    return liaison


def wants_digest(uow: Session, unit_id: str) -> bool:
    """Whether the unit asked for one daily digest instead of one mail per event."""
    return bool(uow.execute(_lookups()[0], {"unit_id": unit_id}).scalar())


def fit_key(key: str) -> str:
    """A dedupe key that fits its column: long ones keep a readable head and a hash of the whole."""
    if len(key) <= MAX_KEY:
        return key
    return f"{key[: MAX_KEY - 65]}#{hashlib.sha256(key.encode()).hexdigest()}"


def already_told(uow: Session, dedupe_key: str) -> bool:
    """Whether this notice was queued, sent or kept for a digest before."""
    _digest, queued, kept = _lookups()
    key = {"key": fit_key(dedupe_key)}
    return bool(uow.execute(queued, key).first() or uow.execute(kept, key).first())


@functools.cache
def _lookups() -> tuple[Select, Select, Select]:
    # Built once: every notice asks them, and building a statement costs about what running one does here.
    return (
        select(Preference.digest).where(Preference.unit_id == bindparam("unit_id")),
        select(Delivery.id).where(Delivery.dedupe_key == bindparam("key")).limit(1),
        select(DigestItem.id).where(DigestItem.dedupe_key == bindparam("key")).limit(1),
    )


def tell_liaison(
    uow: Session,
    *,
    ctx: ServiceContext,
    event: Envelope,
    liaison: Liaison,
    family: str,
    context: Mapping[str, object],
    dedupe_key: str,
) -> None:
    """Mail the unit's liaison once per dedupe key, or keep the notice for the unit's daily digest.

    The unit's group robots get the notice too when its campaign posts this event type (groups.py).
    """
    post_to_groups(
        uow,
        ctx=ctx,
        event=event,
        unit_id=liaison.unit_id,
        family=family,
        context=context,
        dedupe_key=dedupe_key,
    )
    if already_told(uow, dedupe_key):
        return
    digest = wants_digest(uow, liaison.unit_id)
    common = contexts.common(
        greeting=f"{liaison.name}同志", office=ctx.settings.notify_office_name, in_digest=digest
    )
    mail = render_mail(uow, ctx=ctx, family=family, context={**common, **context})
    if digest:
        keep_for_digest(
            uow,
            ctx=ctx,
            event=event,
            audience=f"unit:{liaison.unit_id}",
            unit_id=liaison.unit_id,
            subject=mail.subject,
            body_text=mail.text,
            link="",
            dedupe_key=dedupe_key,
        )
    else:
        queue_mail(
            uow,
            ctx=ctx,
            event=event,
            unit_id=liaison.unit_id,
            recipient=recipient_header(liaison.name, liaison.email),
            mail=mail,
            dedupe_key=dedupe_key,
            checked=True,
        )


def tell_address(
    uow: Session,
    *,
    ctx: ServiceContext,
    event: Envelope,
    unit_id: str | None,
    name: str,
    email: str,
    greeting: str,
    family: str,
    context: Mapping[str, object],
    dedupe_key: str,
) -> None:
    """Mail someone who is not a unit's liaison (the campaign office), once per dedupe key."""
    if already_told(uow, dedupe_key):
        return
    common = contexts.common(greeting=greeting, office=ctx.settings.notify_office_name)
    mail = render_mail(uow, ctx=ctx, family=family, context={**common, **context})
    queue_mail(
        uow,
        ctx=ctx,
        event=event,
        unit_id=unit_id,
        recipient=recipient_header(name, email),
        mail=mail,
        dedupe_key=dedupe_key,
        checked=True,
    )


DELIVER_MAIL = "deliver-mail"  # the worker's delivery loop (subscriptions.jobs), woken by each mail queued


def queue_mail(
    uow: Session,
    *,
    ctx: ServiceContext,
    event: Envelope | None,
    unit_id: str | None,
    recipient: str,
    mail: RenderedMail,
    dedupe_key: str,
    event_type: str | None = None,
    checked: bool = False,
) -> Delivery | None:
    """Add a delivery unless one with the same dedupe key exists; the delivery loop sends it.
    checked: the caller has just asked `already_told` in this transaction, so the key is not looked up again."""
    key = fit_key(dedupe_key)
    if not checked and uow.execute(_lookups()[1], {"key": key}).first():  # one already queued or sent
        return None
    now, delivery_id = ctx.clock.now(), new_id()
    delivery = Delivery(
        id=delivery_id,
        message_id=delivery_message_id(delivery_id, sender_domain(ctx.settings.mail_from)),
        dedupe_key=key,
        event_id=event.event_id if event else new_id(),
        event_type=event_type or (event.type if event else "notification"),
        unit_id=unit_id,
        recipient=recipient,
        subject=mail.subject,
        body_text=mail.text,
        body_html=mail.html,
        status="queued",
        attempts=0,
        resends=0,
        next_attempt_at=now,
        created_at=now,
    )
    uow.add(delivery)
    ctx.wake_job_after_commit(uow, DELIVER_MAIL)
    return delivery


def keep_for_digest(
    uow: Session,
    *,
    ctx: ServiceContext,
    event: Envelope,
    audience: str,
    unit_id: str | None,
    subject: str,
    body_text: str,
    link: str,
    dedupe_key: str,
) -> None:
    """Keep a notice for the audience's next daily digest (once per dedupe key)."""
    key = fit_key(dedupe_key)
    if uow.execute(_lookups()[2], {"key": key}).first():
        return
    uow.add(
        DigestItem(
            id=new_id(),
            dedupe_key=key,
            audience=audience,
            unit_id=unit_id,
            event_id=event.event_id,
            event_type=event.type,
            subject=subject,
            body_text=body_text,
            link=link,
            created_at=ctx.clock.now(),
            delivery_id=None,
        )
    )
