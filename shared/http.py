"""HTTP helpers shared by the service APIs: bilingual errors and UTC times (health: shared/health.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator

from shared.clock import as_utc

# A time in an API model: always shown as UTC, also when SQLite handed it back naive.
UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]


class ApiError(HTTPException):
    """An error whose body names a stable code, a Chinese message for users and an English one."""

    def __init__(self, status_code: int, code: str, message: str, message_en: str) -> None:
        # The same dict as `detail`, typed (Starlette types detail as str): code, message, message_en and any extras.
        self.info: dict[str, Any] = {"code": code, "message": message, "message_en": message_en}
        super().__init__(status_code=status_code, detail=self.info)


def not_found(what: str, what_en: str, ident: str) -> ApiError:
    """404 for an unknown resource."""
    return ApiError(404, "not_found", f"{what}不存在：{ident}", f"{what_en} not found: {ident}")


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with FastAPI's error list and a Chinese message; undecodable bytes in a bad body are shown, not a 500."""
    detail = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda raw: raw.decode("utf-8", "replace")})
    return JSONResponse(status_code=422, content={
        "detail": detail, "code": "invalid_request", "message": "请求内容不符合要求，请按 detail 中列出的字段修改后重试",
        "message_en": "the request does not match the expected shape; see detail"})
