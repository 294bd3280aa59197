"""`python -m deploy.processes up`: eight processes on the local RabbitMQ and PostgreSQL, gone after Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from deploy.local_stack import READY_LINE
from deploy.processes import SERVICES
from tests.services import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def read_until_ready(proc: subprocess.Popen, lines: list[str], bound_s: float = 240) -> threading.Thread:
    """Collect stdout lines (on a thread, so the pipe never fills) until the ready line; fail if the process ends."""
    ready = threading.Event()

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if READY_LINE in line:
                ready.set()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    deadline = time.monotonic() + bound_s
    while not ready.wait(0.5):
        assert proc.poll() is None, "up exited early:\n" + "\n".join(lines)
        assert time.monotonic() < deadline, "up never said it was ready:\n" + "\n".join(lines)
    return thread


def test_up_starts_eight_processes_prints_where_they_listen_and_ctrl_c_stops_them_all(rabbitmq_url, tmp_path):
    import pika
    import psutil
    from sqlalchemy import create_engine, text

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy.processes",
            "up",
            "--postgres-url",
            POSTGRES_URL,
            "--rabbitmq-url",
            rabbitmq_url,
            "--data-dir",
            str(tmp_path / "local"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "up.err").open("wb"),
        text=True,
    )
    lines: list[str] = []
    try:
        pump = read_until_ready(proc, lines)
        output = "\n".join(lines)
        run = re.search(r"running \(run (local_[0-9a-f]+)\)", output).group(1)
        apis = dict(re.findall(r"^\s+(\w+)-api\s+(http://127\.0\.0\.1:\d+)\s", output, re.MULTILINE))
        assert sorted(apis) == sorted(SERVICES), output
        for service, url in apis.items():
            assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200, service
        workers = dict(
            re.findall(
                r"^\s+(\w+)-worker\s+pid \d+, health (http://127\.0\.0\.1:\d+)/livez", output, re.MULTILINE
            )
        )
        assert sorted(workers) == sorted(SERVICES), output
        for service, url in workers.items():
            assert httpx.get(f"{url}/livez", timeout=10).status_code == 200, (
                f"{service} worker's health server"
            )
        assert re.search(r"^\s+PostgreSQL .* database " + run, output, re.MULTILINE)
        assert re.search(r"^\s+S3 .*moto", output, re.MULTILINE) and re.search(
            r"^\s+SMTP .*local sink", output, re.MULTILINE
        )
        children = psutil.Process(proc.pid).children(recursive=True)
        commands = sorted(" ".join(child.cmdline()[1:4]) for child in children)
        assert commands == sorted(
            f"-m services.{s} {role}" for s in SERVICES for role in ("api", "worker")
        ), commands
        with create_engine(POSTGRES_URL).connect() as conn:
            assert conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": run}).first()

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, (tmp_path / "up.err").read_text(errors="replace")[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, (
            f"{child.cmdline()} outlived Ctrl-C"
        )
    with create_engine(POSTGRES_URL).connect() as conn:
        assert not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": run}).first()
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            connection.channel().queue_declare(f"{run}.notification", passive=True)
    finally:
        connection.close()
    pump.join(timeout=30)
    assert any(line.startswith("stopped (SIGINT)") and run in line for line in lines), lines[-3:]
