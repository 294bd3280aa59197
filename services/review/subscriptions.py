"""Which events the review service consumes, and the handlers for each."""
from __future__ import annotations

from services.review import handlers

SUBSCRIPTIONS = {
    "submission.submitted": [handlers.enqueue_submission],
    "submission.withdrawn": [handlers.withdraw],
    "evidence.stored": [handlers.attach_evidence],
    "unit.registered": [handlers.repath_unit],
}
