"""Structured logs and metrics on the embedded platform: one request id finds a submission's path through all
four services; no token, password or query string reaches a log line; /metrics shows what happened."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi.testclient import TestClient

from deploy.embedded import build_platform
from shared.logs import configure_logging, scrub
from shared.settings import Settings
from tests.flows.steps import ADMIN_PASSWORD, admin_token, create_unit, submit, wait_review_item
from tests.helpers import wait_until


@pytest.fixture
def captured():
    """Every log line of the test as JSON, in a buffer; the previous logging set-up is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging(service="platform", role="embedded", fmt="json", level="INFO", stream=buffer)
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def platform(tmp_path):
    """An embedded platform with an admin session."""
    # receipts on: notification consumes submission.submitted too, so a submission reaches all four services
    built = build_platform(
        Settings(
            data_dir=tmp_path,
            bus_retry_delays_ms=(50, 100),
            outbox_poll_s=0.1,
            notify_submission_receipts=True,
        )
    )
    with TestClient(built.app) as client:
        client.headers["Authorization"] = f"Bearer {admin_token(built.contexts['intake'])}"
        built.client = client
        yield built


def lines(buffer: io.StringIO) -> list[dict]:
    """The captured log lines, each parsed (every one must be a JSON object)."""
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_one_request_id_finds_the_submission_in_every_service(platform, captured):
    client = platform.client
    unit = create_unit(client)
    response = client.post(
        "/intake/submissions",
        headers={"X-Request-ID": "sub-7f3a9c"},
        json={
            "unit_id": unit["id"],
            "measure_code": "M1",
            "title": "召开专题会议传达部署",
            "description": "3月9日召开专题会议。",
        },
    )
    assert response.status_code == 201 and response.headers["x-request-id"] == "sub-7f3a9c"
    wait_review_item(client, response.json()["id"])

    def path() -> set[str]:
        found = [
            line
            for line in lines(captured)
            if "sub-7f3a9c" in (line.get("request_id"), line.get("correlation_id"))
        ]
        return {line["service"] for line in found} >= {
            "intake",
            "evidence_storage",
            "review",
            "notification",
        } and found

    found = wait_until(path, what="log lines of all four services with the request id")
    handled = [line for line in found if line.get("event_type") == "submission.submitted"]
    assert {line["consumer"] for line in handled} >= {"evidence_storage", "review", "notification"}
    assert all(
        line.get("causation_id") is None and line["event_id"] for line in handled
    )  # caused by the request itself
    access = next(line for line in found if line["logger"] == "http.access")
    assert (access["service"], access["route"], access["status"], access["role"]) == (
        "intake",
        "/submissions",
        201,
        "embedded",
    )
    assert all({"time", "level", "message", "service", "role"} <= set(line) for line in lines(captured))


def test_caused_events_carry_the_correlation_on(platform, captured):
    client = platform.client
    unit = create_unit(client)
    submission = submit(client, unit["id"])
    wait_review_item(client, submission["id"])
    decided = client.post(
        f"/review/submissions/{submission['id']}/approve",
        headers={"X-Request-ID": "ok-42"},
        json={"reviewer": "王芳", "score": 95, "version": 1},
    )
    assert decided.status_code == 200, decided.text
    wait_until(platform.contexts["notification"].mailer.messages, what="the approval e-mail")

    def mailed() -> list[dict]:
        return [
            line
            for line in lines(captured)
            if line.get("correlation_id") == "ok-42" and line.get("consumer") == "notification"
        ]

    handled = wait_until(mailed, what="notification handling the decision under the request's id")
    assert handled[0]["event_type"].startswith("submission.")


def test_no_token_password_or_query_string_in_any_line(platform, captured):
    client = platform.client
    token = client.headers["Authorization"].removeprefix("Bearer ")
    client.post("/intake/auth/login", json={"username": "flow-admin", "password": ADMIN_PASSWORD})
    client.post("/intake/auth/login", json={"username": "flow-admin", "password": "wrong-Secret-99"})
    client.get("/intake/units", params={"access_token": "leaky-query-token", "q": "相山"})
    logging.getLogger("test").warning(
        "calling with Authorization: Bearer %s and password=%s", token, ADMIN_PASSWORD
    )
    text = captured.getvalue()
    assert "/intake/units" in text
    for secret in (token, ADMIN_PASSWORD, "wrong-Secret-99", "leaky-query-token", "access_token"):
        assert secret not in text


def test_scrub_cuts_credentials_from_urls_and_fields():
    assert scrub("amqp://guest:s3cret@rabbit:5672/%2F") == "amqp://guest:[redacted]@rabbit:5672/%2F"
    assert scrub('{"password": "hunter2"}') == '{"password": "[redacted]"}'
    assert scrub("GET /evidence/x/content?X-Amz-Signature=abc HTTP/1.1") == "GET /evidence/x/content HTTP/1.1"


def test_metrics_show_requests_events_and_backlogs(platform):
    client = platform.client
    unit = create_unit(client)
    submission = submit(client, unit["id"])
    wait_review_item(client, submission["id"])
    text = client.get("/intake/metrics").text
    assert 'cep_http_requests_total{method="POST",route="/submissions",service="intake",status="201"}' in text
    assert 'cep_events_consumed_total{consumer="review",type="submission.submitted"}' in text
    assert 'cep_event_handler_duration_seconds_bucket{consumer="review"' in text
    assert 'cep_outbox_backlog{service="intake"}' in text
    assert 'cep_outbox_oldest_unpublished_age_seconds{service="review"}' in text
    assert 'cep_parked_messages{queue="review"} 0.0' in text
    assert client.get("/metrics").status_code == 200
