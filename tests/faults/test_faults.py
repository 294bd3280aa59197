"""Real faults against the distributed platform, each in the middle of a few submissions (create, upload a photo,
approve), then an audit: nothing lost, nothing stuck, nothing orphaned, duplicates only under one Message-ID and
no more than the SMTP conversations in flight at a crash. `python -m bench.faults` runs them with larger loads."""

from __future__ import annotations

import pytest

from tests.faults.harness import SCENARIOS, poison_count, run_scenario

pytestmark = [pytest.mark.fault, pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.timeout(900)]
LOAD = 6
IN_FLIGHT_AT_A_CRASH = 1  # one SMTP conversation per notification worker at a time


def _assert_nothing_lost(outcome) -> None:
    audit = outcome.audit
    errors = [flow.error for flow in outcome.flows if flow.error]
    assert not errors, errors
    assert audit.approved == len(outcome.flows) and audit.false_404 == 0
    assert (audit.lost, audit.expired_leases, audit.unpublished, audit.unconsumed, audit.queued) == (
        0,
        0,
        0,
        0,
        0,
    ), audit
    assert (audit.orphaned, audit.multipart, audit.inconsistent) == (0, 0, 0), audit
    assert audit.duplicated_other_id == 0 and audit.duplicated <= IN_FLIGHT_AT_A_CRASH, audit


@pytest.mark.parametrize("name", ["kill-each", "broker", "smtp", "s3"])
def test_a_fault_mid_flow_loses_nothing(fault_world, name):
    _assert_nothing_lost(run_scenario(fault_world, SCENARIOS[name], LOAD))


def test_a_notification_worker_killed_right_after_claiming_a_batch_loses_no_mail(fault_world):
    resends_before = fault_world.audit([], settle_s=0)[0].resends
    outcome = run_scenario(fault_world, SCENARIOS["kill-mailer"], LOAD)
    _assert_nothing_lost(outcome)
    assert outcome.audit.resends > resends_before  # the killed worker's batch went out once its lease expired


def test_poison_messages_are_parked_and_the_queues_keep_flowing(fault_world):
    _, parked_before = fault_world._queue_depths()
    outcome = run_scenario(fault_world, SCENARIOS["poison"], 3)
    _assert_nothing_lost(outcome)
    assert outcome.audit.parked - parked_before == poison_count()
