"""A RabbitMQ node of the fault suite's own, next to (never instead of) the shared one on 5672: its own name, ports,
data and log folders (owned by the `rabbitmq` user), so a test may stop and start it mid-flow."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from deploy.processes import free_port

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
HOME = "/var/lib/rabbitmq"  # the rabbitmq user's home: its Erlang cookie lets rabbitmqctl talk to the node


def available() -> str | None:
    """Why a dedicated node cannot be started here, or None when it can."""
    if not SERVER.exists() or not CTL.exists():
        return "rabbitmq-server is not installed"
    if os.geteuid() != 0:
        return "starting a dedicated RabbitMQ node needs root (to run it as the rabbitmq user)"
    try:
        import pwd

        pwd.getpwnam("rabbitmq")
    except KeyError:
        return "there is no rabbitmq user"
    return None


class RabbitNode:
    """One dedicated node: `start()` (about 12 s), `stop()` (rabbitmqctl stop), `remove()` deletes its folder."""

    def __init__(self) -> None:
        self.name = f"cepfault{uuid.uuid4().hex[:8]}@localhost"
        self.port, self.dist_port = free_port(), free_port()
        self.base = Path(tempfile.mkdtemp(prefix="cep-fault-rabbit-", dir="/tmp"))
        (self.base / "mnesia").mkdir()
        (self.base / "log").mkdir()
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n", encoding="utf-8"
        )
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        for path in self.base.rglob("*"):
            shutil.chown(path, "rabbitmq", "rabbitmq")
        os.chmod(self.base, 0o755)
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The AMQP URL of this node."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": HOME,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
        }

    def start(self, timeout: float = 90.0) -> None:
        """Start the node and wait until it accepts AMQP connections."""
        out = (self.base / "server.out").open("ab")
        self._process = subprocess.Popen(
            ["runuser", "-u", "rabbitmq", "--", str(SERVER)],
            env=self._env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(self.base),
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {self.name} exited: {self.log_tail()}")
            if self.accepts():
                return
            time.sleep(0.5)
        raise RuntimeError(f"RabbitMQ node {self.name} did not start within {timeout}s: {self.log_tail()}")

    def accepts(self) -> bool:
        """Whether the AMQP port takes connections and the broker answers (a whole handshake)."""
        import pika

        try:
            params = pika.URLParameters(self.url)
            params.connection_attempts, params.socket_timeout = 1, 2
            pika.BlockingConnection(params).close()
            return True
        except Exception:
            return False

    def stop(self) -> None:
        """Stop the node gracefully (its durable queues and persistent messages survive)."""
        subprocess.run(
            ["runuser", "-u", "rabbitmq", "--", str(CTL), "-n", self.name, "stop"],
            env=self._env(),
            capture_output=True,
            timeout=120,
            check=False,
            cwd=str(self.base),
        )
        if self._process is not None:
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, 9)
                self._process.wait(timeout=10)
            self._process = None

    def remove(self) -> None:
        """Stop the node if running and delete its folder."""
        if self._process is not None and self._process.poll() is None:
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the node's console output."""
        path = self.base / "server.out"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""
