"""A local DingTalk and WeCom robot API in the test process: checks what the real APIs check, records every post.

DingTalk (`POST /robot/send?access_token=T[&timestamp=ms&sign=S]`): an unknown token answers 300001; for a robot
with a secret (加签) the timestamp must be within an hour of now and `sign` must be the URL-encoded base64
HMAC-SHA256 of "<timestamp>\\n<secret>" keyed with the secret, else 310000. WeCom
(`POST /cgi-bin/webhook/send?key=K`): an unknown key answers 93000, markdown content over 4096 bytes 40058.
Both: the body must be JSON with a known msgtype and its fields, and each robot takes at most `per_minute`
posts in any minute (DingTalk 130101, WeCom 45009 beyond). A test can queue answers (`answer_next`) to play a
refusal, a permanent error or an HTTP failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import LOCALHOST

RATE_LIMITED = {"dingtalk": 130101, "wecom": 45009}


@dataclass(frozen=True)
class Post:
    """One post the server accepted."""

    platform: str  # dingtalk or wecom
    robot: str  # the access_token or key it was posted with
    query: dict[str, str]
    body: dict[str, Any]
    raw: bytes

    @property
    def text(self) -> str:
        """The markdown (or text) shown in the group."""
        payload = self.body[self.body["msgtype"]]
        return payload.get("text") or payload.get("content") or ""


@dataclass
class RobotServer:
    """The server's state: robots it knows, posts it accepted, answers queued by the test."""

    host: str = LOCALHOST
    port: int = 0
    dingtalk: dict[str, str | None] = field(default_factory=dict)  # access_token -> secret (None: unsigned)
    wecom: set[str] = field(default_factory=set)  # webhook keys
    per_minute: int = 20
    posts: list[Post] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)  # (platform, errcode) of every refusal
    _answers: deque[tuple[str | None, int, dict[str, Any]]] = field(default_factory=deque)
    _recent: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """The base URL to put in DINGTALK_BASE_URL and WECOM_BASE_URL."""
        return f"http://{self.host}:{self.port}"

    def answer_next(
        self, errcode: int, *, status: int = 200, times: int = 1, platform: str | None = None
    ) -> None:
        """Answer the next `times` posts (to `platform`, or any) with this errcode or HTTP status, recording none."""
        with self._lock:
            for _ in range(times):
                self._answers.append(
                    (platform, status, {"errcode": errcode, "errmsg": "scripted by the test"})
                )

    def handle(self, path: str, raw: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
        """Check and record one request; the HTTP status and JSON reply."""
        parts = urlsplit(path)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        platform = "dingtalk" if parts.path == "/robot/send" else "wecom"
        with self._lock:
            for scripted in self._answers:
                if scripted[0] in (None, platform):
                    self._answers.remove(scripted)
                    self.refused.append((platform, int(scripted[2]["errcode"])))
                    return scripted[1], scripted[2]
        if parts.path == "/robot/send":
            platform, robot, error = "dingtalk", query.get("access_token", ""), self._check_dingtalk(query)
        elif parts.path == "/cgi-bin/webhook/send":
            platform, robot = "wecom", query.get("key", "")
            error = None if robot in self.wecom else (93000, "invalid webhook url")
        else:
            return 404, {"errcode": 404, "errmsg": "not found"}
        if error is None:
            error, body = self._check_body(platform, raw, content_type)
        if error is None:
            error = self._count(platform, robot)
        if error is not None:
            with self._lock:
                self.refused.append((platform, error[0]))
            return 200, {"errcode": error[0], "errmsg": error[1]}
        with self._lock:
            self.posts.append(Post(platform=platform, robot=robot, query=query, body=body, raw=raw))
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _check_dingtalk(self, query: dict[str, str]) -> tuple[int, str] | None:
        token = query.get("access_token", "")
        if token not in self.dingtalk:
            return 300001, "token is not exist"
        secret = self.dingtalk[token]
        if secret is None:
            return None
        stamp, sign = query.get("timestamp", ""), query.get("sign", "")
        if not stamp.isdigit() or abs(int(stamp) - time.time() * 1000) > 3600 * 1000:
            return 310000, "invalid timestamp"
        digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
        # parse_qs has already undone the URL encoding, as DingTalk does before comparing
        if not hmac.compare_digest(base64.b64encode(digest).decode(), sign):
            return 310000, "sign not match"
        return None

    def _check_body(
        self, platform: str, raw: bytes, content_type: str
    ) -> tuple[tuple[int, str] | None, dict[str, Any]]:
        if not content_type.startswith("application/json"):
            return (40008 if platform == "wecom" else 40035, "content type must be application/json"), {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return (40008 if platform == "wecom" else 40035, "invalid json"), {}
        kind = body.get("msgtype") if isinstance(body, dict) else None
        if platform == "dingtalk":
            fields = {"markdown": ("title", "text"), "text": ("content",)}.get(str(kind))
        else:
            fields = {"markdown": ("content",), "text": ("content",)}.get(str(kind))
        payload = body.get(str(kind)) if fields else None
        if not fields or not isinstance(payload, dict):
            return (40008 if platform == "wecom" else 40035, "invalid msgtype"), body
        if any(not isinstance(payload.get(name), str) or not payload[name] for name in fields):
            return (44004 if platform == "wecom" else 40035, "missing field"), body
        if platform == "wecom" and len(payload["content"].encode("utf-8")) > 4096:
            return (40058, "content exceed max length 4096"), body
        return None, body

    def _count(self, platform: str, robot: str) -> tuple[int, str] | None:
        now = time.monotonic()
        with self._lock:
            recent = self._recent.setdefault(f"{platform}:{robot}", deque())
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= self.per_minute:
                return RATE_LIMITED[platform], "send too fast"
            recent.append(now)
        return None


@contextmanager
def robot_server(**options: Any) -> Iterator[RobotServer]:
    """Serve a RobotServer on a free local port for the duration of the block."""
    state = RobotServer(**options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            status, reply = state.handle(self.path, raw, self.headers.get("Content-Type", ""))
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="robot-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
