"""Which events the intake service consumes, and the handlers for each."""
from __future__ import annotations

from services.intake import handlers

SUBSCRIPTIONS = {
    "submission.approved": [handlers.record_decision],
    "submission.returned": [handlers.record_decision],
    "submission.rejected": [handlers.record_decision],
}
