"""Which events the notification service consumes, and the handlers for each; and its periodic jobs."""

from __future__ import annotations

from services.notification import digest, handlers, refusal_digest
from services.notification.compose import DELIVER_MAIL
from services.notification.delivery import DeliveryLoop
from services.notification.groups import POST_TO_GROUPS
from services.notification.posting import ChannelLoop
from shared.runtime import PeriodicJob, ServiceContext

SUBSCRIPTIONS = {
    "unit.registered": [handlers.remember_unit],
    "liaison.designated": [handlers.remember_liaison],
    "campaign.published": [handlers.notify_campaign],
    "submission.submitted": [handlers.notify_submission],
    "evidence.rejected": [handlers.notify_evidence_rejected],
    "submission.approved": [handlers.notify_decision],
    "submission.returned": [handlers.notify_decision],
    "submission.rejected": [handlers.notify_decision],
    "deadline.approaching": [handlers.notify_deadline],
    "deadline.missed": [handlers.notify_deadline],
    "inspection.recorded": [handlers.notify_inspection],
    "supervision.opened": [handlers.notify_supervision],
    "supervision.escalated": [handlers.notify_supervision],
    "supervision.closed": [handlers.notify_supervision],
    "circular.published": [handlers.notify_circular],
    "notification.failed": [handlers.notify_delivery_failed],
}

DIGEST_CHECK_S = 60.0


def jobs(ctx: ServiceContext) -> list[PeriodicJob]:
    """The delivery loop (woken by each commit that queued an e-mail, and every NOTIFY_POLL_S for retries and for
    e-mails another process queued) and the digest clock (every DIGEST_CHECK_S: a digest goes out once a day, so
    events need not wake it); the group-robot loop when CHANNEL_ROBOTS names a robot (woken, like the delivery
    loop, by each commit that queued a post)."""
    loop = DeliveryLoop.from_settings(ctx)
    robots = (
        [PeriodicJob(POST_TO_GROUPS, ctx.settings.notify_poll_s, ChannelLoop(ctx).run, wake_on_events=False)]
        if ctx.channels
        else []
    )
    return [
        # Not after every consumed event: most queue no e-mail, and each run is a locking claim query.
        PeriodicJob(DELIVER_MAIL, ctx.settings.notify_poll_s, loop.run, wake_on_events=False),
        *robots,
        PeriodicJob(
            "daily-digest", DIGEST_CHECK_S, lambda: digest.assemble_due(ctx=ctx), wake_on_events=False
        ),
        # after each refusal (the first of the hour goes out at once) and every minute (the ones held for the hour)
        PeriodicJob(
            "refusal-mail",
            DIGEST_CHECK_S,
            lambda: refusal_digest.send_due(ctx=ctx),
            wake_on_events=("evidence.rejected",),
        ),
    ]
