"""One error envelope for every status of every service: RFC 9457 problem details (application/problem+json).

Every error answer carries `code` (stable, for programs), `message` (Chinese, for users), `message_en`,
`request_id` (also in the X-Request-ID header) and, for 422, `errors` listing the fields to fix. The
RFC's own members are filled too: `title` (the HTTP reason phrase), `status`, `detail` (= message) and
`instance` (the request path). A 422 never echoes the value of a secret field (password, token, key).
`install(app)` adds the handlers, a catch-all that answers 500 in the same envelope (trace logged, the
connection kept usable; 503 `database_unavailable` with Retry-After when the database is unreachable) and
declares the envelope in the app's OpenAPI. See docs/security.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import first_line

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# A field whose name matches is never echoed back in a 422 (nor any dict or list that might contain one).
SECRET_FIELD = re.compile(r"pass|secret|token|key|credential|authorization|cookie", re.IGNORECASE)
MAX_ECHO = 200  # characters of a rejected (non-secret, scalar) value shown back
RESERVED = {"type", "title", "status", "detail", "instance", "code", "message", "message_en", "request_id"}
# Reasons for statuses that come without our own code (Starlette's 404/405, a bare HTTPException).
DEFAULTS = {
    400: ("bad_request", "请求有误", "bad request"),
    401: ("unauthenticated", "请先登录", "authentication required"),
    403: ("forbidden", "当前角色无权执行此操作", "your role may not do this"),
    404: ("route_not_found", "请求的地址不存在", "no such route"),
    405: ("method_not_allowed", "该地址不支持此请求方法", "method not allowed"),
    406: ("not_acceptable", "无法提供所要求的格式", "not acceptable"),
    413: ("too_large", "请求内容过大", "request body too large"),
    415: ("unsupported_media_type", "不支持的内容类型", "unsupported media type"),
    429: ("too_many_requests", "请求过于频繁，请稍后再试", "too many requests; retry later"),
    500: (
        "internal_error",
        "服务器内部错误，已记录；请稍后重试，如仍失败请联系管理员并提供请求编号",
        "internal error (logged); retry later or give the request id to an administrator",
    ),
    503: ("unavailable", "服务暂不可用，请稍后重试", "service unavailable; retry later"),
}


DATABASE_UNAVAILABLE = (
    "database_unavailable",
    "数据库暂时无法连接，请稍后重试",
    "the database is unreachable for the moment; retry shortly",
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database could not be reached or dropped the connection (worth a retry)."""
    return isinstance(exc, OperationalError) or bool(getattr(exc, "connection_invalidated", False))


class FieldError(BaseModel):
    """One field to fix in a 422: where (loc), what kind of error (type) and why (msg)."""

    model_config = ConfigDict(extra="allow")
    loc: list[str | int] = Field(default_factory=list)
    type: str | None = None
    msg: str | None = None


class Problem(BaseModel):
    """The error body of every service (RFC 9457 problem details plus the platform's bilingual members)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field("about:blank", description="问题类型 URI；about:blank 表示以 HTTP 状态为准")
    title: str = Field(description="HTTP 状态短语 · the HTTP reason phrase")
    status: int = Field(ge=100, le=599)
    detail: str = Field(description="给用户看的中文说明（同 message）")
    instance: str | None = Field(None, description="出错的请求路径")
    code: str = Field(description="稳定的错误代码，供程序判断 · stable error code")
    message: str = Field(description="中文说明 · Chinese message for users")
    message_en: str = Field(description="English message")
    request_id: str | None = Field(None, description="请求编号（同响应头 X-Request-ID）")
    errors: list[dict[str, Any]] | None = Field(None, description="422：需要修改的字段（loc/type/msg）")


def problem_response(
    request: Request | None,
    status: int,
    code: str,
    message: str,
    message_en: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An application/problem+json answer in the platform's envelope."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _phrase(status),
        "status": status,
        "detail": message,
        "instance": request.url.path if request is not None else None,
        "code": code,
        "message": message,
        "message_en": message_en,
        "request_id": _request_id(request),
    }
    body.update({key: value for key, value in extra.items() if key not in RESERVED})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's error list made safe to send back: loc/type/msg, and the input only when short and not secret."""
    shown = []
    for error in errors:
        loc = [part if isinstance(part, (int, str)) else str(part) for part in error.get("loc", ())]
        item: dict[str, Any] = {
            "loc": loc,
            "type": str(error.get("type", "")),
            "msg": str(error.get("msg", "")),
        }
        value = error.get("input")
        if not any(isinstance(part, str) and SECRET_FIELD.search(part) for part in loc):
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, str):
                item["input"] = value[:MAX_ECHO]
            elif isinstance(value, (int, float, bool)):
                item["input"] = value if not isinstance(value, int) or abs(value) < 2**53 else str(value)
        shown.append(item)
    return shown


async def _api_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail
    if isinstance(detail, dict) and {"code", "message", "message_en"} <= detail.keys():
        extra = {key: value for key, value in detail.items() if key not in ("code", "message", "message_en")}
        return problem_response(
            request,
            exc.status_code,
            detail["code"],
            detail["message"],
            detail["message_en"],
            headers=getattr(exc, "headers", None),
            **extra,
        )
    code, message, message_en = DEFAULTS.get(
        exc.status_code, (f"http_{exc.status_code}", _phrase(exc.status_code), _phrase(exc.status_code))
    )
    if isinstance(detail, str) and detail and detail != _phrase(exc.status_code):
        message_en = detail
    return problem_response(
        request, exc.status_code, code, message, message_en, headers=getattr(exc, "headers", None)
    )


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return problem_response(
        request,
        422,
        "invalid_request",
        "请求内容不符合要求，请按 errors 中列出的字段修改后重试",
        "the request does not match the expected shape; see errors",
        errors=field_errors(exc.errors()),
    )


class CatchAllMiddleware:
    """Answers 500 in the envelope for any unexpected exception (trace logged) instead of dropping the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            request = Request(scope)
            if not started and database_unavailable(exc):
                # A restart or failover of the database (a pool replaces its connections after the first
                # failure): the client should simply try again, and the operator sees a warning, not a trace.
                log.warning(
                    "database unavailable on %s %s (request %s), answered 503: %s",
                    scope.get("method"),
                    scope.get("path"),
                    _request_id(request),
                    first_line(exc),
                )
                code, message, message_en = DATABASE_UNAVAILABLE
                await problem_response(request, 503, code, message, message_en, headers={"Retry-After": "1"})(
                    scope, receive, send
                )
                return
            log.exception(
                "unexpected error on %s %s (request %s)",
                scope.get("method"),
                scope.get("path"),
                _request_id(request),
            )
            if started:  # half an answer was sent: nothing valid can follow, the server closes the connection
                raise
            code, message, message_en = DEFAULTS[500]
            await problem_response(request, 500, code, message, message_en)(scope, receive, send)


def install(app: FastAPI) -> None:
    """Answer every error of this app in the envelope and declare it in the app's OpenAPI."""
    if getattr(app.state, "problems_installed", False):
        return
    app.state.problems_installed = True
    # Starlette types handlers as taking any Exception; each of these is only called with its own type.
    app.add_exception_handler(StarletteHTTPException, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_middleware(CatchAllMiddleware)
    _declare_in_openapi(app)


def _declare_in_openapi(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                if "422" in responses:
                    responses["422"] = {
                        "description": "请求内容不符合要求 · validation error (fields in errors)",
                        "content": content,
                    }
                for status, response in responses.items():
                    if status[:1] in "45" and "content" not in response:
                        response["content"] = content
                responses.setdefault(
                    "default",
                    {"description": "错误（统一格式）· error in the platform's envelope", "content": content},
                )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _request_id(request: Request | None) -> str | None:
    if request is None:
        return None
    request_id = request.scope.get("state", {}).get("request_id")
    return str(request_id) if request_id else None
