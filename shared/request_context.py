"""Where a request comes from: its id (X-Request-ID) and the client's address.

Both the token check (shared/auth.py installs the middleware) and the audit log (shared/audit.py stores
what `request_info` returns) need this, so it lives on its own and neither imports the other for it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # an incoming X-Request-ID is kept only if sane


@dataclass(frozen=True)
class RequestInfo:
    """Where a request came from: the client's address and the request id."""

    client_ip: str | None = None
    request_id: str | None = None


class RequestContextMiddleware:
    """Gives every HTTP request an id (a sane incoming X-Request-ID, else a new one) and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = state.get("request_id")  # set already when an outer app (embedded root) ran us
        if request_id is None:
            incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
            request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
            state["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode("latin-1"))]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_info(request: Request) -> RequestInfo:
    """The client address (as the ASGI server resolved it, proxy headers included) and request id."""
    request_id = getattr(request.state, "request_id", None)
    return RequestInfo(client_ip=request.client.host if request.client else None, request_id=request_id)
