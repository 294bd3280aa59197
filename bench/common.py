"""Helpers shared by the benchmark scripts: tables, percentiles, one service process, RSS sampling."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploy.processes import terminate, wait_healthy

MIB = 1024 * 1024


def run_cli(main: Callable[[], int]) -> int:
    """Run a script's main; SIGTERM acts like Ctrl-C, and either ends with exit code 130 after cleaning up."""

    def _raise(*_):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, _raise)
    try:
        return main()
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the processes, queues, database and files this run started were removed",
            file=sys.stderr,
        )
        return 130


def staff_credentials(ttl_s: int = 6 * 3600) -> tuple[dict[str, str], dict[str, str]]:
    """A fresh Ed25519 key pair for the services' environment, and headers with an admin token signed by it.

    The token is minted here, as intake's login would mint it, so the benchmarks need no user accounts.
    """
    from shared.auth import ADMIN, generate_key_pair, issuer_from_settings
    from shared.settings import Settings

    private_key, public_key = generate_key_pair()
    issuer = issuer_from_settings(Settings(auth_private_key=private_key, auth_public_key=public_key))
    token = issuer.issue(subject="bench-admin", name="王芳", role=ADMIN, ttl_s=ttl_s)
    env = {"AUTH_PRIVATE_KEY": private_key, "AUTH_PUBLIC_KEY": public_key}
    return env, {"Authorization": f"Bearer {token}", "X-Actor": "bench"}


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows under headers as an aligned plain-text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    right = [bool(rows) and all(_numeric(row[i]) for row in cells[1:]) for i in range(len(headers))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    print(f"\n{title}")
    print(line)
    for n, row in enumerate(cells):
        print(
            "| "
            + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True))
            + " |"
        )
        if n == 0:
            print(line)
    print(line, flush=True)


def _numeric(cell: str) -> bool:
    """Whether a cell reads as a number (right-aligned)."""
    try:
        float(cell.replace(",", ""))
    except ValueError:
        return cell == "-"
    return True


def percentile(values: Sequence[float], pct: float) -> float:
    """The pct-th percentile of values (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class ServiceProcess:
    """One service role (`python -m services.<name> <role>`) as a child process with its log in a file."""

    service: str
    role: str
    env: Mapping[str, str]
    log_path: Path
    port: int | None = None
    proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        """Start the process; for the api role, wait until /healthz answers 200."""
        args = [sys.executable, "-m", f"services.{self.service}", self.role]
        if self.port is not None:
            args += ["--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                args, env=dict(self.env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if self.role == "api":
            self._wait_healthy(timeout)
        return self

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://127.0.0.1:{self.port}"

    def _wait_healthy(self, timeout: float) -> None:
        def check_alive() -> None:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.service} {self.role} exited with {self.proc.returncode}:\n{self.log()[-3000:]}"
                )

        wait_healthy(
            self.url,
            deadline=time.monotonic() + timeout,
            check_alive=check_alive,
            interval=0.1,
            describe=lambda: f"{self.service} API not healthy in time:\n{self.log()[-3000:]}",
        )

    def log(self) -> str:
        """What the process has printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the process group after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        terminate(self.proc)


@dataclass
class RssSampler:
    """Samples one process's resident set size every interval seconds on a background thread."""

    pid: int
    interval: float = 0.05
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        import psutil

        process = psutil.Process(self.pid)
        self.samples.append(process.memory_info().rss)

        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.samples.append(process.memory_info().rss)
                except psutil.Error:
                    return

        self._thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def peak(self) -> int:
        """Largest RSS seen."""
        return max(self.samples)

    @property
    def median(self) -> int:
        """Median RSS seen."""
        return int(percentile(self.samples, 50))


class CpuMeter:
    """CPU seconds used by named processes and by local servers (all processes with a given executable name, e.g.
    PostgreSQL's backends), and how busy the whole machine was, between start() and stop()."""

    def __init__(self, processes: Mapping[str, int], servers: Mapping[str, str] | None = None) -> None:
        self._pids = dict(processes)
        self._servers = dict(servers or {})  # label -> executable name
        self.used: dict[str, float] = {}
        self.machine_busy = 0.0  # fraction of all cores
        self.machine_seconds = 0.0  # CPU seconds used by everything on the machine

    @staticmethod
    def _times(pid: int) -> float | None:
        import psutil

        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return None
        return times.user + times.system + times.children_user + times.children_system

    def start(self) -> CpuMeter:
        """Take the first snapshot."""
        import psutil

        self._before = {name: self._times(pid) for name, pid in self._pids.items()}
        self._server_before = {label: self._by_name(exe) for label, exe in self._servers.items()}
        self._machine = psutil.cpu_times()
        return self

    def _by_name(self, executable: str) -> dict[int, float]:
        import psutil

        found = {}
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] == executable and (seconds := self._times(proc.pid)) is not None:
                found[proc.pid] = seconds
        return found

    def stop(self) -> None:
        """Take the second snapshot and keep the differences."""
        import psutil

        for name, pid in self._pids.items():
            after, before = self._times(pid), self._before.get(name)
            if after is not None and before is not None:
                self.used[name] = after - before
        for label, executable in self._servers.items():
            before = self._server_before[label]
            # a process born during the run counts whole; one that ended during it is missed
            self.used[label] = sum(
                seconds - before.get(pid, 0.0) for pid, seconds in self._by_name(executable).items()
            )
        now = psutil.cpu_times()
        total = sum(now) - sum(self._machine)
        idle = (now.idle + getattr(now, "iowait", 0.0)) - (
            self._machine.idle + getattr(self._machine, "iowait", 0.0)
        )
        self.machine_busy = 1 - idle / total if total > 0 else 0.0
        self.machine_seconds = total - idle


def idle_rss(pid: int, seconds: float = 1.0) -> int:
    """The median RSS of an idle process over a short window."""
    with RssSampler(pid) as sampler:
        time.sleep(seconds)
    return sampler.median
