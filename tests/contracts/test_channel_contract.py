"""The Channel contract: the DingTalk and WeCom adapters pass the same suite against a local robot API.

The server (tests/robot_server.py) checks what the platforms check: DingTalk's 加签 signature and timestamp,
WeCom's key, the JSON shape of a markdown message, 20 posts a minute per robot.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from shared.channels.dingtalk import DingTalkChannel, sign
from shared.channels.port import (
    ChannelMessage,
    ChannelRateLimited,
    PermanentChannelError,
    Robot,
    TemporaryChannelError,
)
from shared.channels.wecom import WeComChannel
from tests.robot_server import RobotServer, robot_server
from tests.servers import free_port

TITLE = "【材料退回】相山区信访局：专题会议"
TEXT = "#### 【材料退回】相山区信访局：专题会议\n\n审核意见：照片不清晰，请重新上传。\n\n> 宣传月活动办公室"
DING_TOKEN, DING_SECRET = "ding-token-0001", "SEC0123456789abcdef+/=中"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


@dataclass
class Target:
    """An adapter, a robot it may post to, and the server that records what arrived."""

    adapter: DingTalkChannel | WeComChannel
    robot: Robot
    server: RobotServer

    def robot_with(self, **changes) -> Robot:
        """The robot with other fields (a wrong token or secret)."""
        return self.robot.model_copy(update=changes)


@pytest.fixture(scope="module")
def server():
    """One robot API for the module; each test starts with no posts and fresh rate windows."""
    with robot_server(
        dingtalk={DING_TOKEN: DING_SECRET, "ding-unsigned": None}, wecom={WECOM_KEY}
    ) as running:
        yield running


@pytest.fixture(params=["dingtalk", "wecom"])
def target(request, server) -> Target:
    """Each adapter in turn against the local server."""
    server.posts.clear()
    server.refused.clear()
    server._recent.clear()
    server.per_minute = 20
    if request.param == "dingtalk":
        robot = Robot(
            name="xiangshan", kind="dingtalk", token=SecretStr(DING_TOKEN), secret=SecretStr(DING_SECRET)
        )
        return Target(DingTalkChannel(server.url, timeout_s=5), robot, server)
    robot = Robot(name="office", kind="wecom", token=SecretStr(WECOM_KEY))
    return Target(WeComChannel(server.url, timeout_s=5), robot, server)


def test_markdown_post_arrives_as_the_platform_expects_it(target):
    target.adapter.post(target.robot, ChannelMessage(TITLE, TEXT))
    [post] = target.server.posts
    assert post.platform == target.robot.kind
    assert post.body["msgtype"] == "markdown"
    if post.platform == "dingtalk":
        assert post.body["markdown"] == {"title": TITLE, "text": TEXT}
        assert set(post.query) == {"access_token", "timestamp", "sign"}  # signed: the server checked it
    else:
        assert post.body["markdown"] == {"content": TEXT}
        assert post.query == {"key": WECOM_KEY}
    assert "中" in post.raw.decode("utf-8") or "审核意见" in post.raw.decode("utf-8")


def test_wrong_credential_is_permanent(target):
    wrong = (
        target.robot_with(secret=SecretStr("SECwrong"))
        if target.robot.kind == "dingtalk"
        else target.robot_with(token=SecretStr("no-such-key"))
    )
    with pytest.raises(PermanentChannelError) as caught:
        target.adapter.post(wrong, ChannelMessage(TITLE, TEXT))
    assert target.server.posts == []
    assert target.server.refused == [
        (target.robot.kind, 310000 if target.robot.kind == "dingtalk" else 93000)
    ]
    assert "SECwrong" not in str(caught.value) and "no-such-key" not in str(caught.value)


def test_more_than_the_platform_takes_in_a_minute_is_rate_limited(target):
    target.server.per_minute = 2
    for _ in range(2):
        target.adapter.post(target.robot, ChannelMessage(TITLE, TEXT))
    with pytest.raises(ChannelRateLimited):
        target.adapter.post(target.robot, ChannelMessage(TITLE, TEXT))
    assert len(target.server.posts) == 2


def test_platform_busy_and_http_errors_are_temporary(target):
    target.server.answer_next(-1)  # 系统繁忙
    with pytest.raises(TemporaryChannelError) as busy:
        target.adapter.post(target.robot, ChannelMessage(TITLE, TEXT))
    assert not isinstance(busy.value, ChannelRateLimited)
    target.server.answer_next(0, status=502)
    with pytest.raises(TemporaryChannelError):
        target.adapter.post(target.robot, ChannelMessage(TITLE, TEXT))
    target.server.answer_next(0, status=429)
    with pytest.raises(ChannelRateLimited):
        target.adapter.post(target.robot, ChannelMessage(TITLE, TEXT))
    assert target.server.posts == []


def test_unreachable_platform_is_temporary(target):
    adapter = type(target.adapter)(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(TemporaryChannelError):
        adapter.post(target.robot, ChannelMessage(TITLE, TEXT))


def test_long_text_is_cut_to_what_the_platform_takes(target):
    long = "宣传月活动进展：" + "各单位认真落实宣传措施。" * 2000  # ~72 kB of UTF-8
    target.adapter.post(target.robot, ChannelMessage(TITLE, long))
    [post] = target.server.posts
    assert post.text.endswith("（内容过长，已截断）")
    if post.platform == "wecom":
        assert len(post.text.encode("utf-8")) <= 4096


def test_robot_of_the_other_platform_is_refused_without_a_request(target):
    other = target.robot_with(kind="wecom" if target.robot.kind == "dingtalk" else "dingtalk")
    with pytest.raises(PermanentChannelError):
        target.adapter.post(other, ChannelMessage(TITLE, TEXT))
    assert target.server.posts == [] and target.server.refused == []


def test_health_makes_no_request(target):
    assert target.adapter.health()["ok"] is True
    assert target.server.posts == [] and target.server.refused == []


def test_dingtalk_signature_follows_the_documented_example():
    # HMAC-SHA256 over "<timestamp>\n<secret>", base64: recomputed here with nothing but the standard library
    import base64
    import hashlib
    import hmac

    expected = base64.b64encode(
        hmac.new(b"SECabc", b"1577836800000\nSECabc", hashlib.sha256).digest()
    ).decode()
    assert sign("SECabc", 1577836800000) == expected


def test_dingtalk_stale_timestamp_is_refused(server):
    server.posts.clear()
    robot = Robot(name="x", kind="dingtalk", token=SecretStr(DING_TOKEN), secret=SecretStr(DING_SECRET))
    two_hours_ago = DingTalkChannel(server.url, now_ms=lambda: 1_000 * (int(time.time()) - 7200))
    with pytest.raises(PermanentChannelError):
        two_hours_ago.post(robot, ChannelMessage(TITLE, TEXT))
    assert server.posts == []


def test_dingtalk_robot_without_secret_posts_unsigned(server):
    server.posts.clear()
    server._recent.clear()
    robot = Robot(name="plain", kind="dingtalk", token=SecretStr("ding-unsigned"))
    DingTalkChannel(server.url).post(robot, ChannelMessage(TITLE, TEXT))
    [post] = server.posts
    assert post.query == {"access_token": "ding-unsigned"}


def test_webhook_credentials_never_reach_a_log_line(target, caplog):
    from shared.logs import scrub

    with caplog.at_level(logging.DEBUG):
        target.adapter.post(target.robot, ChannelMessage(TITLE, TEXT))
        with pytest.raises(PermanentChannelError):
            target.adapter.post(
                target.robot_with(token=SecretStr("wrong-token-xyz")), ChannelMessage(TITLE, TEXT)
            )
    [post] = target.server.posts
    secrets = [target.robot.token.get_secret_value(), "wrong-token-xyz", *post.query.values()]
    lines = [scrub(record.getMessage()) for record in caplog.records]  # as the log formatters write them
    assert lines and not [line for line in lines if any(secret in line for secret in secrets)]
