"""Optional tracing: with an exporter configured, one submission's HTTP request and the events it causes in the
other services form one trace (the context travels in the envelope); without it nothing is traced."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from deploy.embedded import build_platform
from shared import tracing
from shared.settings import Settings
from tests.flows.steps import admin_token, create_unit, submit, wait_review_item
from tests.helpers import wait_until

pytest.importorskip("opentelemetry.sdk", reason="the otel extra (opentelemetry-sdk) is not installed")


@pytest.fixture
def spans():
    """Finished spans, collected in memory while the test runs with tracing on."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    assert tracing.setup_tracing("platform", endpoint=None, exporter=exporter)
    yield exporter
    tracing.stop_tracing()


def test_a_submission_is_one_trace_across_the_services(tmp_path, spans):
    platform = build_platform(
        Settings(
            data_dir=tmp_path,
            bus_retry_delays_ms=(50, 100),
            outbox_poll_s=0.1,
            notify_submission_receipts=True,
        )
    )  # notification consumes submissions too
    with TestClient(platform.app) as client:
        client.headers["Authorization"] = f"Bearer {admin_token(platform.contexts['intake'])}"
        unit = create_unit(client)
        spans.clear()
        submission = submit(client, unit["id"])
        wait_review_item(client, submission["id"])

        def consumed() -> list:
            found = [s for s in spans.get_finished_spans() if s.name == "consume submission.submitted"]
            return found if len(found) >= 3 else []

        consumers = wait_until(consumed, what="three services to consume the submission")
    request = next(
        s
        for s in spans.get_finished_spans()
        if s.name == "POST intake" and s.attributes.get("path") == "/intake/submissions"
    )
    assert {s.attributes["consumer"] for s in consumers} == {"evidence_storage", "review", "notification"}
    assert {s.context.trace_id for s in consumers} == {request.context.trace_id}


def test_without_an_endpoint_tracing_stays_off():
    assert tracing.setup_tracing("platform", endpoint=None) is False
    assert tracing.current_trace() is None
