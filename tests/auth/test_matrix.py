"""The authorisation matrix: every route of every wired service, for every role, a foreign unit and nobody.

Routes are enumerated from the apps themselves, so a new endpoint is checked the moment it exists: it must
answer anonymous callers with 401 (unless listed as public), never answer 5xx, and never hand a unit
another unit's data. A path parameter the matrix does not know yet fails the test until a sample is added.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.routing import Mount

from services.intake import identity
from services.intake.models import Unit
from services.notification.models import Delivery
from shared.auth import ADMIN, INSPECTOR, REVIEWER, UNIT, issuer_from_settings
from tests.auth.support import bearer
from tests.flows.steps import admin_token, create_unit, submit, upload, wait_evidence_ready, wait_review_item
from tests.helpers import JPEG_BYTES, wait_until
from tests.review.inspection_world import seed_review_samples

# The whole platform, every route for every caller: a minute or more, so not in the unit tier.
pytestmark = pytest.mark.integration

# Services whose every route is behind shared.auth.
WIRED = ("intake", "review", "evidence_storage", "notification")
PREFIXES = {
    "intake": "/intake",
    "review": "/review",
    "evidence_storage": "/evidence",
    "notification": "/notification",
}
PUBLIC = {
    "/healthz",
    "/livez",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/docs-assets/{name}",
    "/redoc",
    "/auth/login",
    "/auth/token",
    "/metrics",
}  # /metrics: anonymous unless METRICS_TOKEN is set (docs/operations.md)
UNIT_OWNED = {
    "unit_id",
    "submission_id",
    "key_id",
    "evidence_id",
    "session_id",
    "delivery_id",
    "inspection_id",
    "supervision_id",
}  # path parameters naming one unit's resource
CAMPAIGN_FILE = Path(__file__).resolve().parents[2] / "deploy" / "campaigns" / "huaibei-2020.yaml"
SAMPLE_BODIES = {
    ("POST", "/submissions/{submission_id}/approve"): {"score": 90},
    ("POST", "/submissions/{submission_id}/return"): {"comment": "请补充横幅照片"},
    ("POST", "/submissions/{submission_id}/reject"): {"reason": "与宣传月无关"},
    ("POST", "/submissions/{submission_id}/claim"): {"version": 1},
    ("POST", "/submissions/{submission_id}/assign"): {"reviewer": "me"},
    ("POST", "/submissions/{submission_id}/comments"): {"body": "请补充现场照片"},
    ("POST", "/bulk/approve"): {
        "items": [{"submission_id": "00000000-0000-0000-0000-000000000000", "version": 1}]
    },
    ("POST", "/bulk/return"): {
        "items": [{"submission_id": "00000000-0000-0000-0000-000000000000", "version": 1}],
        "comment": "请补充横幅照片",
    },
    ("POST", "/units/{unit_id}/api-keys"): {"label": "上传脚本"},
    ("POST", "/auth/login"): {"username": "nobody", "password": "wrong password"},
    ("POST", "/submissions/{submission_id}/upload-sessions"): {
        "mode": "chunked",
        "filename": "横幅.jpg",
        "size": 1024,
    },
    ("PUT", "/units/{unit_id}/preferences"): {"digest": True},
    ("PUT", "/templates/{name}"): {"text": "【审核结果】{{ unit_name }}：{{ title }}"},
    ("POST", "/supervisions/{supervision_id}/respond"): {"response": "已完成整改"},
    ("POST", "/supervisions/{supervision_id}/close"): {"outcome": "整改到位"},
}
# Deliberate 5xx answers of the embedded platform's folder store: no presigned URLs there (501, documented).
FOLDER_STORE_501 = {("POST", "/evidence/{evidence_id}/download-url")}
CALLERS = (
    "foreign_unit",
    "anonymous",
    "inspector",
    "reviewer",
    "own_unit",
    "admin",
)  # the foreign unit goes first,
# before any other caller's request changes the resource


@pytest.fixture
def world(platform):
    """Two unrelated units with a submission, an API key and a review item each, and a token per caller."""
    intake = platform.contexts["intake"]
    admin = bearer(admin_token(intake))
    client = platform.client
    own, foreign = (
        create_unit(client_with(client, admin), name=name) for name in ("相山区信访局", "濉溪县信访局")
    )
    own_submission = submit(client_with(client, admin), own["id"])
    submit(client_with(client, admin), foreign["id"], title="濉溪县宣传横幅")
    wait_review_item(client_with(client, admin), own_submission["id"])
    key = identity.create_api_key(
        own["id"], identity.ApiKeyCreate(label="脚本"), ctx=intake, principal=_admin_principal()
    )
    issuer = issuer_from_settings(intake.settings)
    with intake.db.session() as uow:
        paths = {unit["id"]: identity.unit_path_of(uow, unit["id"]) for unit in (own, foreign)}

    def unit_token(unit: dict) -> dict:
        return bearer(
            issuer.issue(
                subject=f"liaison-{unit['id']}",
                name="李明",
                role=UNIT,
                ttl_s=600,
                unit_id=unit["id"],
                unit_path=paths[unit["id"]],
            )
        )

    tokens = {
        "admin": admin,
        "anonymous": {},
        "reviewer": bearer(issuer.issue(subject="r1", name="赵强", role=REVIEWER, ttl_s=600)),
        "inspector": bearer(issuer.issue(subject="i1", name="孙丽", role=INSPECTOR, ttl_s=600)),
        "own_unit": unit_token(own),
        "foreign_unit": unit_token(foreign),
    }
    loaded = client.post(
        "/intake/campaigns", content=CAMPAIGN_FILE.read_bytes(), headers={"Content-Type": "application/yaml"}
    )
    assert loaded.status_code == 201, loaded.text
    staff = client_with(client, admin)
    wait_evidence_ready(staff, own_submission["id"])
    stored = upload(staff, own_submission["id"], JPEG_BYTES, "会议.jpg")
    assert stored.status_code == 201, stored.text
    opened = staff.post(
        f"/evidence/submissions/{own_submission['id']}/upload-sessions",
        json={"mode": "chunked", "filename": "横幅.jpg", "size": 1024},
    )
    assert opened.status_code == 201, opened.text
    delivery_id = wait_until(
        lambda: _delivery_of(platform, own["id"]), timeout=15, what="a delivery to the own unit"
    )
    samples = {
        "unit_id": own["id"],
        "submission_id": own_submission["id"],
        "key_id": key.id,
        "campaign_ref": "huaibei-2020",
        "version": "1",
        "code": "A1",
        "evidence_id": stored.json()["id"],
        "session_id": opened.json()["id"],
        "campaign_id": loaded.json()["campaign_id"],
        "delivery_id": delivery_id,
        "name": "decision.subject",
        "family": "decision",
        "username": "nobody",
        "message_id": "no-such-parked-message",
        "check_id": "no-such-integrity-check",
    }
    samples.update(seed_review_samples(staff, samples["campaign_id"], own["id"]))
    circular = staff.post(
        "/review/circulars", json={"campaign_id": samples["campaign_id"], "period": "2020-Q1"}
    )
    assert circular.status_code == 201, circular.text
    samples.update({"circular_id": circular.json()["id"], "file_kind": "docx"})
    own_ids = {
        own["id"],
        own_submission["id"],
        key.id,
        samples["evidence_id"],
        samples["session_id"],
        delivery_id,
        samples["inspection_id"],
        samples["supervision_id"],
    }
    return {"tokens": tokens, "samples": samples, "own_ids": own_ids}


def _delivery_of(platform, unit_id: str) -> str | None:
    """The id of a notification delivery to the unit, once there is one."""

    with platform.contexts["notification"].db.session() as uow:
        return uow.scalar(select(Delivery.id).where(Delivery.unit_id == unit_id).limit(1))


def client_with(client, headers):
    client.headers.update(headers)
    return client


def _admin_principal():
    from shared.auth import Principal

    return Principal(id="test-admin", name="王芳", role=ADMIN)


def routes_of(platform, service: str):
    """(method, path, route) for every route of one service's app as mounted in the embedded platform."""
    prefix = PREFIXES[service]
    mount = next(r for r in platform.app.routes if isinstance(r, Mount) and r.path == prefix)
    for path, methods, route in flat_routes(mount.app.routes):
        for method in sorted(methods or ()):
            if method != "HEAD":
                yield prefix, method, path, route


def flat_routes(routes):
    """(path, methods, original route) of every route, through included routers (FastAPI >= 0.16x nests them)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies included routes into the app's own list
        return [(route.path, getattr(route, "methods", None), route) for route in routes]
    return [
        (context.path, context.methods, context.original_route) for context in iter_route_contexts(routes)
    ]


def test_every_route_for_every_caller(platform, world):
    client = platform.client
    checked = 0
    for service in WIRED:
        for prefix, method, template, route in routes_of(platform, service):
            names = re.findall(r"{(\w+)(?::\w+)?}", template)
            unknown = [name for name in names if name not in world["samples"]]
            assert not unknown, (
                f"add a sample value for {unknown} ({method} {prefix}{template}) to the matrix"
            )
            path = re.sub(r"{(\w+)(?::\w+)?}", lambda m: world["samples"][m.group(1)], template)
            params = {}
            if isinstance(route, APIRoute):
                params = {
                    p.name: world["samples"][p.name]
                    for p in route.dependant.query_params
                    if p.name in world["samples"]
                }
            body = SAMPLE_BODIES.get((method, template), {}) if method in {"POST", "PUT", "PATCH"} else None
            for caller in CALLERS:
                client.headers.pop("Authorization", None)
                response = client.request(
                    method, prefix + path, params=params, json=body, headers=world["tokens"][caller]
                )
                where = f"{caller}: {method} {prefix}{path} -> {response.status_code} {response.text[:300]}"
                allowed_501 = response.status_code == 501 and (method, template) in FOLDER_STORE_501
                assert response.status_code < 500 or allowed_501, where
                if caller == "anonymous" and template not in PUBLIC:
                    assert response.status_code == 401, where
                if caller == "foreign_unit" and 200 <= response.status_code < 300:
                    assert not UNIT_OWNED & set(names), (
                        f"a foreign unit reached another unit's resource: {where}"
                    )
                    leaked = [ident for ident in world["own_ids"] if ident in response.text]
                    assert not leaked, f"a foreign unit saw another unit's data: {where}"
                checked += 1
    assert checked >= 6 * 10


def test_units_read_their_own_items_and_cannot_decide(platform, world):
    client = platform.client
    client.headers.pop("Authorization", None)
    submission_id = world["samples"]["submission_id"]
    own, foreign = world["tokens"]["own_unit"], world["tokens"]["foreign_unit"]
    assert client.get(f"/review/submissions/{submission_id}", headers=own).status_code == 200
    assert [i["submission_id"] for i in client.get("/review/queue", headers=own).json()] == [submission_id]
    assert client.get("/review/queue", headers=foreign).json() != [] and all(
        i["submission_id"] != submission_id for i in client.get("/review/queue", headers=foreign).json()
    )
    assert client.get(f"/review/submissions/{submission_id}", headers=foreign).status_code == 404
    assert (
        client.post(f"/review/submissions/{submission_id}/approve", json={}, headers=own).status_code == 403
    )
    assert (
        client.post(
            f"/review/submissions/{submission_id}/approve", json={}, headers=world["tokens"]["inspector"]
        ).status_code
        == 403
    )


def test_decisions_are_audited_under_the_logged_in_reviewer(platform, world):
    client = platform.client
    client.headers.pop("Authorization", None)
    submission_id = world["samples"]["submission_id"]
    reviewer = world["tokens"]["reviewer"]
    decided = client.post(
        f"/review/submissions/{submission_id}/approve",
        json={"reviewer": "冒名者", "score": 91},
        headers={**reviewer, "X-Request-ID": "matrix-1"},
    )
    assert decided.status_code == 200 and decided.json()["decided_by"] == "赵强"
    entries = client.get(
        "/review/audit-log", params={"resource_type": "submission"}, headers=world["tokens"]["admin"]
    ).json()
    assert [
        (e["action"], e["actor_id"], e["resource_id"], e["request_id"], e["detail"]["score"]) for e in entries
    ] == [("submission.approved", "r1", submission_id, "matrix-1", 91)]
    assert entries[0]["client_ip"]


def test_intake_confines_units_to_their_subtree(platform, world):
    client = platform.client
    client.headers.pop("Authorization", None)
    own, foreign, reviewer = (world["tokens"][name] for name in ("own_unit", "foreign_unit", "reviewer"))
    unit_id, submission_id = world["samples"]["unit_id"], world["samples"]["submission_id"]
    assert client.get(f"/intake/units/{unit_id}", headers=own).status_code == 200
    assert client.get(f"/intake/submissions/{submission_id}", headers=own).status_code == 200
    assert [s["id"] for s in client.get("/intake/submissions", headers=own).json()] == [submission_id]
    assert client.get(f"/intake/units/{unit_id}", headers=foreign).status_code == 404
    assert (
        submission_id
        not in client.get("/intake/submissions", params={"unit_id": unit_id}, headers=foreign).text
    )
    new = {"unit_id": unit_id, "measure_code": "M2", "title": "设置网上信访宣传角"}
    assert client.post("/intake/submissions", json=new, headers=foreign).status_code == 404
    assert client.post("/intake/submissions", json=new, headers=reviewer).status_code == 403
    assert client.post("/intake/submissions", json=new, headers=own).status_code == 201
    # a unit registers units only below itself
    child = {"code": "RJJD", "name": "任集街道", "level": "township", "parent_id": unit_id}
    assert client.post("/intake/units", json={**child, "parent_id": None}, headers=own).status_code == 403
    assert client.post("/intake/units", json=child, headers=foreign).status_code == 404
    assert client.post("/intake/units", json=child, headers=own).status_code == 201


def test_a_unit_sees_only_its_own_subtrees_liaison_contact_data_in_campaign_definitions(platform, world):
    client = platform.client
    client.headers.pop("Authorization", None)
    intake = platform.contexts["intake"]
    with intake.db.session() as uow:
        xsq = uow.scalar(select(Unit).where(Unit.code == "XSQ"))
        xsq_path = identity.unit_path_of(uow, xsq.id)
    liaison = bearer(
        issuer_from_settings(intake.settings).issue(
            subject="liaison-xsq", name="李明", role=UNIT, ttl_s=600, unit_id=xsq.id, unit_path=xsq_path
        )
    )
    emails = {"li.ming@example.org", "wang.jing@example.org", "chen.gang@example.org"}
    admin_view = client.get("/intake/campaigns/huaibei-2020", headers=world["tokens"]["admin"]).text
    assert all(email in admin_view for email in emails)
    own_view = client.get("/intake/campaigns/huaibei-2020", headers=liaison)
    assert own_view.status_code == 200
    shown = {unit["code"]: unit["liaison"] for unit in own_view.json()["definition"]["units"]}
    assert shown["XSQ"]["email"] == "li.ming@example.org" and shown["DJQ"] is None and shown["LSQ"] is None
    assert "wang.jing@example.org" not in own_view.text and "chen.gang@example.org" not in own_view.text
    foreign_view = client.get("/intake/campaigns/huaibei-2020", headers=world["tokens"]["foreign_unit"]).text
    assert not [email for email in emails if email in foreign_view]
    for caller in ("foreign_unit", "own_unit"):
        version = client.get("/intake/campaigns/huaibei-2020/versions/1", headers=world["tokens"][caller])
        assert version.status_code == 200 and version.json()["source_text"] is None
        assert not [email for email in emails if email in version.text]
    version = client.get("/intake/campaigns/huaibei-2020/versions/1", headers=liaison).json()
    assert version["source_text"] is None
    assert (
        "li.ming@example.org"
        in client.get("/intake/campaigns/huaibei-2020/versions/1", headers=world["tokens"]["reviewer"]).text
    )
