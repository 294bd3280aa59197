"""Events a service has no work for with its settings are not consumed at all."""

from __future__ import annotations

from services.notification.subscriptions import SUBSCRIPTIONS
from shared.runtime import wanted_subscriptions
from shared.settings import Settings


def test_submissions_are_consumed_only_for_receipts_or_reviewer_digests():
    assert "submission.submitted" not in wanted_subscriptions(SUBSCRIPTIONS, Settings())
    assert "submission.approved" in wanted_subscriptions(SUBSCRIPTIONS, Settings())
    assert "submission.submitted" in wanted_subscriptions(
        SUBSCRIPTIONS, Settings(notify_submission_receipts=True)
    )
    assert "submission.submitted" in wanted_subscriptions(
        SUBSCRIPTIONS, Settings(reviewer_emails="a@example.org")
    )
    assert set(wanted_subscriptions(SUBSCRIPTIONS, Settings(reviewer_emails="a@example.org"))) == set(
        SUBSCRIPTIONS
    )
