"""API_WORKERS > 1: a distributed API serves from several uvicorn worker processes, each with its own context."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from bench.common import staff_credentials
from deploy.processes import cluster_env, free_port, terminate, wait_healthy
from shared.http_workers import WorkersConfig


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


def test_connections_to_the_workers_listening_socket_have_nagle_off():
    """asyncio turns Nagle's algorithm off only on connections accepted from a socket that says it is TCP. uvicorn's
    own listening socket for several workers said protocol 0, and every keep-alive response of such an API waited
    about 40 ms for the client's delayed ACK (bench.submit --workers 2: p50 48.7 ms at 100 requests a second)."""
    config = WorkersConfig(
        "shared.launcher:worker_app",
        factory=True,
        workers=2,
        host="127.0.0.1",
        port=free_port(),
        log_config=None,
    )
    listener = config.bind_socket()

    async def nagle_off_on_an_accepted_connection() -> bool:
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[int] = loop.create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await loop.create_server(Probe, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            try:
                return await asyncio.wait_for(accepted, 10) != 0
            finally:
                writer.close()

    try:
        assert listener.proto == socket.IPPROTO_TCP and listener.get_inheritable()
        assert asyncio.run(nagle_off_on_an_accepted_connection())
    finally:
        listener.close()
