"""Notification use cases: learn liaisons, queue one e-mail per decision, deliver with retries."""
from __future__ import annotations

import logging
import random
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.notification.models import Delivery, Liaison
from services.notification.render import RenderedMail, build_message, recipient_header, render
from shared.contracts import make_event, read_payload
from shared.contracts.intake import LiaisonDesignated
from shared.contracts.notification import NotificationDelivered, NotificationFailed
from shared.contracts.review import DECISIONS
from shared.events import Envelope, new_id
from shared.mail.port import PermanentMailError, TemporaryMailError
from shared.runtime import ServiceContext

SERVICE = "notification"
MAX_ATTEMPTS = 8
OFFICE = "网上信访宣传月活动领导小组办公室"
log = logging.getLogger(__name__)


class LiaisonUnknown(LookupError):
    """The unit's liaison has not reached this service yet; the event is retried later."""


def remember_liaison(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Keep the unit's current liaison from liaison.designated."""
    data = read_payload(LiaisonDesignated, event)
    liaison = uow.get(Liaison, data.unit_id)
    if liaison is None:
        uow.add(Liaison(unit_id=data.unit_id, unit_name=data.unit_name, name=data.liaison_name, email=data.liaison_email))
    else:
        liaison.unit_name, liaison.name, liaison.email = data.unit_name, data.liaison_name, data.liaison_email


def notify_decision(event: Envelope, *, uow: Session, ctx: ServiceContext) -> None:
    """Queue one e-mail to the unit's liaison about a review decision."""
    decision = read_payload(DECISIONS[event.type], event)
    liaison = uow.get(Liaison, decision.unit_id)
    if liaison is None:
        raise LiaisonUnknown(decision.unit_id)
    kind = event.type.split(".", 1)[1]
    mail = render("decision", {
        "kind": kind, "unit_name": liaison.unit_name, "liaison_name": liaison.name, "title": decision.title,
        "measure_code": decision.measure_code, "version": decision.version, "reviewer": decision.reviewer,
        "comment": decision.comment, "score": getattr(decision, "score", None), "office": OFFICE,
    })
    queue_mail(uow, ctx=ctx, event=event, unit_id=decision.unit_id, liaison=liaison, subject=mail.subject,
               text=mail.text, html=mail.html, dedupe_key=f"{event.type}:{decision.submission_id}:v{decision.version}")


def queue_mail(uow: Session, *, ctx: ServiceContext, event: Envelope, unit_id: str | None, liaison: Liaison,
               subject: str, text: str, html: str, dedupe_key: str) -> None:
    """Add a delivery unless one with the same dedupe key exists."""
    if uow.scalar(select(Delivery.id).where(Delivery.dedupe_key == dedupe_key)):
        return
    now = ctx.clock.now()
    uow.add(Delivery(
        id=new_id(), dedupe_key=dedupe_key, event_id=event.event_id, event_type=event.type, unit_id=unit_id,
        recipient=recipient_header(liaison.name, liaison.email), subject=subject, body_text=text, body_html=html,
        status="queued", attempts=0, next_attempt_at=now, created_at=now,
    ))


def dispatch_due(*, ctx: ServiceContext, limit: int = 50) -> int:
    """Send queued e-mails that are due; each is claimed first so no two workers send it."""
    now = ctx.clock.now()
    with ctx.db.session() as uow:
        due = uow.scalars(select(Delivery.id).where(Delivery.status == "queued", Delivery.next_attempt_at <= now)
                          .order_by(Delivery.created_at).limit(limit)).all()
    sent = 0
    for delivery_id in due:
        with ctx.db.transaction() as uow:
            claimed = uow.execute(update(Delivery).where(Delivery.id == delivery_id, Delivery.status == "queued")
                                  .values(status="sending", attempts=Delivery.attempts + 1)).rowcount
        if claimed == 1:
            sent += _send_one(delivery_id, ctx=ctx)
    return sent


def _send_one(delivery_id: str, *, ctx: ServiceContext) -> int:
    with ctx.db.session() as uow:
        delivery = uow.get(Delivery, delivery_id)
    name, _, address = delivery.recipient.rpartition("<")
    message = build_message(sender=ctx.settings.mail_from, recipient_name=name.strip().strip('"'),
                            recipient_email=address.rstrip(">"), mail=_as_rendered(delivery))
    try:
        ctx.mailer.send(message)
    except TemporaryMailError as exc:
        _retry_later(delivery, str(exc), ctx=ctx)
        return 0
    except (PermanentMailError, ValueError) as exc:
        _finish(delivery, "failed", str(exc), ctx=ctx)
        return 0
    _finish(delivery, "sent", None, ctx=ctx)
    return 1


def _as_rendered(delivery: Delivery) -> RenderedMail:
    return RenderedMail(subject=delivery.subject, text=delivery.body_text, html=delivery.body_html)


def _retry_later(delivery: Delivery, error: str, *, ctx: ServiceContext) -> None:
    if delivery.attempts >= MAX_ATTEMPTS:
        _finish(delivery, "failed", f"gave up after {delivery.attempts} attempts: {error}", ctx=ctx)
        return
    # Exponential backoff with full jitter keeps a recovering mail server from a retry storm.
    delay = random.uniform(0.5, 1.0) * min(2 ** delivery.attempts, 600)
    with ctx.db.transaction() as uow:
        uow.execute(update(Delivery).where(Delivery.id == delivery.id).values(
            status="queued", last_error=error[:1000], next_attempt_at=ctx.clock.now() + timedelta(seconds=delay)))
    log.warning("delivery %s deferred %.1fs: %s", delivery.id, delay, error)


def _finish(delivery: Delivery, status: str, error: str | None, *, ctx: ServiceContext) -> None:
    common = dict(delivery_id=delivery.id, dedupe_key=delivery.dedupe_key, recipient=delivery.recipient,
                  unit_id=delivery.unit_id, cause_type=delivery.event_type)
    event = NotificationDelivered(**common) if status == "sent" else NotificationFailed(reason=error or "", **common)
    with ctx.db.transaction() as uow:
        uow.execute(update(Delivery).where(Delivery.id == delivery.id).values(
            status=status, last_error=error[:1000] if error else None,
            sent_at=ctx.clock.now() if status == "sent" else None))
        ctx.outbox.add(uow, make_event(event, producer=SERVICE))
    ctx.outbox_written()
