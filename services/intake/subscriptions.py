"""Which events the intake service consumes, the handlers for each, and the worker's periodic jobs."""
from __future__ import annotations

import time

from services.intake import deadlines, submissions
from shared.runtime import PeriodicJob, ServiceContext

SUBSCRIPTIONS = {
    "submission.approved": [submissions.record_decision],
    "submission.returned": [submissions.record_decision],
    "submission.rejected": [submissions.record_decision],
    "submission.claimed": [submissions.record_claim],
    "submission.released": [submissions.record_claim],
    "evidence.stored": [submissions.record_evidence],
}


def jobs(ctx: ServiceContext) -> list[PeriodicJob]:
    """The deadline watcher, every DEADLINE_WATCH_INTERVAL_S seconds (and at start)."""
    interval = ctx.settings.deadline_watch_interval_s
    last_run = [float("-inf")]

    def watch() -> None:
        # The worker also wakes its jobs after each consumed event; deadlines only need the interval.
        if time.monotonic() - last_run[0] < interval * 0.9:
            return
        last_run[0] = time.monotonic()
        deadlines.watch_deadlines(ctx=ctx)

    return [PeriodicJob("deadline-watch", interval, watch)]
