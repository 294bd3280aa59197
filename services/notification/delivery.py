"""The delivery loop: claim a queued e-mail, send it, and record the outcome.

At most one e-mail per delivery row (and so per dedupe key): a row is claimed (`queued → sending`,
compare-and-set) before talking to SMTP, so two workers never send the same row. Temporary failures
go back to `queued` with exponential backoff and jitter until NOTIFY_RETRY_FOR_S has passed; permanent
ones end `failed` and publish notification.failed. While the server itself is unavailable the loop
stops its batch instead of trying every row (no retry storm), and a token bucket keeps the send rate
under SMTP_MAX_PER_MINUTE.
"""
from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import select, update

from services.notification.models import Delivery
from services.notification.render import RenderedMail, build_message, sender_domain
from shared.contracts import make_event
from shared.contracts.notification import NotificationDelivered, NotificationFailed
from shared.mail.port import PermanentMailError, ServerUnavailable, TemporaryMailError
from shared.mail.ratelimit import TokenBucket
from shared.runtime import ServiceContext

SERVICE = "notification"
log = logging.getLogger(__name__)


class DeliveryLoop:
    """Sends due e-mails for one worker; `run` is its periodic job."""

    def __init__(self, ctx: ServiceContext, *, bucket: TokenBucket | None = None, batch: int = 50,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ctx, self._bucket, self._batch, self._sleep = ctx, bucket, batch, sleep

    @classmethod
    def from_settings(cls, ctx: ServiceContext) -> "DeliveryLoop":
        """A loop with the rate limit SMTP_MAX_PER_MINUTE (none when 0)."""
        per_minute = ctx.settings.smtp_max_per_minute
        return cls(ctx, bucket=TokenBucket(per_minute) if per_minute else None)

    def run(self) -> int:
        """Send the e-mails that are due; returns how many were sent."""
        now = self.ctx.clock.now()
        with self.ctx.db.session() as uow:
            due = uow.scalars(select(Delivery.id).where(Delivery.status == "queued", Delivery.next_attempt_at <= now)
                              .order_by(Delivery.next_attempt_at, Delivery.created_at).limit(self._batch)).all()
        sent = 0
        for delivery_id in due:
            if not self._take_token():
                break  # the rest stays queued, unclaimed, for the next round (or another worker)
            if not self._claim(delivery_id):
                self._give_back()
                continue
            outcome = self._send(delivery_id)
            sent += outcome == "sent"
            if outcome == "server unavailable":
                break  # one probe per round while the server is down, not one per queued e-mail
        return sent

    def _take_token(self) -> bool:
        if self._bucket is None or self._bucket.try_take():
            return True
        wait = self._bucket.wait_s()
        if wait > self.ctx.settings.notify_poll_s:
            return False
        self._sleep(wait)
        return self._bucket.try_take()

    def _give_back(self) -> None:
        if self._bucket is not None:
            self._bucket.give_back()

    def _claim(self, delivery_id: str) -> bool:
        with self.ctx.db.transaction() as uow:
            return uow.execute(update(Delivery).where(Delivery.id == delivery_id, Delivery.status == "queued")
                               .values(status="sending", attempts=Delivery.attempts + 1)).rowcount == 1

    def _send(self, delivery_id: str) -> str:
        ctx = self.ctx
        with ctx.db.session() as uow:
            delivery = uow.get(Delivery, delivery_id)
        try:
            message = build_message(sender=ctx.settings.mail_from, recipient=delivery.recipient, mail=_as_rendered(delivery),
                                    message_id_domain=sender_domain(ctx.settings.mail_from))
        except ValueError as exc:
            _finish(delivery, "failed", f"invalid address: {exc}", ctx=ctx)
            return "failed"
        try:
            ctx.mailer.send(message)
        except ServerUnavailable as exc:
            _retry_later(delivery, str(exc), ctx=ctx)
            return "server unavailable"
        except TemporaryMailError as exc:
            _retry_later(delivery, str(exc), ctx=ctx)
            return "deferred"
        except PermanentMailError as exc:
            _finish(delivery, "failed", str(exc), ctx=ctx)
            return "failed"
        except Exception as exc:  # a bug or an odd transport error: keep the e-mail and try again later
            log.exception("delivery %s: unexpected error", delivery.id)
            _retry_later(delivery, f"{type(exc).__name__}: {exc}", ctx=ctx)
            return "deferred"
        _finish(delivery, "sent", None, ctx=ctx)
        return "sent"


def backoff_s(attempts: int, *, base_s: float, max_s: float, rand: Callable[[float, float], float] = random.uniform) -> float:
    """Delay before the next try: base·2^(attempts-1) capped at max, scaled by a random 50–100 % (jitter)."""
    return rand(0.5, 1.0) * min(base_s * 2 ** max(attempts - 1, 0), max_s)


def _as_rendered(delivery: Delivery) -> RenderedMail:
    return RenderedMail(subject=delivery.subject, text=delivery.body_text, html=delivery.body_html)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC


def _retry_later(delivery: Delivery, error: str, *, ctx: ServiceContext) -> None:
    settings, now = ctx.settings, ctx.clock.now()
    waited = (now - _utc(delivery.created_at)).total_seconds()
    if waited >= settings.notify_retry_for_s:
        _finish(delivery, "failed", f"gave up after {delivery.attempts} attempts in {waited:.0f}s: {error}", ctx=ctx)
        return
    delay = backoff_s(delivery.attempts, base_s=settings.notify_backoff_base_s, max_s=settings.notify_backoff_max_s)
    with ctx.db.transaction() as uow:
        uow.execute(update(Delivery).where(Delivery.id == delivery.id).values(
            status="queued", last_error=error[:1000], next_attempt_at=now + timedelta(seconds=delay)))
    log.warning("delivery %s deferred %.1fs after attempt %d: %s", delivery.id, delay, delivery.attempts, error)


def _finish(delivery: Delivery, status: str, error: str | None, *, ctx: ServiceContext) -> None:
    common = dict(delivery_id=delivery.id, dedupe_key=delivery.dedupe_key, recipient=delivery.recipient,
                  unit_id=delivery.unit_id, cause_type=delivery.event_type)
    event = NotificationDelivered(**common) if status == "sent" else NotificationFailed(reason=error or "", **common)
    # A sent delivery keeps the error of its last failed attempt, if any: the log tells why it took several.
    values = {"status": status, "sent_at": ctx.clock.now() if status == "sent" else None}
    if error is not None:
        values["last_error"] = error[:1000]
    with ctx.db.transaction() as uow:
        uow.execute(update(Delivery).where(Delivery.id == delivery.id).values(**values))
        ctx.outbox.add(uow, make_event(event, producer=SERVICE))
    ctx.outbox_written()
    if status == "failed":
        log.error("delivery %s failed for good: %s", delivery.id, error)
