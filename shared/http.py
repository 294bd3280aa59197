"""HTTP helpers shared by the service APIs: bilingual errors (answered as shared/problems.py envelopes) and UTC
times (health: shared/health.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import HTTPException
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
