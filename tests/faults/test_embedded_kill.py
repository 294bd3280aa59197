"""`make run` killed with kill -9 and started again loses nothing: events handed to the in-process bus are marked
published only once their consumers committed, so the restart delivers what was in flight."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from deploy.processes import free_port
from tests.helpers import wait_until

pytestmark = [pytest.mark.fault, pytest.mark.timeout(600)]
SERVICES = ("intake", "evidence_storage", "review", "notification")
SUBMISSIONS = 4


def _start(data_dir: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "OUTBOX_POLL_S": "0.5",
        "NOTIFY_POLL_S": "0.5",
    }
    log = (data_dir.parent / "embedded.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.embedded"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def ready() -> bool:
        assert proc.poll() is None, (data_dir.parent / "embedded.log").read_text(errors="replace")[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=120, interval=0.3, what="the embedded platform to be ready")
    return proc


def _approval_mails(data_dir: Path) -> list[str]:
    folder = data_dir / "mail"
    subjects = []
    for path in folder.glob("*.eml") if folder.is_dir() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if "审核通过" in str(message["Subject"]):
            subjects.append(str(message["Subject"]))
    return subjects


def _settled(data_dir: Path) -> bool:
    """Every outbox row of every service published, and every event in each subscribed consumer's inbox."""
    from services.evidence_storage.subscriptions import SUBSCRIPTIONS as EVIDENCE
    from services.intake.subscriptions import SUBSCRIPTIONS as INTAKE
    from services.notification.subscriptions import SUBSCRIPTIONS as NOTIFICATION
    from services.review.subscriptions import SUBSCRIPTIONS as REVIEW
    from shared.runtime import wanted_subscriptions
    from shared.settings import Settings

    subscriptions = {
        name: wanted_subscriptions(subs, Settings())
        for name, subs in {  # what each consumer binds
            "intake": INTAKE,
            "evidence_storage": EVIDENCE,
            "review": REVIEW,
            "notification": NOTIFICATION,
        }.items()
    }
    events, inboxes = [], {}
    for service in SERVICES:
        engine = create_engine(f"sqlite:///{data_dir / f'{service}.db'}")
        try:
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one():
                    return False
                events += list(conn.execute(text("SELECT event_id, type FROM outbox")))
                inboxes[service] = set(conn.execute(text("SELECT event_id FROM inbox")).scalars())
        finally:
            engine.dispose()
    return all(
        event_id in inboxes[service]
        for service, types in subscriptions.items()
        for event_id, event_type in events
        if event_type in types
    )


def test_kill_9_of_the_embedded_platform_with_events_in_flight_loses_nothing(tmp_path):
    from shared.auth import ADMIN, issuer_from_settings
    from shared.settings import Settings

    data_dir, port = tmp_path / "var", free_port()
    proc = _start(data_dir, port)
    try:
        token = issuer_from_settings(Settings(data_dir=data_dir)).issue(
            subject="kill-admin", name="王芳", role=ADMIN, ttl_s=3600
        )
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            code = f"K{uuid.uuid4().hex[:6]}"
            unit = client.post(
                "/intake/units",
                json={
                    "code": code,
                    "name": "相山区信访局",
                    "level": "county",
                    "liaison": {"name": "李明", "email": f"{code.lower()}@example.org"},
                },
            )
            assert unit.status_code == 201, unit.text
            titles = [f"宣传材料{n}-{code}" for n in range(SUBMISSIONS)]
            for title in titles:
                created = client.post(
                    "/intake/submissions",
                    json={"unit_id": unit.json()["id"], "measure_code": "M1", "title": title},
                )
                assert created.status_code == 201, created.text
                item = f"/review/submissions/{created.json()['id']}"
                wait_until(
                    lambda item=item: client.get(item).status_code == 200, timeout=60, what="the review queue"
                )
                assert client.post(f"{item}/approve", json={"score": 90}).status_code == 200
        os.killpg(
            proc.pid, signal.SIGKILL
        )  # right after the last approval: its events and mail are in flight
        proc.wait(timeout=10)
        in_flight = not _settled(data_dir) or len(_approval_mails(data_dir)) < SUBMISSIONS

        proc = _start(data_dir, port)
        wait_until(
            lambda: _settled(data_dir),
            timeout=120,
            what="every event published and consumed after the restart",
        )
        wait_until(
            lambda: len(_approval_mails(data_dir)) >= SUBMISSIONS, timeout=120, what="every approval mail"
        )
        mails = _approval_mails(data_dir)
        assert all(any(title in subject for subject in mails) for title in titles)
        assert len(mails) <= SUBMISSIONS + 1  # at most the one message being written when the process died
        print(f"events or mails in flight at the kill: {in_flight}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
