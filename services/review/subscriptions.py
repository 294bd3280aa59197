"""Which events the review service consumes, and the handlers for each."""

from __future__ import annotations

from services.review import handlers
from services.review.queue import use_cases as queue
from services.review.supervision import use_cases as supervision
from shared.runtime import PeriodicJob, ServiceContext

SUBSCRIPTIONS = {
    "campaign.published": [handlers.project_campaign],
    "unit.registered": [handlers.project_unit],
    "liaison.designated": [handlers.project_liaison],
    "submission.submitted": [handlers.enqueue_submission],
    "submission.withdrawn": [handlers.withdraw],
    "evidence.stored": [handlers.attach_evidence],
    "evidence.text_read": [handlers.attach_text],
    "evidence.downloaded": [handlers.record_download],
    "deadline.missed": [supervision.on_deadline_missed],
}


def jobs(ctx: ServiceContext) -> list[PeriodicJob]:
    """The supervision rules, escalation and expired-claim release every SUPERVISION_RULES_INTERVAL_S seconds (none when 0)."""
    interval = ctx.settings.supervision_rules_interval_s
    if interval <= 0:
        return []

    def run() -> None:
        supervision.run_rules(ctx)
        queue.release_expired(ctx)

    return [PeriodicJob("supervision-rules", interval, run, wake_on_events=False)]
