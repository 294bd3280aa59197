"""Schemathesis over every service's OpenAPI, as an admin and as a unit user: no 5xx, responses as declared.

Each operation gets a bounded number of generated requests (FUZZ_EXAMPLES, default 8; half of them
negative, i.e. deliberately invalid input) from a fixed seed, so a run is repeatable and stays within a
few minutes on a small CI machine. Totals are printed at the end (`pytest -s -m fuzz tests/hostile`).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from starlette.routing import Mount

from tests.auth.support import bearer
from tests.flows.steps import admin_token

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
SEED = 20200301
SERVICES = {
    "intake": "/intake",
    "evidence_storage": "/evidence",
    "review": "/review",
    "notification": "/notification",
}
CAMPAIGN_FILE = Path(__file__).resolve().parents[2] / "deploy" / "campaigns" / "huaibei-2020.yaml"
TOTALS: Counter = Counter()


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory):
    """One embedded platform for the whole module, the Huaibei campaign loaded, an admin and a unit token."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from deploy.embedded import build_platform
    from services.intake import identity
    from services.intake.models import Unit
    from shared.auth import UNIT, issuer_from_settings
    from shared.settings import Settings

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("fuzz"),
        bus_retry_delays_ms=(50, 100),
        outbox_poll_s=0.2,
        auth_ip_free_failures=10_000,
        auth_max_concurrent_hashes=2,
    )
    platform = build_platform(settings)
    with TestClient(platform.app) as client:
        intake = platform.contexts["intake"]
        admin = bearer(admin_token(intake))
        loaded = client.post(
            "/intake/campaigns",
            content=CAMPAIGN_FILE.read_bytes(),
            headers={**admin, "Content-Type": "application/yaml"},
        )
        assert loaded.status_code == 201, loaded.text
        with intake.db.session() as uow:
            unit = uow.scalar(select(Unit).where(Unit.code == "XSQ"))
            path = identity.unit_path_of(uow, unit.id)
        liaison = bearer(
            issuer_from_settings(intake.settings).issue(
                subject="fuzz-liaison", name="李明", role=UNIT, ttl_s=3600, unit_id=unit.id, unit_path=path
            )
        )
        yield platform, {"admin": admin, "unit": liaison}
    print_totals()


def service_app(platform, service: str):
    """The service's own FastAPI app as mounted in the embedded platform."""
    return next(
        route.app
        for route in platform.app.routes
        if isinstance(route, Mount) and route.path == SERVICES[service]
    )


@pytest.mark.parametrize("role", ["admin", "unit"])
@pytest.mark.parametrize("service", list(SERVICES))
def test_no_server_error_and_responses_as_declared(fuzz_world, service, role):
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation.modes import GenerationMode
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

    platform, tokens = fuzz_world
    schema = schemathesis.openapi.from_asgi("/openapi.json", service_app(platform, service))
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run(
                    operation, mode, tokens[role], checks, failures, f"{role} {mode.value} {operation.label}"
                )
            except Unsatisfiable:
                TOTALS["unsatisfiable"] += 1
        TOTALS["operations"] += 1
    assert failures == [], "\n\n".join(failures[:10])


def _run(operation, mode, headers, checks, failures, label) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @seed(SEED)
    @settings(
        max_examples=max(1, EXAMPLES // 2),
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case) -> None:
        TOTALS["requests"] += 1
        try:
            response = case.call_and_validate(headers=headers, checks=checks)
        except Exception as exc:  # one operation's failure must not hide the others'
            TOTALS["failures"] += 1
            if len(failures) < 50:
                failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:1500]}")
            return
        TOTALS[f"status {response.status_code // 100}xx"] += 1

    run()


def print_totals() -> None:
    """Say what the run covered."""
    summary = ", ".join(f"{key}={value}" for key, value in sorted(TOTALS.items()))
    print(f"\nschemathesis totals: {summary}")
