"""Who may upload, read, delete and export evidence: bearer tokens, roles and the unit-subtree rule (docs/security.md)."""

from __future__ import annotations

import uuid

from shared.auth import INSPECTOR, REVIEWER
from shared.contracts.intake import UnitRegistered
from tests.evidence_storage import media
from tests.helpers import wait_until


def _routes(submission_id: str, evidence_id: str, session_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/submissions/{submission_id}/evidence"),
        ("POST", f"/submissions/{submission_id}/evidence"),
        ("POST", f"/submissions/{submission_id}/upload-sessions"),
        ("GET", f"/evidence/{evidence_id}"),
        ("GET", f"/evidence/{evidence_id}/content"),
        ("GET", f"/evidence/{evidence_id}/preview"),
        ("POST", f"/evidence/{evidence_id}/download-url"),
        ("DELETE", f"/evidence/{evidence_id}"),
        ("GET", f"/upload-sessions/{session_id}"),
        ("HEAD", f"/upload-sessions/{session_id}"),
        ("PUT", f"/upload-sessions/{session_id}"),
        ("POST", f"/upload-sessions/{session_id}/complete"),
        ("DELETE", f"/upload-sessions/{session_id}"),
    ]


def test_a_unit_works_on_its_own_evidence_and_another_unit_gets_404(world):
    own, foreign = world.unit("XS", "相山区信访局"), world.unit("SX", "濉溪县信访局")
    submission = world.submission(unit_id=own)
    liaison, stranger = world.unit_token(own), world.unit_token(foreign, name="陈静")
    stored = world.client.post(
        f"/submissions/{submission['id']}/evidence",
        params={"filename": "会议.jpg"},
        content=media.photo(70),
        headers={**liaison, "Content-Type": "application/octet-stream"},
    )
    assert stored.status_code == 201, stored.text
    session = world.client.post(
        f"/submissions/{submission['id']}/upload-sessions",
        json={"mode": "chunked", "filename": "横幅.jpg", "size": 2048},
        headers=liaison,
    )
    assert session.status_code == 201, session.text
    evidence_id, session_id = stored.json()["id"], session.json()["id"]

    for method, path in _routes(submission["id"], evidence_id, session_id):
        body = (
            {"mode": "chunked", "filename": "b.jpg", "size": 2048}
            if path.endswith("/upload-sessions")
            else {}
        )
        answer = world.client.request(
            method, path, headers=stranger, json=body if method in ("POST", "PUT") else None
        )
        assert answer.status_code == 404, f"{method} {path}: {answer.status_code} {answer.text[:200]}"
        if method != "HEAD":  # the same answer as for an id that does not exist
            assert answer.json()["code"] == "not_found", answer.text
        anonymous = world.client.request(method, path, headers={"Authorization": ""})
        assert anonymous.status_code == 401, f"{method} {path}: {anonymous.status_code}"

    # the unit itself reads, and is told no presigned URL exists on a folder store only after the 404 check passed
    assert world.client.get(f"/evidence/{evidence_id}/content", headers=liaison).status_code == 200
    assert [
        row["id"]
        for row in world.client.get(f"/submissions/{submission['id']}/evidence", headers=liaison).json()
    ] == [evidence_id]
    assert world.client.post(f"/evidence/{evidence_id}/download-url", headers=liaison).status_code == 501
    assert world.client.get(f"/upload-sessions/{session_id}", headers=liaison).status_code == 200
    assert world.client.delete(f"/upload-sessions/{session_id}", headers=liaison).status_code == 204
    assert world.evidence_count() == 1  # nothing the stranger sent was stored


def test_roles_reviewers_read_units_do_not_run_the_office_routes(world):
    unit = world.unit()
    submission = world.submission(unit_id=unit)
    evidence = world.upload(submission["id"], media.photo(71), "a.jpg").json()
    reviewer = world.token("赵强", role=REVIEWER)
    liaison = world.unit_token(unit)
    assert world.client.get(f"/evidence/{evidence['id']}", headers=reviewer).status_code == 200
    assert (
        world.client.get(
            f"/evidence/{evidence['id']}", headers=world.token("孙丽", role=INSPECTOR)
        ).status_code
        == 200
    )
    refused = world.client.post(
        f"/submissions/{submission['id']}/evidence", content=media.photo(72), headers=reviewer
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert world.client.delete(f"/evidence/{evidence['id']}", headers=reviewer).status_code == 403
    for method, path in (
        ("GET", "/audit-log"),
        ("GET", "/integrity-checks"),
        ("POST", "/integrity-checks"),
        ("GET", f"/campaigns/{uuid.uuid4()}/export.zip"),
    ):
        assert world.client.request(method, path, headers=liaison).status_code == 403, path
    assert world.client.get("/audit-log", headers=reviewer).status_code == 403


def test_unit_export_is_confined_to_the_subtree(world):
    own, foreign = world.unit("XS", "相山区信访局"), world.unit("SX", "濉溪县信访局")
    submission = world.submission(unit_id=own)
    world.upload(submission["id"], media.photo(73), "a.jpg")
    world.approve(submission)
    assert world.client.get(f"/units/{own}/export.zip", headers=world.unit_token(own)).status_code == 200
    hidden = world.client.get(f"/units/{own}/export.zip", headers=world.unit_token(foreign))
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"


def test_audit_rows_name_the_token_holder(world):
    unit = world.unit()
    submission = world.submission(unit_id=unit)
    evidence = world.upload(submission["id"], media.photo(74), "a.jpg").json()
    world.client.get(
        f"/evidence/{evidence['id']}/content", headers={**world.unit_token(unit), "X-Request-ID": "dl-1"}
    )
    rows = world.client.get("/audit-log", params={"evidence_id": evidence["id"]}).json()
    assert [
        (r["action"], r["actor_id"], r["actor_name"], r["actor_role"], r["actor_unit_id"], r["request_id"])
        for r in rows
    ] == [("evidence.download", "unit-李明", "李明", "unit", unit, "dl-1")]


def test_paths_follow_a_unit_moved_in_the_tree(world):
    parent, child = world.unit("HB", "淮北市信访局"), world.unit("XS", "相山区信访局")
    submission = world.submission(unit_id=child)
    evidence = world.upload(submission["id"], media.photo(75), "a.jpg").json()
    upper = world.unit_token(parent, name="周敏")
    assert world.client.get(f"/evidence/{evidence['id']}", headers=upper).status_code == 404
    world.publish(
        UnitRegistered(
            unit_id=child,
            code="XS",
            name="相山区信访局",
            level="county",
            parent_id=parent,
            unit_path=f"/{parent}/{child}/",
        )
    )
    wait_until(
        lambda: world.client.get(f"/evidence/{evidence['id']}", headers=upper).status_code == 200,
        what="the move to reach the evidence rows",
    )
    assert [
        row["id"]
        for row in world.client.get(f"/submissions/{submission['id']}/evidence", headers=upper).json()
    ] == [evidence["id"]]
