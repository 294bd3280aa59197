"""shared/health.py: probes run within their budget on threads of their own, one run of each at a time; anonymous
callers see up or down only."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.auth import ADMIN, REVIEWER, TokenIssuer, TokenVerifier
from shared.health import HealthMonitor, health_routes


def _keys() -> tuple[TokenIssuer, TokenVerifier]:
    private = Ed25519PrivateKey.generate()
    return TokenIssuer(private, issuer="test"), TokenVerifier(private.public_key(), issuer="test")


def _app(monitor: HealthMonitor, alive=None) -> tuple[TestClient, TokenIssuer]:
    issuer, verifier = _keys()
    app = FastAPI()
    app.state.token_verifier = verifier
    app.include_router(health_routes(monitor, alive=alive))
    return TestClient(app), issuer


def _worker_app(tmp_path) -> FastAPI:
    """A worker's health app whose probes all answer up."""
    from shared.health import worker_health_app
    from shared.settings import Settings

    return worker_health_app(
        HealthMonitor({"database": lambda: {"ok": True}}),
        alive=lambda: {"ok": True},
        settings=Settings(data_dir=tmp_path),
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something already listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def _bearer(issuer: TokenIssuer, role: str) -> dict:
    return {"Authorization": f"Bearer {issuer.issue(subject='x', name='王芳', role=role, ttl_s=600)}"}


def test_a_hanging_probe_counts_as_down_and_is_not_started_twice():
    release, calls = threading.Event(), []

    def hanging() -> dict:
        calls.append(1)
        release.wait(30)
        return {"ok": True}

    monitor = HealthMonitor(
        {"database": lambda: {"ok": True, "backend": "sqlite"}, "blob_store": hanging}, budget_s=0.2
    )
    try:
        first, second = monitor.report_sync(), monitor.report_sync()
        assert first["database"]["ok"] and not first["blob_store"]["ok"]
        assert "no answer within 0.2s" in first["blob_store"]["error"]
        assert (
            second["blob_store"]["ok"] is False and len(calls) == 1
        )  # the hung run is waited for, not repeated
    finally:
        release.set()


def test_a_raising_probe_reports_down_instead_of_failing():
    def broken() -> dict:
        raise ConnectionRefusedError("refused")

    report = HealthMonitor({"broker": broken}).report_sync()
    assert report["broker"] == {"ok": False, "error": "ConnectionRefusedError: refused"}


def test_anonymous_callers_see_up_or_down_and_only_an_admin_sees_details():
    client, issuer = _app(
        HealthMonitor({"database": lambda: {"ok": True, "url": "postgresql://secret-host"}})
    )
    assert client.get("/readyz").json() == {"status": "up"}
    assert client.get("/readyz", headers=_bearer(issuer, REVIEWER)).json() == {"status": "up"}
    assert client.get("/readyz", headers={"Authorization": "Bearer forged"}).json() == {"status": "up"}
    detailed = client.get("/readyz", headers=_bearer(issuer, ADMIN)).json()
    assert detailed["checks"]["database"]["url"] == "postgresql://secret-host"
    assert client.get("/healthz").json() == {"ok": True, "adapters": {"database": {"ok": True}}}


def test_readyz_and_livez_answer_503_when_down():
    client, issuer = _app(
        HealthMonitor({"mailer": lambda: {"ok": False, "error": "refused"}}),
        alive=lambda: {"ok": False, "loops": {"outbox-relay": {"ok": False}}},
    )
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json() == {"status": "down"}
    live = client.get("/livez", headers=_bearer(issuer, ADMIN))
    assert live.status_code == 503 and live.json()["details"]["loops"]["outbox-relay"] == {"ok": False}


def test_the_worker_health_server_answers_on_its_port(tmp_path):
    import httpx

    from shared.health import HealthServer
    from tests.helpers import wait_until
    from tests.servers import free_port

    server = HealthServer(_worker_app(tmp_path), host="127.0.0.1", port=free_port())
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/livez", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, what="the health server to answer")
        assert httpx.get(f"{url}/readyz", timeout=5).json() == {"status": "up"}
    finally:
        server.stop()


def test_a_health_server_whose_port_is_taken_says_so_instead_of_running_without_probes(tmp_path, taken_port):
    from shared.health import HealthServer, HealthServerFailed

    server = HealthServer(_worker_app(tmp_path), host="127.0.0.1", port=taken_port)
    with pytest.raises(HealthServerFailed, match=str(taken_port)):
        server.start()


def test_a_worker_whose_health_port_is_taken_exits_before_it_consumes(tmp_path, taken_port):
    import os
    import subprocess
    import sys

    # Only what the test means: embedded defaults (SQLite, in-process bus) in its own folder, never the databases
    # or brokers another variable in this environment might name.
    kept = {name: os.environ[name] for name in ("PATH", "HOME", "PYTHONPATH") if name in os.environ}
    done = subprocess.run(
        [sys.executable, "-m", "services.intake", "worker"],
        env={**kept, "DATA_DIR": str(tmp_path), "HEALTH_PORT": str(taken_port)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "address already in use" in done.stderr
    assert "is HEALTH_PORT taken?" in done.stderr and "exiting for the supervisor to restart" in done.stderr
    assert "worker started" not in done.stderr
