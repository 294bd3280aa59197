"""What DingTalk and WeCom robots share: a JSON POST, and a reply `{"errcode": 0, "errmsg": "ok"}`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import httpx

from shared.channels.port import ChannelRateLimited, PermanentChannelError, TemporaryChannelError


def post_json(
    client: httpx.Client,
    url: str,
    *,
    params: dict[str, str],
    body: dict[str, Any],
    rate_limited: Collection[int],
    permanent: Collection[int],
) -> None:
    """POST the body and read the platform's errcode; raise the port's error for anything but errcode 0.

    The URL and query (which hold the token and signature) never go into an error message.
    """
    try:
        response = client.post(url, params=params, json=body)
    except httpx.TimeoutException as exc:
        raise TemporaryChannelError(f"timeout: {type(exc).__name__}") from exc
    except httpx.HTTPError as exc:
        raise TemporaryChannelError(f"connection failed: {type(exc).__name__}") from exc
    if response.status_code == 429:
        raise ChannelRateLimited("HTTP 429 too many requests")
    if response.status_code >= 500:
        raise TemporaryChannelError(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise PermanentChannelError(f"HTTP {response.status_code}")
    try:
        reply = response.json()
        code = int(reply.get("errcode", -1))
        message = str(reply.get("errmsg", ""))[:300]
    except (ValueError, AttributeError, TypeError) as exc:
        raise TemporaryChannelError(f"unreadable reply (HTTP {response.status_code})") from exc
    if code == 0:
        return
    if code in rate_limited:
        raise ChannelRateLimited(f"errcode {code}: {message}")
    if code in permanent:
        raise PermanentChannelError(f"errcode {code}: {message}")
    raise TemporaryChannelError(f"errcode {code}: {message}")


def new_client(timeout_s: float) -> httpx.Client:
    """An HTTP client with the timeout for connecting and for each read; no proxies from the environment."""
    return httpx.Client(timeout=httpx.Timeout(timeout_s), trust_env=False, follow_redirects=False)
