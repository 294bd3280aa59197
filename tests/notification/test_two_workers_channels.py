"""Group robots with two notification worker processes (RabbitMQ, PostgreSQL, the local robot API): an event
delivered three times is one post per group, and the robots' 20-a-minute limit (here 2) holds for both
workers together."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import date

import pytest
import yaml
from sqlalchemy import select

from services.notification.models import Delivery, KnownCampaign, KnownUnit, Liaison
from shared.bus.rabbitmq import RabbitMQBus
from shared.contracts import make_event
from shared.contracts.intake import CampaignPublished, LiaisonDesignated, UnitRegistered
from shared.contracts.review import SubmissionReturned
from shared.db import Database
from tests.helpers import wait_until
from tests.notification.test_two_workers import POLL_S, consumers_on, notification_workers
from tests.robot_server import robot_server

DING_TOKEN, DING_SECRET, WECOM_KEY = "ding-two-workers", "SECtwo-workers-0123", "wecom-two-workers"


@pytest.fixture
def robots():
    """The local robot API."""
    with robot_server(dingtalk={DING_TOKEN: DING_SECRET}, wecom={WECOM_KEY}) as server:
        yield server


@pytest.fixture
def two_workers(tmp_path, rabbitmq_url, postgres_url, smtp, run_name, robots):
    """Two `python -m services.notification worker` processes with the same robots, at most 2 posts a minute."""
    document = yaml.safe_dump(
        {
            "xiangshan": {"kind": "dingtalk", "token": DING_TOKEN, "secret": DING_SECRET, "units": ["XS"]},
            "office": {"kind": "wecom", "token": WECOM_KEY, "campaigns": ["wsxf-2020"]},
        }
    )
    robot_settings = {
        "CHANNEL_ROBOTS": document,
        "CHANNEL_MAX_PER_WINDOW": "2",
        "DINGTALK_BASE_URL": robots.url,
        "WECOM_BASE_URL": robots.url,
    }
    with notification_workers(tmp_path, rabbitmq_url, postgres_url, smtp, run_name, **robot_settings) as (
        processes,
        _logs,
    ):
        yield processes


def test_two_workers_post_once_per_group_and_share_the_rate_limit(
    two_workers, rabbitmq_url, postgres_url, run_name, robots
):
    wait_until(
        lambda: consumers_on(rabbitmq_url, f"{run_name}.notification") == 2,
        timeout=60,
        what="both workers to consume the notification queue",
    )
    bus = RabbitMQBus(url=rabbitmq_url, exchange=f"{run_name}.events", queue_prefix=f"{run_name}.")
    db = Database(postgres_url, schema="notification")
    try:
        campaign_id, unit_id = str(uuid.uuid4()), str(uuid.uuid4())
        for payload, producer in (
            (
                CampaignPublished(
                    campaign_id=campaign_id,
                    code="wsxf-2020",
                    name="网上信访宣传月",
                    version=1,
                    publicity_start=date(2020, 3, 9),
                    publicity_end=date(2020, 3, 31),
                    channel_rules={"unit_group": ["submission.returned"]},
                ),
                "intake",
            ),
            (
                UnitRegistered(
                    unit_id=unit_id, code="XS", name="相山区信访局", level="county", campaign_id=campaign_id
                ),
                "intake",
            ),
            (
                LiaisonDesignated(
                    unit_id=unit_id,
                    unit_code="XS",
                    unit_name="相山区信访局",
                    liaison_name="李明",
                    liaison_email="li.ming@example.org",
                ),
                "intake",
            ),
        ):
            bus.publish(make_event(payload, producer=producer))

        def all_known() -> bool:
            """Whether the workers have stored the campaign, the unit's campaign and the liaison."""
            with db.session() as uow:
                unit = uow.get(KnownUnit, unit_id)
                return (
                    uow.get(Liaison, unit_id) is not None
                    and uow.get(KnownCampaign, campaign_id) is not None
                    and unit is not None
                    and unit.campaign_id == campaign_id
                )

        wait_until(all_known, timeout=30, what="the workers to learn the campaign, unit and liaison")
        events = [
            make_event(
                SubmissionReturned(
                    submission_id=str(uuid.uuid4()),
                    unit_id=unit_id,
                    measure_code="M5",
                    title=f"悬挂宣传横幅（第{n}批）",
                    version=1,
                    reviewer="王芳",
                    comment="照片不清晰",
                ),
                producer="review",
            )
            for n in (1, 2, 3)
        ]
        for _ in range(3):  # every event three times, spread over both workers
            for event in events:
                bus.publish(event)

        def posts() -> list[Delivery]:
            """The group posts of the three events."""
            with db.session() as uow:
                return list(
                    uow.scalars(
                        select(Delivery).where(
                            Delivery.channel != "email", Delivery.event_id.in_([e.event_id for e in events])
                        )
                    )
                )

        wait_until(lambda: len(posts()) == 6, timeout=30, what="one post per event and group")
        wait_until(lambda: len(robots.posts) >= 4, timeout=30, what="two posts per robot")
        time.sleep(POLL_S * 15)  # both loops go round several more times within the minute
        per_robot = Counter(p.platform for p in robots.posts)
        # The third of each waits for the window, whichever worker holds it.
        assert robots.refused == [] and set(per_robot) == {"dingtalk", "wecom"}, robots.posts
        assert per_robot == {"dingtalk": 2, "wecom": 2}, robots.posts
        statuses = Counter(row.status for row in posts())
        assert statuses["sent"] == len(robots.posts) and statuses["queued"] == 6 - len(robots.posts), statuses
        assert all(proc.poll() is None for proc in two_workers)
    finally:
        bus.stop()
        db.dispose()
