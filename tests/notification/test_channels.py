"""Group robots beside e-mail: the notices a campaign names are posted to the unit's DingTalk or WeCom group.

A local robot API (tests/robot_server.py) checks DingTalk's 加签 signature and WeCom's key and records each
post; the loop is driven by the test on a FixedClock, so the 20-a-minute window passes without sleeping.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import UTC, date, timedelta

import pytest
import yaml
from sqlalchemy import event, update

from services.intake.definition import ChannelRules, canonical_json, parse_definition
from services.notification.groups import POST_TO_GROUPS, to_markdown
from services.notification.models import Delivery
from services.notification.posting import ChannelLoop
from shared.adapters import make_channels
from shared.channels.ratelimit import WindowLimit
from shared.channels.robots import RobotBook, RobotsInvalid
from shared.contracts.intake import CampaignPublished, LiaisonDesignated, UnitRegistered
from shared.contracts.review import SubmissionApproved, SubmissionReturned
from shared.settings import SECRETS_DIR_ENV, Settings
from tests.helpers import wait_until
from tests.robot_server import robot_server

CAMPAIGN = str(uuid.uuid4())
DING_TOKEN, DING_SECRET = "ding-xiangshan", "SECxiangshan0123456789"
WECOM_KEY = "wecom-office-key"


def robots_document(*, secret: str = DING_SECRET) -> str:
    """CHANNEL_ROBOTS: Xiangshan's own DingTalk group (signed), and the campaign office's WeCom group."""
    return yaml.safe_dump(
        {
            "xiangshan-dingtalk": {
                "kind": "dingtalk",
                "token": DING_TOKEN,
                "secret": secret,
                "units": ["XS"],
            },
            "office-wecom": {"kind": "wecom", "token": WECOM_KEY, "campaigns": ["wsxf-2020"]},
        },
        allow_unicode=True,
    )


def campaign(*posted: str, version: int = 1) -> CampaignPublished:
    """The campaign, posting the given event types to units' groups."""
    return CampaignPublished(
        campaign_id=CAMPAIGN,
        code="wsxf-2020",
        name="网上信访宣传月",
        version=version,
        organiser="市信访局",
        publicity_start=date(2020, 3, 9),
        publicity_end=date(2099, 3, 31),
        channel_rules={"unit_group": list(posted)},
    )


def returned(unit_id: str, title: str = "悬挂宣传横幅", submission: str | None = None) -> SubmissionReturned:
    """A reviewer returned a submission of the unit."""
    return SubmissionReturned(
        submission_id=submission or str(uuid.uuid4()),
        unit_id=unit_id,
        measure_code="M5",
        title=title,
        version=1,
        reviewer="王芳",
        comment="横幅照片不清晰，请补充近景照片。",
    )


@pytest.fixture
def robots():
    """The local robot API knowing Xiangshan's DingTalk robot and the office's WeCom robot."""
    with robot_server(dingtalk={DING_TOKEN: DING_SECRET}, wecom={WECOM_KEY}) as server:
        yield server


@pytest.fixture
def make_group_world(make_world, robots, clock):
    """A notification world whose robots post to the local API; the test drives the robot loop."""

    def make(*, secret: str = DING_SECRET, **overrides):
        world = make_world(
            clock=clock,
            run_jobs=False,
            channel_robots=robots_document(secret=secret),
            dingtalk_base_url=robots.url,
            wecom_base_url=robots.url,
            channel_timeout_s=5.0,
            **overrides,
        )
        return world

    return make


def add_unit(world, code: str, name: str) -> str:
    """A unit of the campaign with its liaison."""
    unit_id = str(uuid.uuid4())
    path = f"/{unit_id}/"
    world.publish_and_wait(
        UnitRegistered(
            unit_id=unit_id, code=code, name=name, level="county", unit_path=path, campaign_id=CAMPAIGN
        )
    )
    world.publish_and_wait(
        LiaisonDesignated(
            unit_id=unit_id,
            unit_code=code,
            unit_name=name,
            liaison_name="李明",
            liaison_email=f"liaison-{code.lower()}@example.org",
            unit_path=path,
        )
    )
    return unit_id


def test_notice_named_by_the_campaign_posts_signed_markdown_to_the_unit_group(make_group_world, robots):
    world = make_group_world()
    world.publish_and_wait(campaign("submission.returned"))
    unit = add_unit(world, "XS", "相山区信访局")
    world.publish_and_wait(returned(unit))
    world.publish_and_wait(
        SubmissionApproved(
            submission_id=str(uuid.uuid4()),
            unit_id=unit,
            measure_code="M1",
            title="专题会议",
            version=1,
            reviewer="王芳",
        )
    )
    posts = world.deliveries(channel="dingtalk")
    assert [row.event_type for row in posts] == ["submission.returned"]  # approvals are mailed, not posted
    assert len(world.deliveries(channel="wecom")) == 1  # the office's campaign group hears it too
    # the liaison is mailed the campaign (named after it was published) and both decisions, as before
    assert sorted(row.event_type for row in world.deliveries(channel="email")) == [
        "campaign.published",
        "submission.approved",
        "submission.returned",
    ]

    assert ChannelLoop(world.ctx).run() == 2
    by_platform = {post.platform: post for post in robots.posts}
    ding = by_platform["dingtalk"]
    assert (
        ding.query["access_token"] == DING_TOKEN and ding.query["sign"]
    )  # the server verified the signature
    assert ding.body["msgtype"] == "markdown"
    assert ding.body["markdown"]["title"].startswith("【")
    text = ding.body["markdown"]["text"]
    assert text.startswith("#### ") and "横幅照片不清晰" in text and "李明同志" not in text
    assert by_platform["wecom"].body == {"msgtype": "markdown", "markdown": {"content": text}}
    [row] = world.deliveries(channel="dingtalk")
    assert (row.status, row.attempts, row.recipient, row.body_html) == ("sent", 1, "xiangshan-dingtalk", "")
    assert DING_SECRET not in json.dumps(
        world.client.get("/deliveries", params={"channel": "dingtalk"}).json()
    )
    wait_until(
        lambda: any(
            e.type == "notification.delivered" and e.payload.get("channel") == "dingtalk"
            for e in world.observed
        ),
        what="notification.delivered for the post",
    )


def test_one_post_per_notice_per_group(make_group_world, robots):
    world = make_group_world()
    xiangshan = add_unit(world, "XS", "相山区信访局")
    add_unit(world, "DJ", "杜集区信访局")
    published = world.publish_and_wait(campaign("campaign.published", "submission.returned"))
    # every liaison is mailed; the office's group (both units) gets the campaign once, Xiangshan's group once
    assert len(world.deliveries(channel="email")) == 2
    assert [row.recipient for row in world.deliveries(channel="wecom")] == ["office-wecom"]
    assert [row.recipient for row in world.deliveries(channel="dingtalk")] == ["xiangshan-dingtalk"]
    [office] = world.deliveries(channel="wecom")
    assert "各单位" in office.body_text and "相山区" not in office.body_text
    world.bus.publish(published)  # the same event again (at-least-once)
    add_unit(
        world, "LS", "烈山区信访局"
    )  # a liaison named later is mailed the campaign, the groups not again
    assert len(world.deliveries(channel="email")) == 3
    assert len(world.deliveries(channel="wecom")) == 1 and len(world.deliveries(channel="dingtalk")) == 1
    returned_once = returned(xiangshan)
    world.publish_and_wait(returned_once)
    world.publish_and_wait(returned_once.model_copy())  # a second event, the same notice (same dedupe key)
    assert len(world.deliveries(channel="dingtalk")) == 2
    assert ChannelLoop(world.ctx).run() == 4
    assert len(robots.posts) == 4


def test_rate_limit_per_robot_is_honoured_on_the_clock(make_group_world, robots, clock):
    world = make_group_world(channel_max_per_window=2)
    world.publish_and_wait(campaign("submission.returned"))
    unit = add_unit(world, "XS", "相山区信访局")
    for n in range(3):
        world.publish_and_wait(returned(unit, title=f"宣传横幅第{n + 1}批"))
    loop = ChannelLoop(world.ctx)
    assert loop.run() == 4  # two per robot
    held = [row for row in world.deliveries() if row.channel != "email" and row.status == "queued"]
    assert len(held) == 2 and {row.attempts for row in held} == {0}  # waiting is not an attempt
    assert all(row.next_attempt_at.replace(tzinfo=UTC) >= clock.now() + timedelta(seconds=59) for row in held)
    assert loop.run() == 0 and robots.refused == []  # nothing more within the window, and no refusal provoked
    clock.advance(timedelta(seconds=61))
    assert loop.run() == 2
    assert len(robots.posts) == 6 and robots.refused == []


def test_rate_limit_is_shared_by_workers_through_the_delivery_log(make_group_world, robots, clock):
    world = make_group_world(channel_max_per_window=2)
    world.publish_and_wait(campaign("submission.returned"))
    unit = add_unit(world, "XS", "相山区信访局")
    for n in range(2):
        world.publish_and_wait(returned(unit, title=f"宣传横幅第{n + 1}批"))
    assert (
        ChannelLoop(world.ctx, limit=WindowLimit(2, 60)).run() == 4
    )  # one worker fills both robots' windows
    world.publish_and_wait(returned(unit, title="宣传横幅第3批"))
    other = ChannelLoop(world.ctx, limit=WindowLimit(2, 60))  # another worker: its own count is empty
    assert other.run() == 0 and len(robots.posts) == 4 and robots.refused == []
    clock.advance(timedelta(seconds=30))
    assert other.run() == 0  # the window is still full after half a minute
    clock.advance(timedelta(seconds=31))
    assert other.run() == 2


def test_a_post_recorded_as_sent_while_a_worker_counts_the_window_is_counted(
    make_group_world, robots, clock, postgres_url
):
    """Another worker records its post as sent just as this one counts the robot's window (a hook on the real
    PostgreSQL connection commits the change right after the count's first statement): the post is counted
    once, as sent, and the window of 2 stays full. Counted in two statements, it was in neither."""
    world = make_group_world(channel_max_per_window=2, database_url=postgres_url)
    world.publish_and_wait(campaign("submission.returned"))
    unit = add_unit(world, "XS", "相山区信访局")
    for n in range(3):
        world.publish_and_wait(returned(unit, title=f"宣传横幅第{n + 1}批"))
    first, second, third = world.deliveries(channel="dingtalk")
    now = clock.now()
    with world.ctx.db.transaction() as uow:  # one post sent, one under way at another worker
        uow.execute(update(Delivery).where(Delivery.id == first.id).values(status="sent", sent_at=now))
        uow.execute(
            update(Delivery)
            .where(Delivery.id == second.id)
            .values(status="sending", lease_owner="other-worker", lease_expires_at=now + timedelta(minutes=5))
        )
    recorded: list[str] = []

    def other_worker_records(_conn, _cursor, statement: str, parameters, *_args) -> None:
        counting = statement.lstrip().startswith("SELECT") and "sent_at >" in statement
        if recorded or not (counting and "xiangshan-dingtalk" in parameters.values()):
            return
        recorded.append(statement)
        with world.ctx.db.transaction() as uow:  # another connection of the pool, committed at once
            uow.execute(
                update(Delivery)
                .where(Delivery.id == second.id)
                .values(status="sent", sent_at=now, lease_owner=None, lease_expires_at=None)
            )

    event.listen(world.ctx.db.engine, "after_cursor_execute", other_worker_records)
    try:
        ChannelLoop(world.ctx, limit=WindowLimit(2, 60)).run()
    finally:
        event.remove(world.ctx.db.engine, "after_cursor_execute", other_worker_records)
    assert recorded, "the window was not counted"
    assert [post.platform for post in robots.posts].count("dingtalk") == 0, robots.posts
    held = world.deliveries(id=third.id)[0]
    assert held.status == "queued" and held.attempts == 0


def test_refusal_for_sending_too_fast_is_retried_after_the_window(make_group_world, robots, clock):
    world = make_group_world()
    world.publish_and_wait(campaign("submission.returned"))
    unit = add_unit(world, "XS", "相山区信访局")
    robots.answer_next(130101, platform="dingtalk")  # 发送速度太快而限流
    robots.answer_next(45009, platform="wecom")  # 接口调用超过限制
    world.publish_and_wait(returned(unit))
    loop = ChannelLoop(world.ctx)
    assert loop.run() == 0
    rows = [row for row in world.deliveries() if row.channel != "email"]
    assert {(row.status, row.attempts) for row in rows} == {("queued", 1)}
    assert all("rate limited: errcode" in (row.last_error or "") for row in rows)
    assert all(row.next_attempt_at.replace(tzinfo=UTC) >= clock.now() + timedelta(seconds=59) for row in rows)
    clock.advance(timedelta(seconds=61))
    assert loop.run() == 2
    assert {(row.status, row.attempts) for row in world.deliveries() if row.channel != "email"} == {
        ("sent", 2)
    }


def test_permanent_error_fails_the_post_for_operators_to_see_and_requeue(make_group_world, robots, caplog):
    world = make_group_world(secret="SECwrong-secret")
    world.publish_and_wait(campaign("submission.returned"))
    unit = add_unit(world, "XS", "相山区信访局")
    world.publish_and_wait(returned(unit))
    with caplog.at_level(logging.ERROR, logger="services.notification.posting"):
        assert ChannelLoop(world.ctx).run() == 1  # the WeCom post goes; DingTalk refuses the signature
    [row] = world.deliveries(channel="dingtalk")
    assert row.status == "failed" and "errcode 310000" in (row.last_error or "")
    assert robots.refused == [("dingtalk", 310000)]
    [line] = [r.getMessage() for r in caplog.records if r.name == "services.notification.posting"]
    assert "xiangshan-dingtalk" in line and "CHANNEL_ROBOTS" in line and "SECwrong" not in line
    wait_until(
        lambda: any(
            e.type == "notification.failed" and e.payload["channel"] == "dingtalk" for e in world.observed
        ),
        what="notification.failed for the post",
    )
    [office] = wait_until(
        lambda: world.deliveries(event_type="notification.failed"), what="the office told of the failed post"
    )
    assert office.channel == "email" and office.subject == "【群消息未送达】相山区信访局：xiangshan-dingtalk"
    assert (
        "钉钉群机器人" in office.body_text
        and "加签密钥" in office.body_text
        and "channel=dingtalk" in office.body_text
    )
    log = world.client.get("/deliveries", params={"channel": "dingtalk", "status": "failed"}).json()
    assert [entry["recipient"] for entry in log] == ["xiangshan-dingtalk"]
    summary = world.client.get("/deliveries/summary", params={"channel": "dingtalk"}).json()
    assert summary["failed"] == 1 and summary["sent"] == 0
    state = world.client.get("/ops/channels").json()["robots"]
    assert {robot["name"]: robot["deliveries"] for robot in state} == {
        "office-wecom": {"sent": 1},
        "xiangshan-dingtalk": {"failed": 1},
    }
    assert DING_SECRET not in json.dumps(state) and DING_TOKEN not in json.dumps(state)
    requeued = world.client.post(
        "/ops/deliveries/requeue", json={"channel": "dingtalk", "reason": "加签密钥已更正"}
    ).json()
    assert requeued == {"requeued": [row.id]}
    [audited] = world.client.get("/audit-log", params={"action": "delivery.requeued"}).json()
    assert audited["detail"] == {"delivery_ids": [row.id], "reason": "加签密钥已更正", "channel": "dingtalk"}
    assert world.deliveries(channel="dingtalk")[0].status == "queued"
    assert world.deliveries(channel="email")[0].status == "queued"  # the mail loop's row is left alone


def test_without_robots_nothing_changes(make_world, clock):
    world = make_world(clock=clock, run_jobs=False)
    assert world.ctx.channels is None
    world.publish_and_wait(campaign("submission.returned"))
    unit = add_unit(world, "XS", "相山区信访局")
    world.publish_and_wait(returned(unit))
    assert [row.channel for row in world.deliveries()] == ["email", "email"]  # the campaign and the decision


def test_robots_read_from_the_secrets_folder(tmp_path, monkeypatch):
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "channel_robots").write_text(robots_document(), encoding="utf-8")
    monkeypatch.setenv(SECRETS_DIR_ENV, str(folder))
    settings = Settings(data_dir=tmp_path)
    assert DING_SECRET not in repr(settings)
    channels = make_channels(settings)
    assert channels is not None
    robot = channels.robots.get("xiangshan-dingtalk")
    assert robot is not None and robot.secret is not None and robot.secret.get_secret_value() == DING_SECRET
    assert [r.name for r in channels.robots.for_unit("XS", "wsxf-2020")] == [
        "office-wecom",
        "xiangshan-dingtalk",
    ]
    assert [r.name for r in channels.robots.for_unit("DJ", None)] == []


def test_a_broken_robots_document_names_the_robot_not_the_secret():
    with pytest.raises(RobotsInvalid) as caught:
        RobotBook.parse(yaml.safe_dump({"bad-robot": {"kind": "feishu", "token": "tok-123-secret"}}))
    assert "bad-robot" in str(caught.value) and "tok-123-secret" not in str(caught.value)


def test_markdown_keeps_user_text_from_making_markup():
    text = to_markdown(
        "【退回】标题", "审核意见：\n# 不是标题\n  M1 召开专题会议\n<font>x</font>", office="办公室"
    )
    assert text.split("\n\n") == [
        "#### 【退回】标题",
        "审核意见：",
        "\\# 不是标题",
        "- M1 召开专题会议",
        "\uff1cfont\uff1ex\uff1c/font\uff1e",
        "> 办公室",
    ]


def test_campaign_definition_names_the_posted_events(tmp_path):
    from pathlib import Path

    from services.intake.definition import DefinitionInvalid

    text = Path("deploy/campaigns/huaibei-2020.yaml").read_text(encoding="utf-8")
    plain = parse_definition(text)
    assert plain.channels == ChannelRules()  # existing definitions load unchanged, with no group posts
    assert '"channels"' not in canonical_json(plain)  # and keep their hash
    posting = parse_definition(text + "\nchannels:\n  unit_group: [deadline.missed, submission.returned]\n")
    assert posting.channels.unit_group == ["deadline.missed", "submission.returned"]
    with pytest.raises(DefinitionInvalid):
        parse_definition(text + "\nchannels:\n  unit_group: [liaison.designated]\n")


def test_ops_cli_requeues_one_channel_and_lists_robots():
    import httpx

    from deploy.ops import main

    seen: list[tuple[str, str, bytes]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        return httpx.Response(200, json={"requeued": []} if request.method == "POST" else {"robots": []})

    client = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://gateway")
    assert (
        main(
            ["requeue", "--channel", "dingtalk", "--reason", "加签密钥已更正"],
            client=client,
            out=io.StringIO(),
        )
        == 0
    )
    assert main(["channels"], client=client, out=io.StringIO()) == 0
    [(method, path, body), listing] = seen
    assert (method, path) == ("POST", "/notification/ops/deliveries/requeue")
    assert json.loads(body)["channel"] == "dingtalk"
    assert listing[:2] == ("GET", "/notification/ops/channels")


def test_the_robot_loop_runs_for_a_commit_that_queued_a_post_not_for_every_event(make_world, robots, clock):
    world = make_world(  # after its first round the loop runs only when woken
        clock=clock,
        notify_poll_s=600.0,
        channel_robots=robots_document(),
        dingtalk_base_url=robots.url,
        wecom_base_url=robots.url,
        channel_timeout_s=5.0,
    )
    wakes: list[str] = []
    wake = world.ctx.job_wakers[POST_TO_GROUPS]
    world.ctx.job_wakers[POST_TO_GROUPS] = lambda: (wakes.append(POST_TO_GROUPS), wake())
    world.publish_and_wait(campaign("submission.returned"))
    unit = add_unit(world, "XS", "相山区信访局")
    assert wakes == []  # a campaign and a unit remembered, no post queued: no claim query
    world.publish(returned(unit))
    wait_until(lambda: len(robots.posts) == 2, timeout=30, what="the queued posts to go out at once")
    assert wakes == [POST_TO_GROUPS]  # one commit queued both (the unit's group and the office's)
    assert sorted(post.platform for post in robots.posts) == ["dingtalk", "wecom"]
