"""DingTalk custom robot (自定义机器人) webhooks, signed with the robot's secret (加签).

POST {base}/robot/send?access_token=T&timestamp=<ms>&sign=<urlencoded base64 HMAC-SHA256(secret, "<ms>\\n<secret>")>
with `{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}`; a robot takes at most 20 messages a
minute (errcode 130101 beyond that); 310000 is a failed security check (signature, keyword or IP).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import httpx

from shared.channels.port import ChannelMessage, PermanentChannelError, Robot, fit_utf8
from shared.channels.webhook import new_client, post_json

DEFAULT_BASE_URL = "https://oapi.dingtalk.com"
RATE_LIMITED = (130101,)
# 310000 security check failed; 300001 token invalid; 300005 token missing; 400101/400102 robot missing or stopped
PERMANENT = (310000, 300001, 300005, 400013, 400101, 400102, 40035)
MAX_TEXT_BYTES = 18000


def sign(secret: str, timestamp_ms: int) -> str:
    """The `sign` parameter before URL encoding: base64 of HMAC-SHA256 over "<timestamp>\\n<secret>"."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _wall_ms() -> int:
    return int(time.time() * 1000)


class DingTalkChannel:
    """Posts markdown to DingTalk robots; the timestamp is the machine's real time (DingTalk allows 1 h of skew)."""

    kind = "dingtalk"

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout_s: float = 10.0,
        now_ms: Callable[[], int] = _wall_ms,
        client: httpx.Client | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/robot/send"
        self._now_ms = now_ms
        self._client = client or new_client(timeout_s)
        self._base_url = base_url

    def post(self, robot: Robot, message: ChannelMessage) -> None:
        """Post one markdown message, signed when the robot has a secret."""
        if robot.kind != self.kind:
            raise PermanentChannelError(f"robot {robot.name} is a {robot.kind} robot, not DingTalk")
        params = {"access_token": robot.token.get_secret_value()}
        if robot.secret is not None:
            timestamp = self._now_ms()
            params["timestamp"] = str(timestamp)
            params["sign"] = sign(robot.secret.get_secret_value(), timestamp)  # httpx URL-encodes it
        body = {
            "msgtype": "markdown",
            "markdown": {
                "title": message.title[:100] or "通知",
                "text": fit_utf8(message.markdown, MAX_TEXT_BYTES),
            },
        }
        post_json(
            self._client, self._url, params=params, body=body, rate_limited=RATE_LIMITED, permanent=PERMANENT
        )

    def health(self) -> dict[str, Any]:
        """Configured, no probe (a probe would be a message in somebody's group)."""
        return {"backend": "dingtalk", "ok": True, "base_url": self._base_url}

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()
