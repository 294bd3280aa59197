"""WeCom group robot (企业微信群机器人) webhooks.

POST {base}/cgi-bin/webhook/send?key=KEY with `{"msgtype": "markdown", "markdown": {"content": ...}}` (content at
most 4096 bytes of UTF-8); 20 messages a minute per robot (errcode 45009 beyond); 93000 is an invalid key.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.channels.port import ChannelMessage, PermanentChannelError, Robot, fit_utf8
from shared.channels.webhook import new_client, post_json

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
RATE_LIMITED = (45009,)
# 93000 invalid webhook key; 40008 invalid message type; 40058 bad parameter; 44004 empty content; 45002 too long
PERMANENT = (93000, 93004, 40008, 40058, 44004, 45002)
MAX_CONTENT_BYTES = 4096


class WeComChannel:
    """Posts markdown to WeCom group robots."""

    kind = "wecom"

    def __init__(
        self, base_url: str = DEFAULT_BASE_URL, *, timeout_s: float = 10.0, client: httpx.Client | None = None
    ) -> None:
        self._url = base_url.rstrip("/") + "/cgi-bin/webhook/send"
        self._client = client or new_client(timeout_s)
        self._base_url = base_url

    def post(self, robot: Robot, message: ChannelMessage) -> None:
        """Post one markdown message (cut to 4096 bytes; WeCom shows no title, so the text carries it)."""
        if robot.kind != self.kind:
            raise PermanentChannelError(f"robot {robot.name} is a {robot.kind} robot, not WeCom")
        body = {"msgtype": "markdown", "markdown": {"content": fit_utf8(message.markdown, MAX_CONTENT_BYTES)}}
        post_json(
            self._client,
            self._url,
            params={"key": robot.token.get_secret_value()},
            body=body,
            rate_limited=RATE_LIMITED,
            permanent=PERMANENT,
        )

    def health(self) -> dict[str, Any]:
        """Configured, no probe (a probe would be a message in somebody's group)."""
        return {"backend": "wecom", "ok": True, "base_url": self._base_url}

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()
