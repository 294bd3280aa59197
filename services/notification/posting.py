"""The group-robot loop: claim queued DingTalk and WeCom posts under the same lease as e-mails, post, record.

Everything but the sending is the delivery loop's (services/notification/delivery.py): the claim with its
lease and resends, the outcome recorded with its event, backoff with jitter, giving up after
NOTIFY_RETRY_FOR_S. What differs: each row names a robot (its name in CHANNEL_ROBOTS), each robot has its own
rate limit (CHANNEL_MAX_PER_WINDOW posts in CHANNEL_RATE_WINDOW_S, on the clock port, counted from the
delivery log so that every worker shares it, each outcome recorded as soon as the post is answered), a
robot whose window is full holds its rows back until the window has room (no attempt counted), and a platform's
"too fast" refusal (DingTalk 130101, WeCom 45009, HTTP 429) fills that robot's window and defers the row.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta

from sqlalchemy import select

from services.notification.delivery import Claimed, DeliveryLoop, Outcome
from services.notification.models import Delivery
from shared.channels.port import (
    ChannelMessage,
    ChannelRateLimited,
    PermanentChannelError,
    TemporaryChannelError,
)
from shared.channels.ratelimit import WindowLimit
from shared.channels.robots import Channels
from shared.clock import as_utc
from shared.mail.port import MailSession
from shared.metrics import CHANNEL_POSTS
from shared.runtime import ServiceContext

log = logging.getLogger(__name__)
ROBOT_CHANNELS = ("dingtalk", "wecom")


class ChannelLoop(DeliveryLoop):
    """Posts due group-robot deliveries for one worker; `run` is its periodic job."""

    CHANNELS = ROBOT_CHANNELS

    def __init__(self, ctx: ServiceContext, *, batch: int = 20, limit: WindowLimit | None = None) -> None:
        super().__init__(ctx, batch=batch)
        self._own_limit = limit  # tests give each simulated worker its own; else the process's

    @property
    def limit(self) -> WindowLimit:
        """This worker's count of each robot's posts (and of the platform's too-fast refusals)."""
        return self._own_limit or self.channels.limit

    @property
    def channels(self) -> Channels:
        """The process's channels (the loop exists only when some robot is configured)."""
        if self.ctx.channels is None:
            raise RuntimeError("the notification worker was built without channels")
        return self.ctx.channels

    def _session(self) -> AbstractContextManager[MailSession | None]:
        """No session to keep busy: a post is a single request."""
        return nullcontext()

    def _send_batch(
        self, _session: MailSession | None, batch: list[Claimed], outcomes: list[Outcome | None]
    ) -> bool:
        """Post each row and record its outcome at once (the delivery log is what other workers count a robot's
        window by); a row whose robot's window is full goes back to the queue until it has room."""
        for delivery in batch:
            outcome, until = self._post(delivery)
            if outcome is None:
                self.record([], unsent=[delivery], not_before={delivery.id: until or self.ctx.clock.now()})
            else:
                self.record([outcome])
            outcomes.append(outcome)
        return False

    def _post(self, delivery: Claimed) -> tuple[Outcome | None, datetime | None]:
        """Post one row: its outcome, or (None, until) when its robot's window is full."""
        channels = self.channels
        robot = channels.robots.get(delivery.recipient)
        adapter = channels.adapter(delivery.channel)
        if robot is None or adapter is None or robot.kind != delivery.channel:
            return Outcome(delivery, "failed", f"robot {delivery.recipient!r} is not configured"), None
        now = self.ctx.clock.now()
        stamp = now.timestamp()
        wait = self._shared_wait_s(delivery, now)
        if wait > 0 or not self.limit.try_take(robot.name, stamp):
            wait = max(wait, self.limit.wait_s(robot.name, stamp))
            log.info(
                "robot %s: %d posts in the window; post %s waits %.0fs",
                robot.name,
                self.limit.per_window,
                delivery.id,
                wait,
            )
            return None, now + timedelta(seconds=wait)
        message = ChannelMessage(title=delivery.subject, markdown=delivery.body_text)
        try:
            adapter.post(robot, message)
        except ChannelRateLimited as exc:
            self.limit.saturate(robot.name, stamp)
            log.warning(
                "robot %s (%s) refused post %s as too fast (%s); its posts wait %.0fs",
                robot.name,
                robot.kind,
                delivery.id,
                exc,
                self.limit.window_s,
            )
            return Outcome(delivery, "deferred", f"rate limited: {exc}", self.limit.window_s), None
        except TemporaryChannelError as exc:
            return Outcome(delivery, "deferred", str(exc)), None
        except PermanentChannelError as exc:
            log.error(
                "robot %s (%s) refused post %s for good: %s. Check its token and 加签 secret in "
                "CHANNEL_ROBOTS (and the robot's security settings), then requeue: "
                'POST /notification/ops/deliveries/requeue {"channel": "%s"}',
                robot.name,
                robot.kind,
                delivery.id,
                exc,
                robot.kind,
            )
            return Outcome(delivery, "failed", str(exc)), None
        except Exception as exc:  # a bug or an odd transport error: keep the post and try again later
            log.exception("post %s to robot %s: unexpected error", delivery.id, robot.name)
            return Outcome(delivery, "deferred", f"{type(exc).__name__}: {exc}"), None
        return Outcome(delivery, "sent"), None

    def _shared_wait_s(self, delivery: Claimed, now: datetime) -> float:
        """Seconds until the robot's window has room, counting every worker's posts in the delivery log: those
        sent within the window and those other workers are sending now."""
        limit = self.limit
        since = now - timedelta(seconds=limit.window_s)
        robot = (Delivery.channel == delivery.channel) & (Delivery.recipient == delivery.recipient)
        sent_lately = (Delivery.status == "sent") & (Delivery.sent_at > since)
        sending_elsewhere = (Delivery.status == "sending") & (Delivery.lease_owner != self.owner)
        # One statement, so one snapshot: in two, a post another worker recorded as sent between them was in
        # neither count (PostgreSQL gives each statement its own snapshot), and one post too many went through.
        with self.ctx.db.session() as uow:
            rows = uow.execute(
                select(Delivery.status, Delivery.sent_at).where(robot, sent_lately | sending_elsewhere)
            ).all()
        sent = sorted((as_utc(row.sent_at) for row in rows if row.status == "sent"), reverse=True)
        in_flight = len(rows) - len(sent)
        if len(sent) + in_flight < limit.per_window:
            return 0.0
        if len(sent) < limit.per_window:  # posts other workers have under way fill it: look again next round
            return self.ctx.settings.notify_poll_s
        # the oldest of the window's last per_window posts frees the next place
        frees_at = sent[limit.per_window - 1] + timedelta(seconds=limit.window_s)
        return max((frees_at - now).total_seconds(), 0.001)

    def _count(self, outcome: Outcome) -> None:
        CHANNEL_POSTS.labels(outcome.delivery.channel, outcome.status).inc()
