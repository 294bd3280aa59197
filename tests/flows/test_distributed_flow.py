"""The same flow with every API and worker in its own OS process, on RabbitMQ, PostgreSQL, S3 (moto) and SMTP."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from deploy.processes import SERVICES, Cluster, cluster_env
from shared.auth import generate_key_pair
from shared.bus.rabbitmq import queue_names
from tests.flows.steps import (
    ADMIN_PASSWORD,
    create_unit,
    submit,
    upload,
    wait_evidence_ready,
    wait_review_item,
)
from tests.helpers import JPEG_BYTES, mail_parts, wait_until
from tests.services import delete_rabbitmq_objects

RETRY_DELAYS = (200, 500)
HUAIBEI = Path(__file__).resolve().parents[2] / "deploy" / "campaigns" / "huaibei-2020.yaml"


@pytest.fixture
def cluster(tmp_path, rabbitmq_url, postgres_url, s3, smtp, run_name):
    """Eight processes (API + worker per service) wired to real servers, torn down afterwards."""
    private_key, public_key = generate_key_pair()  # each process reads the key material from its environment
    env = cluster_env(
        {
            "AUTH_PRIVATE_KEY": private_key,
            "AUTH_PUBLIC_KEY": public_key,
            "BUS_BACKEND": "rabbitmq",
            "RABBITMQ_URL": rabbitmq_url,
            "BUS_EXCHANGE": f"{run_name}.events",
            "BUS_QUEUE_PREFIX": f"{run_name}.",
            "BUS_RETRY_DELAYS_MS": ",".join(map(str, RETRY_DELAYS)),
            "DATABASE_URL": postgres_url,
            "BLOB_BACKEND": "s3",
            "S3_ENDPOINT": s3.endpoint,
            "S3_ACCESS_KEY": s3.access_key,
            "S3_SECRET_KEY": s3.secret_key,
            "S3_BUCKET": s3.bucket,
            "MAIL_BACKEND": "smtp",
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "OUTBOX_POLL_S": "0.2",
            "DATA_DIR": str(tmp_path / "var"),
        }
    )
    running = Cluster(env=env, log_dir=tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        queues = [name for s in SERVICES for name in queue_names(f"{run_name}.{s}", RETRY_DELAYS)]
        delete_rabbitmq_objects(rabbitmq_url, queues=queues, exchanges=[f"{run_name}.events"])


def logged_in_client(cluster) -> httpx.Client:
    """An HTTP client logged in at intake as an admin made by the first-admin CLI."""
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.intake.identity_cli",
            "create-admin",
            "--username",
            "flow-admin",
            "--display-name",
            "王芳",
            "--password-stdin",
        ],
        input=ADMIN_PASSWORD + "\n",
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    login = httpx.post(
        f"{cluster.routes['intake']}/auth/login",
        json={"username": "flow-admin", "password": ADMIN_PASSWORD},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    return httpx.Client(timeout=30, headers={"Authorization": f"Bearer {login.json()['access_token']}"})


def test_flow_across_processes(cluster, smtp):
    routes = cluster.routes
    with logged_in_client(cluster) as client:
        unit = create_unit(client, routes=routes, name="濉溪县信访局")
        submission = submit(client, unit["id"], routes=routes, measure="M5", title="悬挂宣传横幅")
        wait_evidence_ready(client, submission["id"], routes=routes, timeout=30)
        response = upload(client, submission["id"], JPEG_BYTES, "横幅.jpg", routes=routes)
        assert response.status_code == 201, response.text
        evidence = response.json()
        assert evidence["sha256"] == hashlib.sha256(JPEG_BYTES).hexdigest()

        wait_review_item(client, submission["id"], routes=routes, evidence=1, timeout=30)
        decided = client.post(
            f"{routes['review']}/submissions/{submission['id']}/approve",
            json={"reviewer": "王芳", "score": 88},
        )
        assert decided.status_code == 200, decided.text

        smtp.wait_for(1, timeout=30)
        message = smtp.messages[0].message
        assert message["Subject"] == "【审核通过】濉溪县信访局：悬挂宣传横幅"
        assert unit["liaison_email"] in message["To"]
        text, html = mail_parts(message)
        assert "得分 88" in text and "已审核通过" in html

        wait_until(
            lambda: (
                client.get(f"{routes['intake']}/submissions/{submission['id']}").json()["state"] == "approved"
            ),
            timeout=30,
            what="intake to mirror the approval",
        )
        wait_until(
            lambda: client.get(f"{routes['evidence']}/evidence/{evidence['id']}").json()["locked"],
            timeout=30,
            what="the evidence to be locked",
        )
        download = client.get(f"{routes['evidence']}/evidence/{evidence['id']}/content")
        assert download.status_code == 200 and download.content == JPEG_BYTES
        deliveries = client.get(f"{routes['notification']}/deliveries", params={"unit_id": unit["id"]}).json()
        assert [d["status"] for d in deliveries] == ["sent"]

        # One request id finds the next submission's path through the services it reaches, each in its own process
        # (notification consumes submissions only with receipts on: tests/operations/test_observability.py).
        second = client.post(
            f"{routes['intake']}/submissions",
            headers={"X-Request-ID": "dist-7f3a9c"},
            json={
                "unit_id": unit["id"],
                "measure_code": "M1",
                "title": "召开专题会议",
                "description": "3月9日召开专题会议。",
            },
        )
        assert second.status_code == 201 and second.headers["x-request-id"] == "dist-7f3a9c"
        wait_review_item(client, second.json()["id"], routes=routes, timeout=30)

        def traced() -> dict[str, list[dict]]:
            found = {
                name: [
                    line
                    for line in _json_lines(cluster.log(name))
                    if "dist-7f3a9c" in (line.get("request_id"), line.get("correlation_id"))
                ]
                for name in ("intake-api", "evidence_storage-worker", "review-worker")
            }
            return found if all(found.values()) else {}

        found = wait_until(traced, timeout=30, what="every process to log the request id")
        assert found["intake-api"][0]["route"] == "/submissions" and found["intake-api"][0]["role"] == "api"
        assert [found[f"{s}-worker"][0]["service"] for s in ("evidence_storage", "review")] == [
            "evidence_storage",
            "review",
        ]


def _json_lines(text: str) -> list[dict]:
    """The JSON log lines of a process's output (anything else, e.g. a traceback's lines, skipped)."""
    import contextlib
    import json

    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
    return lines


def test_worker_restart_loses_nothing(cluster, smtp):
    routes = cluster.routes
    with logged_in_client(cluster) as client:
        unit = create_unit(client, routes=routes)
        wait_until(lambda: client.get(f"{routes['notification']}/healthz").status_code == 200)
        cluster.stop("notification-worker")
        submissions = [submit(client, unit["id"], routes=routes, title=f"宣传材料{n}") for n in range(3)]
        for submission in submissions:
            wait_review_item(client, submission["id"], routes=routes, timeout=30)
            assert (
                client.post(
                    f"{routes['review']}/submissions/{submission['id']}/return",
                    json={"reviewer": "王芳", "comment": "请补充照片"},
                ).status_code
                == 200
            )
        cluster.restart("notification-worker")
        smtp.wait_for(3, timeout=60)
        subjects = sorted(m.message["Subject"] for m in smtp.messages)
        assert subjects == sorted(f"【退回修改】相山区信访局：宣传材料{n}" for n in range(3))


def test_review_timeline_and_circular_across_processes(cluster, smtp):
    """Claim, decide, download, then a circular stored in S3 and published, each service in its own process."""
    import io

    import docx

    routes = cluster.routes
    with logged_in_client(cluster) as client:
        loaded = client.post(
            f"{routes['intake']}/campaigns",
            content=HUAIBEI.read_bytes(),
            headers={"Content-Type": "application/yaml"},
        )
        assert loaded.status_code == 201, loaded.text
        campaign_id = loaded.json()["campaign_id"]
        units = client.get(f"{routes['intake']}/units", params={"campaign_id": campaign_id}).json()
        unit = next(u for u in units if u["code"] == "XSQ")
        submission = submit(client, unit["id"], routes=routes, measure="M3", title="制作宣传展板")
        wait_evidence_ready(client, submission["id"], routes=routes, timeout=30)
        evidence = upload(client, submission["id"], JPEG_BYTES, "展板.jpg", routes=routes).json()
        wait_review_item(client, submission["id"], routes=routes, evidence=1, timeout=30)
        item = f"{routes['review']}/submissions/{submission['id']}"

        assert client.post(f"{item}/claim", json={"version": 1}).status_code == 200
        wait_until(
            lambda: (
                client.get(f"{routes['intake']}/submissions/{submission['id']}").json()["state"]
                == "under_review"
            ),
            timeout=30,
            what="intake to show the claimed version as under review",
        )
        assert client.post(f"{item}/approve", json={"version": 1, "score": 90}).status_code == 200
        assert client.get(f"{routes['evidence']}/evidence/{evidence['id']}/content").status_code == 200
        kinds = lambda: [r["kind"] for r in client.get(f"{item}/timeline").json()]
        wait_until(
            lambda: "evidence.download" in kinds(), timeout=30, what="the download to reach the timeline"
        )
        assert kinds()[:2] == ["submission.submitted", "evidence.stored"] and "submission.claimed" in kinds()

        circular = client.post(
            f"{routes['review']}/circulars",
            json={"campaign_id": campaign_id, "period": "2020-Q1", "as_of": "2020-04-10T16:00:00+08:00"},
        )
        assert circular.status_code == 201, circular.text
        circular = circular.json()
        document = client.get(f"{routes['review']}/circulars/{circular['id']}/files/docx")
        assert document.status_code == 200
        assert circular["title"] in [p.text for p in docx.Document(io.BytesIO(document.content)).paragraphs]
        assert client.get(f"{routes['review']}/circulars/{circular['id']}/verify").json()["ok"] is True
        assert client.post(f"{routes['review']}/circulars/{circular['id']}/publish").status_code == 200
        wait_until(
            lambda: any(m.message["Subject"] == f"【通报】{circular['title']}" for m in smtp.messages),
            timeout=60,
            what="the circular to be mailed to the liaisons",
        )
        assert client.get(f"{routes['review']}/timeline/verify").json()["ok"] is True
