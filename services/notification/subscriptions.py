"""Which events the notification service consumes, and the handlers for each."""
from __future__ import annotations

from services.notification import handlers
from shared.runtime import PeriodicJob, ServiceContext

SUBSCRIPTIONS = {
    "liaison.designated": [handlers.remember_liaison],
    "submission.approved": [handlers.notify_decision],
    "submission.returned": [handlers.notify_decision],
    "submission.rejected": [handlers.notify_decision],
}


def jobs(ctx: ServiceContext) -> list[PeriodicJob]:
    """The delivery loop: woken after each consumed event, and every few seconds for retries."""
    return [PeriodicJob("deliver-mail", 2.0, lambda: handlers.dispatch_due(ctx=ctx))]
