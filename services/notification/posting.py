"""The group-robot loop: claim queued DingTalk and WeCom posts under the same lease as e-mails, post, record.

Everything but the sending is the delivery loop's (services/notification/delivery.py): the claim with its
lease and resends, the outcome recorded with its event, backoff with jitter, giving up after
NOTIFY_RETRY_FOR_S. What differs: each row names a robot (its name in CHANNEL_ROBOTS), each robot has its own
rate limit (CHANNEL_MAX_PER_WINDOW posts in CHANNEL_RATE_WINDOW_S, counted on the clock port), a robot whose
window is full holds its rows back until the window has room (no attempt counted), and a platform's
"too fast" refusal (DingTalk 130101, WeCom 45009, HTTP 429) fills that robot's window and defers the row.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from services.notification.delivery import Claimed, DeliveryLoop, Outcome
from shared.channels.port import (
    ChannelMessage,
    ChannelRateLimited,
    PermanentChannelError,
    TemporaryChannelError,
)
from shared.channels.robots import Channels
from shared.metrics import CHANNEL_POSTS
from shared.runtime import ServiceContext

log = logging.getLogger(__name__)
ROBOT_CHANNELS = ("dingtalk", "wecom")


class ChannelLoop(DeliveryLoop):
    """Posts due group-robot deliveries for one worker; `run` is its periodic job."""

    CHANNELS = ROBOT_CHANNELS

    def __init__(self, ctx: ServiceContext, *, batch: int = 20) -> None:
        super().__init__(ctx, batch=batch)

    @property
    def channels(self) -> Channels:
        """The process's channels (the loop exists only when some robot is configured)."""
        if self.ctx.channels is None:
            raise RuntimeError("the notification worker was built without channels")
        return self.ctx.channels

    def run(self) -> int:
        """Post what is due, batch after batch for up to one round; returns how many were posted."""
        started, posted = time.monotonic(), 0
        while True:
            batch = self.claim(self._batch)
            if not batch:
                break
            outcomes: list[Outcome] = []
            held: dict[str, datetime] = {}
            try:
                for delivery in batch:
                    outcome, until = self._post(delivery)
                    if outcome is None:
                        held[delivery.id] = until or self.ctx.clock.now()
                    else:
                        outcomes.append(outcome)
            finally:  # also after an unexpected error: what was posted is recorded, the rest goes back
                done = {outcome.delivery.id for outcome in outcomes}
                self.record(outcomes, unsent=[d for d in batch if d.id not in done], not_before=held)
            posted += sum(outcome.status == "sent" for outcome in outcomes)
            if len(batch) < self._batch or time.monotonic() - started >= self.ctx.settings.notify_poll_s:
                break
        return posted

    def _post(self, delivery: Claimed) -> tuple[Outcome | None, datetime | None]:
        """Post one row: its outcome, or (None, until) when its robot's window is full."""
        channels = self.channels
        robot = channels.robots.get(delivery.recipient)
        adapter = channels.adapter(delivery.channel)
        if robot is None or adapter is None or robot.kind != delivery.channel:
            return Outcome(delivery, "failed", f"robot {delivery.recipient!r} is not configured"), None
        now = self.ctx.clock.now()
        stamp = now.timestamp()
        if not channels.limit.try_take(robot.name, stamp):
            wait = channels.limit.wait_s(robot.name, stamp)
            log.info(
                "robot %s: %d posts in the window; post %s waits %.0fs",
                robot.name,
                channels.limit.per_window,
                delivery.id,
                wait,
            )
            return None, now + timedelta(seconds=wait)
        message = ChannelMessage(title=delivery.subject, markdown=delivery.body_text)
        try:
            adapter.post(robot, message)
        except ChannelRateLimited as exc:
            channels.limit.saturate(robot.name, stamp)
            log.warning(
                "robot %s (%s) refused post %s as too fast (%s); its posts wait %.0fs",
                robot.name,
                robot.kind,
                delivery.id,
                exc,
                channels.limit.window_s,
            )
            return Outcome(delivery, "deferred", f"rate limited: {exc}", channels.limit.window_s), None
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

    def _count(self, outcome: Outcome) -> None:
        CHANNEL_POSTS.labels(outcome.delivery.channel, outcome.status).inc()
