"""Who may read the delivery log, set preferences and change templates (docs/security.md)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT
from shared.clock import FixedClock
from shared.contracts.intake import SubmissionSubmitted
from shared.contracts.review import SubmissionApproved
from tests.helpers import wait_until


def approved(unit_id: str) -> SubmissionApproved:
    """An approval of a fresh submission of the unit."""
    return SubmissionApproved(
        submission_id=str(uuid.uuid4()),
        unit_id=unit_id,
        measure_code="M1",
        title="专题会议",
        version=1,
        reviewer="王芳",
    )


def test_every_route_but_health_needs_a_token(world):
    checked = 0
    for template, operations in world.client.app.openapi()[
        "paths"
    ].items():  # every route, however routers nest
        if template in ("/healthz", "/livez", "/readyz"):
            continue
        path = re.sub(r"{\w+}", "x", template)
        for method in operations:
            response = world.client.request(
                method, path, headers={"Authorization": ""}, json={"digest": True, "text": "x"}
            )
            assert response.status_code == 401, f"{method} {template} -> {response.status_code}"
            assert response.json()["code"] == "unauthenticated"
            checked += 1
    assert checked >= 10
    assert world.client.get("/healthz", headers={"Authorization": ""}).status_code == 200


def test_a_unit_sees_its_own_subtree_only(make_world, smtp):
    # 08:00 in Asia/Shanghai: the reviewers' digest (18:00) must not go out during the test
    world = make_world(
        clock=FixedClock(datetime(2020, 3, 10, 0, 0, tzinfo=UTC)), reviewer_emails=("wang.fang@example.org",)
    )
    parent = world.add_unit("相山区信访局")
    with world.ctx.db.session() as uow:
        from services.notification.models import KnownUnit

        parent_path = uow.get(KnownUnit, parent).unit_path
    child = world.add_unit("东山街道", parent_path=parent_path)
    other = world.add_unit("濉溪县信访局")
    for unit_id in (parent, child, other):
        world.publish(approved(unit_id))
    world.publish_and_wait(
        SubmissionSubmitted(
            submission_id=str(uuid.uuid4()), unit_id=parent, measure_code="M1", title="专题会议", version=1
        )
    )
    wait_until(lambda: len(world.deliveries(status="sent")) == 3, what="three deliveries to be sent")

    as_parent, as_child = world.as_caller(UNIT, parent), world.as_caller(UNIT, child)
    assert {d["unit_id"] for d in world.client.get("/deliveries", headers=as_parent).json()} == {
        parent,
        child,
    }
    assert {d["unit_id"] for d in world.client.get("/deliveries", headers=as_child).json()} == {child}
    assert world.client.get("/deliveries", params={"unit_id": other}, headers=as_parent).json() == []
    [others] = world.deliveries(unit_id=other)
    assert world.client.get(f"/deliveries/{others.id}", headers=as_parent).status_code == 404
    assert world.client.get(f"/deliveries/{others.id}", headers=world.as_caller(INSPECTOR)).status_code == 200
    assert world.client.get("/deliveries/summary", headers=as_child).json()["sent"] == 1
    assert (
        world.client.get("/deliveries/summary", params={"unit_id": child}, headers=as_parent).json()["sent"]
        == 1
    )
    assert (
        world.client.get("/deliveries/summary", params={"unit_id": other}, headers=as_parent).status_code
        == 404
    )
    assert world.client.get("/deliveries/summary", headers=world.as_caller(REVIEWER)).json()["sent"] == 3
    # the reviewers' digest lists the parent's submission, but it is the reviewers' mail, not the unit's
    assert world.client.get("/digest-items", headers=as_parent).json() == []
    assert len(world.client.get("/digest-items", headers=world.as_caller(REVIEWER)).json()) == 1


def test_preferences_are_the_units_own_and_audited(world):
    own, other = world.add_unit("相山区信访局"), world.add_unit("濉溪县信访局")
    as_own = world.as_caller(UNIT, own)
    changed = world.client.put(
        f"/units/{own}/preferences", json={"digest": True}, headers={**as_own, "X-Request-ID": "pref-1"}
    )
    assert changed.status_code == 200 and changed.json()["digest"] is True
    assert (
        world.client.put(f"/units/{other}/preferences", json={"digest": True}, headers=as_own).status_code
        == 404
    )
    assert world.client.get(f"/units/{other}/preferences", headers=as_own).status_code == 404
    assert (
        world.client.put(
            f"/units/{own}/preferences", json={"digest": False}, headers=world.as_caller(REVIEWER)
        ).status_code
        == 403
    )
    assert (
        world.client.get(f"/units/{own}/preferences", headers=world.as_caller(REVIEWER)).json()["digest"]
        is True
    )
    [entry] = world.client.get("/audit-log", params={"action": "notification.preference_set"}).json()
    assert (
        entry["actor_role"],
        entry["actor_unit_id"],
        entry["resource_id"],
        entry["request_id"],
        entry["detail"],
    ) == (UNIT, own, own, "pref-1", {"digest": True})


def test_only_admins_touch_templates_and_changes_are_audited(world):
    unit_id = world.add_unit()
    for headers in (world.as_caller(REVIEWER), world.as_caller(INSPECTOR), world.as_caller(UNIT, unit_id)):
        assert world.client.get("/templates", headers=headers).status_code == 403
        assert (
            world.client.put(
                "/templates/decision.subject", json={"text": "x{{ title }}"}, headers=headers
            ).status_code
            == 403
        )
        assert world.client.get("/audit-log", headers=headers).status_code == 403
    assert world.client.get("/templates/decision.subject").json()["source"] == "package"
    assert (
        world.client.put(
            "/templates/decision.subject",
            json={"text": "【结果】{{ title }}"},
            headers=world.as_caller(ADMIN),
        ).status_code
        == 200
    )
    assert world.client.delete("/templates/decision.subject").status_code == 204
    entries = world.client.get("/audit-log", params={"resource_type": "template"}).json()
    assert [(e["action"], e["resource_id"]) for e in entries] == [
        ("notification.template_reset", "decision.subject"),
        ("notification.template_set", "decision.subject"),
    ]
    assert (
        entries[1]["detail"]["text"] == "【结果】{{ title }}"
        and entries[0]["detail"]["previous"] == "【结果】{{ title }}"
    )
