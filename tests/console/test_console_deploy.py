"""The console's deployment, without a browser: its compose service and gateway route, the embedded mount,
and `python -m services.console` serving the pages under its ROOT_PATH."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from deploy.processes import cluster_env, free_port, terminate, wait_healthy
from services.console.app import CSP, PREFIX, create_app
from services.console.pages import PAGES
from tests.test_deploy_files import (
    COMPOSE_FILE,
    NGINX_CONF,
    api_port,
    depends_on,
    environment,
    location,
    only,
    parse_nginx,
    proxy_target,
    service_command,
    upstream_path,
)


@pytest.fixture(scope="module")
def services() -> dict:
    """docker-compose.yml's services."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]


@pytest.fixture(scope="module")
def server() -> list:
    """The gateway's server block."""
    http = only(parse_nginx(NGINX_CONF.read_text(encoding="utf-8")), "http")[2]
    return only(http, "server")[2]


def console_service(services) -> tuple[str, dict, list[str]]:
    """(name, spec, extra args) of the one compose service running the console."""
    found = [(name, spec, service_command(spec)) for name, spec in services.items()]
    consoles = [
        (name, spec, parsed[2]) for name, spec, parsed in found if parsed and parsed[:2] == ("console", "api")
    ]
    assert len(consoles) == 1, "docker-compose.yml needs exactly one `python -m services.console api` service"
    return consoles[0]


def test_compose_runs_one_console_behind_the_gateway(services):
    name, spec, extra = console_service(services)
    port = api_port(extra)
    assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
    assert environment(spec)["ROOT_PATH"] == PREFIX and environment(spec)["HOST"] == "0.0.0.0"
    assert not spec.get("ports"), "the console is reached through the gateway"
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(spec["healthcheck"]["test"])
    assert name in depends_on(services["gateway"])


def test_gateway_routes_console_and_sends_visitors_there(services, server):
    name, _spec, extra = console_service(services)
    loc = location(server, f"{PREFIX}/")
    assert proxy_target(loc) == (name, api_port(extra))
    assert upstream_path(loc, PREFIX, f"{PREFIX}/queue") == "/queue"
    assert upstream_path(loc, PREFIX, f"{PREFIX}/") == "/"
    assert only(location(server, "/", "="), "return")[1] == ["307", f"{PREFIX}/"]
    assert "/intake/docs" in only(location(server, "/platform", "="), "return")[1][1]


def test_every_page_renders_with_its_roles_and_a_strict_policy():
    client = TestClient(create_app(), root_path=PREFIX)
    for page in PAGES:
        path = page.path.replace("{unit_id}", "u-1").replace("{submission_id}", "s-1")
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CSP and "script-src 'self'" in CSP
        assert (
            f'data-page="{page.name}"' in response.text
            and f'data-roles="{" ".join(page.roles)}"' in response.text
        )
        assert f'src="{PREFIX}/static/console.js?v=' in response.text
        assert "<script>" not in response.text  # no inline scripts: the policy would block them
    hostile = client.get('/units/"><img src=x onerror=alert(1)>')
    assert "<img src=x" not in hostile.text and 'data-param-unit-id="&#34;&gt;&lt;img src=x' in hostile.text
    script = TestClient(create_app()).get("/static/console.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")


def test_embedded_root_leads_to_the_console_and_keeps_the_docs_links(tmp_path):
    from deploy.embedded import build_platform
    from shared.settings import Settings

    platform = build_platform(Settings(data_dir=tmp_path))
    with TestClient(platform.app) as client:
        home = client.get("/", follow_redirects=False)
        assert home.status_code == 307 and home.headers["location"] == f"{PREFIX}/"
        assert 'data-page="home"' in client.get("/").text
        links = client.get("/platform").text
        assert all(
            f'href="{prefix}/docs"' in links
            for prefix in ("/intake", "/evidence", "/review", "/notification")
        )
        assert client.get(f"{PREFIX}/login").status_code == 200


def test_python_m_services_console_serves_under_root_path(tmp_path):
    port = free_port()
    env = cluster_env({"PORT": str(port), "ROOT_PATH": PREFIX, "DATA_DIR": str(tmp_path)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.console"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode(errors="replace"))

        wait_healthy(
            f"http://127.0.0.1:{port}",
            deadline=time.monotonic() + 30,
            check_alive=alive,
            describe=lambda: "the console did not answer /healthz",
        )
        page = httpx.get(f"http://127.0.0.1:{port}/queue")
        assert page.status_code == 200 and f'href="{PREFIX}/dashboard"' in page.text
        assert (
            httpx.get(f"http://127.0.0.1:{port}/static/pages/queue.js").status_code == 200
        )  # as the gateway forwards it
    finally:
        terminate(proc)
