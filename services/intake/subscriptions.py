"""Which events the intake service consumes, the handlers for each, and the worker's periodic jobs."""

from __future__ import annotations

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
    return [
        PeriodicJob(
            "deadline-watch",
            ctx.settings.deadline_watch_interval_s,
            lambda: deadlines.watch_deadlines(ctx=ctx),
            wake_on_events=False,
        )
    ]
