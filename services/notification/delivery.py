"""The delivery loop: claim a batch of queued e-mails, send them over one mail session, record the outcomes.

At most one e-mail per delivery row (and so per dedupe key): a batch of rows is claimed (`queued → sending`,
one transaction, rows other workers hold are skipped) before talking to SMTP, so two workers never send
the same row, and a worker that dies mid-batch leaves its claimed rows `sending`, never sent again.
Temporary failures go back to `queued` with exponential backoff and jitter until NOTIFY_RETRY_FOR_S has
passed; permanent ones end `failed` and publish notification.failed. The outcomes of a batch are recorded
in one transaction. While the server itself is unavailable the loop stops its batch and hands the rows it
did not try back to the queue (no retry storm); a token bucket keeps the send rate under
SMTP_MAX_PER_MINUTE, and a batch is only as large as the tokens that come within one round.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.notification.models import Delivery
from services.notification.render import RenderedMail, build_message, sender_domain
from shared.clock import as_utc
from shared.contracts import make_event
from shared.contracts.notification import NotificationDelivered, NotificationFailed
from shared.mail.port import MailSession, PermanentMailError, ServerUnavailable, TemporaryMailError
from shared.mail.ratelimit import TokenBucket
from shared.runtime import ServiceContext

SERVICE = "notification"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """A delivery as its claim left it (`attempts` counts the attempt under way)."""

    id: str
    dedupe_key: str
    event_type: str
    unit_id: str | None
    recipient: str
    subject: str
    body_text: str
    body_html: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: sent, failed (for good), deferred, or server unavailable (also deferred)."""

    delivery: Claimed
    status: str
    error: str | None = None


class DeliveryLoop:
    """Sends due e-mails for one worker; `run` is its periodic job."""

    def __init__(self, ctx: ServiceContext, *, bucket: TokenBucket | None = None, batch: int = 20,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ctx, self._bucket, self._batch, self._sleep = ctx, bucket, batch, sleep
        self._probing = False  # the server was unavailable: claim one row a round until a send gets an answer

    @classmethod
    def from_settings(cls, ctx: ServiceContext) -> "DeliveryLoop":
        """A loop with the rate limit SMTP_MAX_PER_MINUTE (none when 0)."""
        per_minute = ctx.settings.smtp_max_per_minute
        return cls(ctx, bucket=TokenBucket(per_minute) if per_minute else None)

    def run(self) -> int:
        """Send the e-mails that are due, batch after batch for up to one round; returns how many were sent."""
        started, sent = time.monotonic(), 0
        if self.ctx.mailer is None:
            raise RuntimeError("the notification worker was built without a mailer")
        with self.ctx.mailer.session() as mail:  # connects at its first message, so an idle round costs nothing
            while True:
                room = self._room()
                batch = self.claim(room)
                if not batch:
                    break
                outcomes: list[Outcome] = []
                try:
                    stopped = self._send_batch(mail, batch, outcomes)
                finally:  # also after an unexpected error: what was sent is recorded, what was not goes back
                    self.record(outcomes, unsent=batch[len(outcomes):])
                sent += sum(outcome.status == "sent" for outcome in outcomes)
                if stopped or len(batch) < room or time.monotonic() - started >= self.ctx.settings.notify_poll_s:
                    break
        return sent

    def claim(self, limit: int) -> list[Claimed]:
        """Mark up to `limit` due deliveries `sending`, counting the attempt, in one transaction; skips rows others hold."""
        if limit <= 0:
            return []
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as uow:
            rows = uow.scalars(select(Delivery).where(Delivery.status == "queued", Delivery.next_attempt_at <= now)
                               .order_by(Delivery.next_attempt_at, Delivery.created_at).limit(limit)
                               .with_for_update(skip_locked=True)).all()
            if not rows:
                return []
            claimed = [_claimed(row) for row in rows]
            uow.execute(update(Delivery).where(Delivery.id.in_([row.id for row in rows]))
                        .values(status="sending", attempts=Delivery.attempts + 1)
                        .execution_options(synchronize_session=False))
        return claimed

    def record(self, outcomes: list[Outcome], *, unsent: Sequence[Claimed] = ()) -> None:
        """Store the outcomes with their events in one transaction, and give claimed rows never tried back to the queue."""
        ctx = self.ctx
        if not outcomes and not unsent:
            return
        sent = [outcome.delivery for outcome in outcomes if outcome.status == "sent"]
        with ctx.db.transaction() as uow:
            if sent:  # the common case, in one statement; a sent row keeps the error of an earlier attempt, if any
                uow.execute(update(Delivery).where(Delivery.id.in_([d.id for d in sent]))
                            .values(status="sent", sent_at=ctx.clock.now()).execution_options(synchronize_session=False))
                for delivery in sent:
                    ctx.outbox.add(uow, make_event(_event(delivery, None), producer=SERVICE))
            for outcome in outcomes:
                if outcome.status != "sent":
                    _apply(uow, outcome, ctx=ctx)
            if unsent:
                # Nothing was said to the server about these: undo the claim as if it never happened.
                uow.execute(update(Delivery).where(Delivery.id.in_([d.id for d in unsent]), Delivery.status == "sending")
                            .values(status="queued", attempts=Delivery.attempts - 1)
                            .execution_options(synchronize_session=False))
        ctx.outbox_written()

    def _room(self) -> int:
        """How many rows to claim: the batch, or fewer when probing a down server or the rate limit lets fewer go out."""
        room = 1 if self._probing else self._batch
        if self._bucket is None:
            return room
        return min(room, self._bucket.available_within(self.ctx.settings.notify_poll_s))

    def _send_batch(self, mail: MailSession, batch: list[Claimed], outcomes: list[Outcome]) -> bool:
        """Send the batch in order, adding to `outcomes`; stops early (True) when out of tokens or the server is unavailable."""
        for delivery in batch:
            if not self._take_token():
                return True
            outcome = self._send(mail, delivery)
            outcomes.append(outcome)
            self._probing = outcome.status == "server unavailable"
            if self._probing:
                return True  # one probe per round while the server is down, not one per queued e-mail
        return False

    def _take_token(self) -> bool:
        if self._bucket is None or self._bucket.try_take():
            return True
        wait = self._bucket.wait_s()
        if wait > self.ctx.settings.notify_poll_s:
            return False
        self._sleep(wait)
        return self._bucket.try_take()

    def _send(self, mail: MailSession, delivery: Claimed) -> Outcome:
        settings = self.ctx.settings
        try:
            message = build_message(sender=settings.mail_from, recipient=delivery.recipient, mail=_as_rendered(delivery),
                                    message_id_domain=sender_domain(settings.mail_from))
        except ValueError as exc:
            return Outcome(delivery, "failed", f"invalid address: {exc}")
        try:
            mail.send(message)
        except ServerUnavailable as exc:
            return Outcome(delivery, "server unavailable", str(exc))
        except TemporaryMailError as exc:
            return Outcome(delivery, "deferred", str(exc))
        except PermanentMailError as exc:
            return Outcome(delivery, "failed", str(exc))
        except Exception as exc:  # a bug or an odd transport error: keep the e-mail and try again later
            log.exception("delivery %s: unexpected error", delivery.id)
            return Outcome(delivery, "deferred", f"{type(exc).__name__}: {exc}")
        return Outcome(delivery, "sent")


def backoff_s(attempts: int, *, base_s: float, max_s: float, rand: Callable[[float, float], float] = random.uniform) -> float:
    """Delay before the next try: base·2^(attempts-1) capped at max, scaled by a random 50–100 % (jitter)."""
    return rand(0.5, 1.0) * min(base_s * 2 ** max(attempts - 1, 0), max_s)


def _claimed(row: Delivery) -> Claimed:
    return Claimed(id=row.id, dedupe_key=row.dedupe_key, event_type=row.event_type, unit_id=row.unit_id,
                   recipient=row.recipient, subject=row.subject, body_text=row.body_text, body_html=row.body_html,
                   attempts=row.attempts + 1, created_at=row.created_at)


def _as_rendered(delivery: Claimed) -> RenderedMail:
    return RenderedMail(subject=delivery.subject, text=delivery.body_text, html=delivery.body_html)


def _apply(uow: Session, outcome: Outcome, *, ctx: ServiceContext) -> None:
    """Write a failure or deferral: a deferral goes back to the queue, or gives up after the retry window."""
    delivery, error = outcome.delivery, outcome.error or ""
    if outcome.status == "failed":
        _fail(uow, delivery, error, ctx=ctx)
        return
    settings, now = ctx.settings, ctx.clock.now()
    waited = (now - as_utc(delivery.created_at)).total_seconds()
    if waited >= settings.notify_retry_for_s:
        _fail(uow, delivery, f"gave up after {delivery.attempts} attempts in {waited:.0f}s: {error}", ctx=ctx)
        return
    delay = backoff_s(delivery.attempts, base_s=settings.notify_backoff_base_s, max_s=settings.notify_backoff_max_s)
    uow.execute(update(Delivery).where(Delivery.id == delivery.id).values(
        status="queued", last_error=error[:1000], next_attempt_at=now + timedelta(seconds=delay)))
    log.warning("delivery %s deferred %.1fs after attempt %d: %s", delivery.id, delay, delivery.attempts, error)


def _fail(uow: Session, delivery: Claimed, error: str, *, ctx: ServiceContext) -> None:
    uow.execute(update(Delivery).where(Delivery.id == delivery.id).values(status="failed", sent_at=None,
                                                                          last_error=error[:1000]))
    ctx.outbox.add(uow, make_event(_event(delivery, error), producer=SERVICE))
    log.error("delivery %s failed for good: %s", delivery.id, error)


def _event(delivery: Claimed, error: str | None) -> NotificationDelivered | NotificationFailed:
    """notification.delivered, or notification.failed with the reason when there is an error."""
    common: dict[str, Any] = dict(delivery_id=delivery.id, dedupe_key=delivery.dedupe_key, recipient=delivery.recipient,
                  unit_id=delivery.unit_id, cause_type=delivery.event_type)
    return NotificationDelivered(**common) if error is None else NotificationFailed(reason=error, **common)
