"""The user-level steps of the thinnest flow, reused by the embedded and distributed tests."""

from __future__ import annotations

import uuid

from tests.helpers import wait_until

ADMIN_PASSWORD = "test-admin-password"

EMBEDDED = {
    "intake": "/intake",
    "evidence": "/evidence",
    "review": "/review",
    "notification": "/notification",
}


def admin_token(intake_ctx, *, username: str = "flow-admin") -> str:
    """Create an admin through intake's identity use cases and log in as it; returns the bearer token."""
    from services.intake import identity

    identity.create_user(
        identity.UserCreate(username=username, display_name="王芳", role="admin", password=ADMIN_PASSWORD),
        ctx=intake_ctx,
        principal=None,
    )
    return login(intake_ctx, username)


def login(intake_ctx, username: str, password: str = ADMIN_PASSWORD) -> str:
    """A bearer token from intake's login use case."""
    from services.intake import identity
    from shared.auth import issuer_from_settings

    issuer = issuer_from_settings(intake_ctx.settings)
    return identity.login(
        identity.Login(username=username, password=password), ctx=intake_ctx, issuer=issuer
    ).access_token


def create_unit(
    client, *, routes: dict = EMBEDDED, name: str = "相山区信访局", email: str | None = None
) -> dict:
    """Register a unit with an invented liaison at example.org."""
    code = f"U{uuid.uuid4().hex[:8]}"
    response = client.post(
        f"{routes['intake']}/units",
        json={
            "code": code,
            "name": name,
            "level": "county",
            "liaison": {"name": "李明", "email": email or f"liaison-{code.lower()}@example.org"},
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def submit(
    client, unit_id: str, *, routes: dict = EMBEDDED, measure: str = "M1", title: str = "召开专题会议传达部署"
) -> dict:
    """Hand in a submission for a measure."""
    response = client.post(
        f"{routes['intake']}/submissions",
        json={
            "unit_id": unit_id,
            "measure_code": measure,
            "title": title,
            "description": "3月9日召开专题会议。",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def wait_evidence_ready(client, submission_id: str, *, routes: dict = EMBEDDED, timeout: float = 15) -> None:
    """Wait until evidence_storage has heard of the submission."""
    wait_until(
        lambda: client.get(f"{routes['evidence']}/submissions/{submission_id}/evidence").status_code == 200,
        timeout=timeout,
        what="evidence_storage to learn of the submission",
    )


def upload(
    client,
    submission_id: str,
    data: bytes,
    filename: str,
    *,
    routes: dict = EMBEDDED,
    content_type: str = "application/octet-stream",
):
    """Upload one file as a raw body."""
    return client.post(
        f"{routes['evidence']}/submissions/{submission_id}/evidence",
        params={"filename": filename},
        content=data,
        headers={"Content-Type": content_type},
    )


def wait_review_item(
    client, submission_id: str, *, routes: dict = EMBEDDED, evidence: int = 0, timeout: float = 15
) -> dict:
    """Wait until review's queue shows the submission with at least that many evidence files."""

    def ready():
        response = client.get(f"{routes['review']}/submissions/{submission_id}")
        return (
            response.json()
            if response.status_code == 200 and len(response.json()["evidence"]) >= evidence
            else None
        )

    return wait_until(ready, timeout=timeout, what="the review queue to show the submission")
