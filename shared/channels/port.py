"""The channel port: post one markdown message to a group robot, telling rate limits and permanent errors apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class TemporaryChannelError(RuntimeError):
    """Worth retrying later (connection refused, timeout, 5xx, the platform busy)."""


class ChannelRateLimited(TemporaryChannelError):
    """The platform refused the post for sending too fast (DingTalk 130101, WeCom 45009, HTTP 429)."""


class PermanentChannelError(RuntimeError):
    """Retrying will not help: a wrong signature, an unknown token or key, a malformed message."""


class Robot(BaseModel):
    """One group robot: its platform, its webhook credential and (DingTalk 加签) its signing secret.

    `token` is DingTalk's access_token or WeCom's webhook key. `units` and `campaigns` name (by code) whose
    notices it posts: a unit's own group, or a campaign's group that hears about every unit of the campaign.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str = Field(pattern="^(dingtalk|wecom)$")
    token: SecretStr
    secret: SecretStr | None = None
    units: tuple[str, ...] = ()
    campaigns: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        """What an operator may see: everything but the token and the secret."""
        return {
            "name": self.name,
            "kind": self.kind,
            "signed": self.secret is not None,
            "units": list(self.units),
            "campaigns": list(self.campaigns),
        }


@dataclass(frozen=True)
class ChannelMessage:
    """A post: a title (DingTalk shows it in the chat list) and markdown text."""

    title: str
    markdown: str


class Channel(Protocol):
    """Posts messages to one platform's group robots."""

    kind: str

    def post(self, robot: Robot, message: ChannelMessage) -> None:
        """Post one message or raise TemporaryChannelError (ChannelRateLimited) / PermanentChannelError."""

    def health(self) -> dict[str, Any]:
        """The adapter's state for /healthz (no request is made to the platform)."""


def fit_utf8(text: str, max_bytes: int, tail: str = "\n\n……（内容过长，已截断）") -> str:
    """The text, cut on a character boundary with `tail` added, so that it is at most max_bytes of UTF-8."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    room = max_bytes - len(tail.encode("utf-8"))
    return text.encode("utf-8")[:room].decode("utf-8", errors="ignore") + tail
