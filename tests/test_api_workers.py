"""API_WORKERS > 1: a distributed API serves from several uvicorn worker processes, each with its own context."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import psutil
import pytest

from bench.common import staff_credentials
from deploy.processes import cluster_env, free_port, terminate, wait_healthy


@pytest.mark.integration  # starts processes
def test_an_api_runs_with_two_worker_processes(tmp_path):
    port = free_port()
    env = cluster_env({**staff_credentials()[0], "DATA_DIR": str(tmp_path), "API_WORKERS": "2"})
    log = tmp_path / "intake-api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.intake", "api", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def alive() -> None:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]

        wait_healthy(
            f"http://127.0.0.1:{port}",
            deadline=time.monotonic() + 120,
            check_alive=alive,
            describe=lambda: log.read_text(errors="replace")[-3000:],
        )
        for _ in range(12):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        for _ in range(6):  # whichever worker answers the scrape, it counts every worker's requests
            assert _healthz_count(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text) >= 12
        workers = [
            child
            for child in psutil.Process(proc.pid).children(recursive=True)
            if "spawn_main" in " ".join(child.cmdline())
        ]
        assert len(workers) >= 2, [
            child.cmdline() for child in psutil.Process(proc.pid).children(recursive=True)
        ]
        assert "2 worker processes" in log.read_text(errors="replace")
    finally:
        terminate(proc)


def _healthz_count(exposition: str) -> float:
    """The sum of cep_http_requests_total over /healthz lines in a Prometheus text exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("cep_http_requests_total{") and 'route="/healthz"' in line
    )
