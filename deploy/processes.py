"""Run the distributed platform as separate OS processes without Docker (tests, benchmarks, debugging).

python -m deploy.processes up --help      (or `make up-local`): everything on this machine, Ctrl-C stops it
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES = ("intake", "evidence_storage", "review", "notification")
ROUTE_NAMES = {
    "intake": "intake",
    "evidence_storage": "evidence",
    "review": "review",
    "notification": "notification",
}


def free_port() -> int:
    """A TCP port nobody listens on right now, below the kernel's ephemeral range, and not handed out lately.

    A port from that range (what binding port 0 gives) can meanwhile become the local end of some outgoing
    connection (to RabbitMQ, PostgreSQL, S3) before the process it is meant for binds it, seconds later: CI met
    a worker whose health server then failed with "address already in use". A port also stays free for the
    second or two its process takes to start, in which another process (a parallel test worker) could pick it
    too: CI met that as well, so a port given out is reserved for PORT_RESERVATION_S across processes."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # someone listens there (or it lingers): try another
                continue
        if _reserve(port):
            return port
    with socket.socket() as sock:  # a crowded range: take what the kernel gives
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT_RESERVATION_S = 120.0


def _reserve(port: int) -> bool:
    """Claim the port for this caller for PORT_RESERVATION_S; False while another claim is that recent."""
    folder = Path(tempfile.gettempdir()) / f"cep-ports-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    marker = folder / str(port)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return True
    except FileExistsError:
        try:
            if time.time() - marker.stat().st_mtime < PORT_RESERVATION_S:
                return False
            os.utime(marker)  # an old claim: its process has long bound the port or given it up
        except FileNotFoundError:
            pass
        return True


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # not Linux: the IANA range starts here
        return 49152


@dataclass
class Cluster:
    """Each service's API(s) and worker(s) as child processes, with their logs in a folder.

    api_replicas / worker_replicas run that many copies of each service's API and worker (scale-out on one
    machine); the first copy keeps the plain name (intake-api), later ones are numbered (intake-api-2).
    Each worker gets its own HEALTH_PORT.
    """

    env: dict[str, str]
    log_dir: Path
    api_replicas: int = 1
    worker_replicas: int = 1
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    api_ports: dict[str, list[int]] = field(default_factory=dict)
    health_ports: dict[str, int] = field(default_factory=dict)
    _env_of: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def routes(self) -> dict[str, str]:
        """Base URL of each service's (first) API, keyed like the gateway prefixes."""
        return {ROUTE_NAMES[name]: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}

    @property
    def replica_routes(self) -> dict[str, list[str]]:
        """Base URLs of every API replica of each service, keyed like the gateway prefixes."""
        return {
            ROUTE_NAMES[name]: [f"http://127.0.0.1:{port}" for port in ports]
            for name, ports in self.api_ports.items()
        }

    def start(self, timeout: float = 60.0) -> Cluster:
        """Start every API and worker; wait until each API's /healthz and each worker's /livez answers 200."""
        for service in SERVICES:
            self.api_ports[service] = [free_port() for _ in range(self.api_replicas)]
            self.ports[service] = self.api_ports[service][0]
            for n, port in enumerate(self.api_ports[service], start=1):
                self._spawn(replica_name(service, "api", n), [service, "api", "--port", str(port)])
            for n in range(1, self.worker_replicas + 1):
                name = replica_name(service, "worker", n)
                self.health_ports[name] = free_port()
                self._spawn(name, [service, "worker"], {"HEALTH_PORT": str(self.health_ports[name])})
        deadline = time.monotonic() + timeout
        for service, ports in self.api_ports.items():
            for n, port in enumerate(ports, start=1):
                self._wait_healthy(replica_name(service, "api", n), port, deadline, "/healthz")
        for name, port in self.health_ports.items():
            self._wait_healthy(name, port, deadline, "/livez")
        return self

    def _spawn(self, name: str, args: list[str], extra_env: Mapping[str, str] | None = None) -> None:
        env = self._env_of.setdefault(name, {**self.env, **(extra_env or {})})
        log = (self.log_dir / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{args[0]}", *args[1:]],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_healthy(self, name: str, port: int, deadline: float, path: str) -> None:
        def check_alive() -> None:
            for other, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{other} exited with {proc.returncode}:\n{self.log(other)[-3000:]}")

        wait_healthy(
            f"http://127.0.0.1:{port}",
            deadline=deadline,
            check_alive=check_alive,
            describe=lambda: f"{name} not healthy in time ({path}):\n{self.log(name)[-3000:]}",
            path=path,
        )

    def log(self, name: str) -> str:
        """What one process has printed so far."""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str | None = None) -> None:
        """Terminate one process (or all), gracefully first."""
        names = [name] if name else list(self.processes)
        for key in names:
            proc = self.processes[key]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for key in names:
            terminate(self.processes[key])

    def restart(self, name: str) -> None:
        """Stop and start one process again with the same arguments and environment."""
        proc = self.processes[name]
        self.stop(name)
        args = proc.args[2:]
        self._spawn(name, [args[0].removeprefix("services."), *args[1:]])


def replica_name(service: str, role: str, n: int) -> str:
    """Process name of the n-th (1-based) replica: intake-api, intake-api-2, ..."""
    return f"{service}-{role}" if n == 1 else f"{service}-{role}-{n}"


def wait_healthy(
    url: str,
    *,
    deadline: float,
    check_alive: Callable[[], None],
    describe: Callable[[], str],
    interval: float = 0.2,
    path: str = "/healthz",
) -> None:
    """Poll <url><path> until it answers 200; check_alive raises if a process died; RuntimeError at the deadline."""
    while True:
        check_alive()
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(describe())
        time.sleep(interval)


def terminate(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM a started process (if still running) and wait; SIGKILL its process group after the grace period."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def cluster_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The current environment plus the platform's settings, with the repo on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    env.update(overrides)
    return env


def main(argv: list[str] | None = None) -> int:
    """`python -m deploy.processes up ...`: the distributed platform on this machine without Docker."""
    from deploy.local_stack import main as local_main

    return local_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
