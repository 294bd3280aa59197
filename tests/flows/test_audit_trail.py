"""Changes made through the intake API land in its append-only audit log with who, what, when and from where."""

from __future__ import annotations

from tests.flows.steps import create_unit, submit


def test_unit_and_submission_changes_are_audited(client):
    unit = create_unit(client)
    submission = submit(client, unit["id"])
    assert client.post(f"/intake/submissions/{submission['id']}/withdraw").status_code == 200
    entries = client.get("/intake/audit-log", params={"limit": 50}).json()
    actions = {(e["action"], e["resource_id"]) for e in entries}
    assert ("unit.registered", unit["id"]) in actions
    assert ("submission.created", submission["id"]) in actions
    assert ("submission.withdrawn", submission["id"]) in actions
    created = next(e for e in entries if e["action"] == "submission.created")
    assert created["actor_role"] == "admin" and created["actor_name"]
    assert created["client_ip"] and created["request_id"] and created["at"]
    assert created["detail"]["unit_id"] == unit["id"]
