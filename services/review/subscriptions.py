"""Which events the review service consumes, and the handlers for each."""
from __future__ import annotations

import time

from services.review import handlers, queue, supervision
from shared.runtime import PeriodicJob, ServiceContext

SUBSCRIPTIONS = {
    "campaign.published": [handlers.project_campaign],
    "unit.registered": [handlers.project_unit],
    "liaison.designated": [handlers.project_liaison],
    "submission.submitted": [handlers.enqueue_submission],
    "submission.withdrawn": [handlers.withdraw],
    "evidence.stored": [handlers.attach_evidence],
    "evidence.downloaded": [handlers.record_download],
    "deadline.missed": [supervision.on_deadline_missed],
}


def jobs(ctx: ServiceContext) -> list[PeriodicJob]:
    """The supervision rules, escalation and expired-claim release every SUPERVISION_RULES_INTERVAL_S seconds (none when 0)."""
    interval = ctx.settings.supervision_rules_interval_s
    if interval <= 0:
        return []
    last_run = [float("-inf")]

    def run() -> None:
        # The worker also wakes its jobs after each consumed event; the rules only need the interval.
        if time.monotonic() - last_run[0] < interval * 0.9:
            return
        last_run[0] = time.monotonic()
        supervision.run_rules(ctx)
        queue.release_expired(ctx)

    return [PeriodicJob("supervision-rules", interval, run)]
