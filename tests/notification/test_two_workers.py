"""The same event delivered three times to two notification worker processes (RabbitMQ, PostgreSQL,
a real SMTP server): exactly one e-mail."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import pika
import pytest
from sqlalchemy import select

from deploy.processes import cluster_env
from services.notification.models import Delivery, Liaison
from shared.bus.rabbitmq import RabbitMQBus, queue_names
from shared.contracts import make_event
from shared.contracts.intake import LiaisonDesignated
from shared.contracts.review import SubmissionApproved
from shared.db import Database
from tests.helpers import wait_until
from tests.services import delete_rabbitmq_objects

RETRY_DELAYS = (200, 500)
POLL_S = 0.2


@contextmanager
def notification_workers(tmp_path, rabbitmq_url, postgres_url, smtp, run_name, **extra_env: str):
    """Two `python -m services.notification worker` processes on one queue and one database: (processes, logs);
    stopped, and their queues and exchange deleted, afterwards."""
    env = cluster_env(
        {
            "BUS_BACKEND": "rabbitmq",
            "RABBITMQ_URL": rabbitmq_url,
            "BUS_EXCHANGE": f"{run_name}.events",
            "BUS_QUEUE_PREFIX": f"{run_name}.",
            "BUS_RETRY_DELAYS_MS": ",".join(map(str, RETRY_DELAYS)),
            "BUS_PREFETCH": "1",  # one message in flight per worker, so the copies spread over both
            "DATABASE_URL": postgres_url,
            "MAIL_BACKEND": "smtp",
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "OUTBOX_POLL_S": str(POLL_S),
            "NOTIFY_POLL_S": str(POLL_S),
            "DATA_DIR": str(tmp_path / "var"),
            **extra_env,
        }
    )
    logs, processes = [], []
    try:
        for n in (1, 2):
            log = tmp_path / f"notification-worker-{n}.log"
            logs.append(log)
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.notification", "worker"],
                    env=env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield processes, logs
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        delete_rabbitmq_objects(
            rabbitmq_url,
            queues=queue_names(f"{run_name}.notification", RETRY_DELAYS),
            exchanges=[f"{run_name}.events"],
        )


@pytest.fixture
def two_workers(tmp_path, rabbitmq_url, postgres_url, smtp, run_name):
    """Two notification worker processes on one queue and one database."""
    with notification_workers(tmp_path, rabbitmq_url, postgres_url, smtp, run_name) as running:
        yield running


def consumers_on(rabbitmq_url: str, queue: str) -> int:
    """How many consumers a queue has (0 when it is not declared yet)."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if connection.is_open:
            connection.close()


def test_same_event_three_times_to_two_worker_processes_is_one_mail(
    two_workers, rabbitmq_url, postgres_url, smtp, run_name
):
    processes, logs = two_workers
    wait_until(
        lambda: consumers_on(rabbitmq_url, f"{run_name}.notification") == 2,
        timeout=60,
        what="both workers to consume the notification queue",
    )
    assert all(proc.poll() is None for proc in processes)
    bus = RabbitMQBus(url=rabbitmq_url, exchange=f"{run_name}.events", queue_prefix=f"{run_name}.")
    db = Database(postgres_url, schema="notification")
    try:
        unit_id = str(uuid.uuid4())
        bus.publish(
            make_event(
                LiaisonDesignated(
                    unit_id=unit_id,
                    unit_code="XS",
                    unit_name="相山区信访局",
                    liaison_name="李明",
                    liaison_email="li.ming@example.org",
                ),
                producer="intake",
            )
        )

        def liaison_known() -> bool:
            """Whether a worker has stored the liaison."""
            with db.session() as uow:
                return uow.get(Liaison, unit_id) is not None

        wait_until(liaison_known, timeout=30, what="a worker to learn the liaison")

        event = make_event(
            SubmissionApproved(
                submission_id=str(uuid.uuid4()),
                unit_id=unit_id,
                measure_code="M5",
                title="悬挂宣传横幅",
                version=1,
                reviewer="王芳",
                score=92,
            ),
            producer="review",
        )
        for _ in range(3):
            bus.publish(event)

        [received] = smtp.wait_for(1, timeout=30)
        assert received.message["Subject"] == "【审核通过】相山区信访局：悬挂宣传横幅"

        # Both later copies are consumed and dropped (by the inbox, or by the race on its primary key) ...
        wait_until(
            lambda: _dropped(logs, event.event_id) == 2, timeout=30, what="the two copies to be dropped"
        )

        def sent() -> list[Delivery]:
            """The deliveries of the event."""
            with db.session() as uow:
                return list(uow.scalars(select(Delivery).where(Delivery.event_id == event.event_id)))

        [delivery] = wait_until(
            lambda: [d for d in sent() if d.status == "sent"], timeout=30, what="the delivery to be sent"
        )
        assert delivery.attempts == 1
        # ... and both delivery loops go round several more times (bounded wait) without a second mail.
        time.sleep(POLL_S * 10)
        assert len(smtp.messages) == 1 and len(sent()) == 1
        assert all(proc.poll() is None for proc in processes)
    finally:
        bus.stop()
        db.dispose()


def _dropped(logs, event_id: str) -> int:
    """How many deliveries of the event the workers acknowledged without effect."""
    text = "".join(log.read_text(errors="replace") for log in logs)
    return text.count(f"duplicate event {event_id} ignored") + text.count(
        f"event {event_id} processed concurrently elsewhere"
    )
