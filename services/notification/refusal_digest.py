"""Refused uploads told to a unit's liaison at most once an hour: one mail listing every refusal since the last.

A script that keeps uploading a bad file would otherwise flood the liaison's mailbox (one mail per refusal).
The first refusal goes out at once (the job runs after each consumed event); refusals within the next hour
wait and go out together when it has passed. Units that chose the daily digest get refusals there instead.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.notification import contexts
from services.notification.compose import fit_key, keep_for_digest, links, queue_mail, render_mail
from services.notification.labels import EVIDENCE_REASONS, label
from services.notification.models import Delivery, DigestItem, Liaison
from services.notification.render import recipient_header
from shared.clock import as_utc
from shared.contracts.evidence import EvidenceRejected
from shared.events import Envelope
from shared.runtime import ServiceContext

AUDIENCE = "refusals:"
EVENT_TYPE = "evidence.rejected.digest"  # a mail listing several refusals
SINGLE_TYPE = "evidence.rejected"  # a mail telling one refusal
INTERVAL = timedelta(hours=1)
log = logging.getLogger(__name__)


def keep(uow: Session, *, ctx: ServiceContext, event: Envelope, data: EvidenceRejected) -> None:
    """Keep one refusal for the unit's next refusal mail (once per event)."""
    reason = data.reason or label(EVIDENCE_REASONS, data.reason_code)
    keep_for_digest(
        uow,
        ctx=ctx,
        event=event,
        audience=f"{AUDIENCE}{data.unit_id}",
        unit_id=data.unit_id,
        subject=contexts.short_filename(data.filename, 200),
        body_text=reason,
        link=links(ctx.settings).evidence(data.submission_id),
        dedupe_key=f"evidence.rejected:{event.event_id}",
    )


def send_due(*, ctx: ServiceContext) -> int:
    """Queue one refusal mail for every unit with waiting refusals whose last one is an hour old; returns how many."""
    now = ctx.clock.now()
    with ctx.db.session() as uow:
        audiences = uow.scalars(
            select(DigestItem.audience)
            .where(DigestItem.delivery_id.is_(None), DigestItem.audience.startswith(AUDIENCE))
            .distinct()
        ).all()
    queued = 0
    for audience in audiences:
        try:
            with ctx.db.transaction() as uow:
                queued += _send(uow, unit_id=audience[len(AUDIENCE) :], now=now, ctx=ctx)
        except IntegrityError:
            log.info("refusal mail for %s was queued by another worker", audience)
    return queued


def _send(uow: Session, *, unit_id: str, now: datetime, ctx: ServiceContext) -> int:
    last = uow.scalar(
        select(func.max(Delivery.created_at)).where(
            Delivery.event_type.in_((SINGLE_TYPE, EVENT_TYPE)), Delivery.unit_id == unit_id
        )
    )
    if last is not None and now - as_utc(last) < INTERVAL:
        return 0  # the next mail goes out an hour after the last
    items = uow.scalars(
        select(DigestItem)
        .where(DigestItem.audience == f"{AUDIENCE}{unit_id}", DigestItem.delivery_id.is_(None))
        .order_by(DigestItem.created_at, DigestItem.id)
    ).all()
    liaison = uow.get(Liaison, unit_id)
    if not items or liaison is None:
        return 0
    common = contexts.common(greeting=f"{liaison.name}同志", office=ctx.settings.notify_office_name)
    if len(items) == 1:  # one refusal reads as the ordinary notice, its (shortened) filename in the subject
        item = items[0]
        family, context = (
            "evidence_rejected",
            {
                "unit_name": liaison.unit_name,
                "filename": item.subject,
                "filename_short": contexts.short_filename(item.subject),
                "reason_code": "",
                "reason": item.body_text,
                "reason_text": item.body_text,
                "evidence_url": item.link,
            },
        )
    else:
        shown = [
            {
                "filename": i.subject,
                "reason_text": i.body_text,
                "link": i.link,
                "created_at": as_utc(i.created_at),
            }
            for i in items
        ]
        family, context = (
            "evidence_rejected_digest",
            contexts.evidence_rejected_digest(unit_name=liaison.unit_name, items=shown),
        )
    mail = render_mail(uow, ctx=ctx, family=family, context={**common, **context})
    delivery = queue_mail(
        uow,
        ctx=ctx,
        event=None,
        unit_id=unit_id,
        recipient=recipient_header(liaison.name, liaison.email),
        mail=mail,
        dedupe_key=fit_key(f"refusals:{unit_id}:{items[0].id}"),
        event_type=SINGLE_TYPE if len(items) == 1 else EVENT_TYPE,
    )
    if delivery is None:  # the same mail is queued already (its dedupe key exists)
        return 0
    if len(items) == 1:
        delivery.event_id = items[0].event_id  # the delivery log links the one refusal's event
    uow.flush()  # a concurrent worker's mail collides here on the dedupe key
    uow.execute(
        update(DigestItem).where(DigestItem.id.in_([i.id for i in items])).values(delivery_id=delivery.id)
    )
    log.info("refusal mail for unit %s queued with %d refusal(s)", unit_id, len(items))
    return 1
