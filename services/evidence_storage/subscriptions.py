"""Which events the evidence_storage service consumes, and the handlers for each."""

from __future__ import annotations

from services.evidence_storage import handlers

SUBSCRIPTIONS = {
    "submission.submitted": [handlers.track_submission],
    "submission.withdrawn": [handlers.track_withdrawal],
    "submission.approved": [handlers.track_decision],
    "submission.returned": [handlers.track_decision],
    "submission.rejected": [handlers.track_decision],
    "campaign.published": [handlers.track_campaign],
    "unit.registered": [handlers.track_unit],
    "liaison.designated": [handlers.track_unit],
    "inspection.recorded": [handlers.track_inspection],
}
