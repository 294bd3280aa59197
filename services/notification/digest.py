"""Daily digests: once a day, at NOTIFY_DIGEST_HOUR in NOTIFY_TIMEZONE, each audience's waiting notices
become one e-mail (one delivery, dedupe key `digest:<audience>:<local date>`).

Audiences are units that chose the digest (`unit:<unit id>`, sent to the liaison) and each address in
REVIEWER_EMAILS (`reviewer:<address>`, the new submissions). A digest holds every notice kept before it
was assembled; notices kept after that day's digest wait for the next day's.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.notification import contexts
from services.notification.compose import fit_key, links, queue_mail, render_mail
from services.notification.models import Delivery, DigestItem, Liaison
from services.notification.render import recipient_header
from shared.clock import as_utc
from shared.runtime import ServiceContext

log = logging.getLogger(__name__)


def digest_day(ctx: ServiceContext) -> date | None:
    """Today's date in NOTIFY_TIMEZONE once NOTIFY_DIGEST_HOUR has come, else None (too early)."""
    local = ctx.clock.now().astimezone(ZoneInfo(ctx.settings.notify_timezone))
    return local.date() if local.hour >= ctx.settings.notify_digest_hour else None


def assemble_due(*, ctx: ServiceContext) -> int:
    """Queue today's digest for every audience with waiting notices, once; returns how many were queued."""
    day = digest_day(ctx)
    if day is None:
        return 0
    now = ctx.clock.now()
    with ctx.db.session() as uow:
        audiences = uow.scalars(
            select(DigestItem.audience)
            .where(
                DigestItem.delivery_id.is_(None),
                DigestItem.created_at <= now,
                ~DigestItem.audience.startswith("refusals:"),
            )
            .distinct()
        ).all()  # those go out hourly (refusal_digest.py)
    queued = 0
    for audience in audiences:
        try:
            with ctx.db.transaction() as uow:
                queued += _assemble(uow, audience=audience, day=day, now=now, ctx=ctx)
        except IntegrityError:
            log.info("digest %s for %s was assembled by another worker", audience, day)
    return queued


def _assemble(uow: Session, *, audience: str, day: date, now: datetime, ctx: ServiceContext) -> int:
    key = fit_key(f"digest:{audience}:{day.isoformat()}")
    if uow.scalar(select(Delivery.id).where(Delivery.dedupe_key == key)):
        return 0  # today's is out; what came later waits for tomorrow's
    items = uow.scalars(
        select(DigestItem)
        .where(
            DigestItem.audience == audience, DigestItem.delivery_id.is_(None), DigestItem.created_at <= now
        )
        .order_by(DigestItem.created_at, DigestItem.id)
    ).all()
    if not items:
        return 0
    kind, _, who = audience.partition(":")
    shown = [
        {"subject": i.subject, "body_text": i.body_text, "link": i.link, "created_at": as_utc(i.created_at)}
        for i in items
    ]
    office = ctx.settings.notify_office_name
    if kind == "unit":
        liaison = uow.get(Liaison, who)
        if liaison is None:
            return 0  # kept until the unit has a liaison again
        family, unit_id, recipient = "digest", who, recipient_header(liaison.name, liaison.email)
        context = {
            **contexts.common(greeting=f"{liaison.name}同志", office=office),
            **contexts.digest(
                unit_id=who, unit_name=liaison.unit_name, day=day, items=shown, links=links(ctx.settings)
            ),
        }
    elif kind == "reviewer":
        family, unit_id, recipient = "reviewer_digest", None, recipient_header("", who)
        context = {
            **contexts.common(greeting="各位审核人员", office=office),
            **contexts.reviewer_digest(day=day, items=shown, links=links(ctx.settings)),
        }
    else:
        log.error("digest items for unknown audience %r left alone", audience)
        return 0
    mail = render_mail(uow, ctx=ctx, family=family, context=context)
    delivery = queue_mail(
        uow,
        ctx=ctx,
        event=None,
        unit_id=unit_id,
        recipient=recipient,
        mail=mail,
        dedupe_key=key,
        event_type=f"digest.{family}",
    )
    if delivery is None:
        return 0  # checked above, so only a race: today's is out
    uow.flush()  # a concurrent worker's digest collides here on the dedupe key
    uow.execute(
        update(DigestItem).where(DigestItem.id.in_([i.id for i in items])).values(delivery_id=delivery.id)
    )
    return 1
