"""Login throttling: exponential back-off per username and per client address, and a temporary lockout.

Each wrong password counts against the username (existing or not, so answers reveal nothing) and the
client address. Past a few free failures the next attempt must wait base x 2^n seconds (429 with
Retry-After); after auth_lockout_failures in a row the username is locked for auth_lockout_s (audited
as auth.locked, listed at GET /auth/lockouts, lifted by an admin with DELETE /auth/lockouts/{username}).
A blocked attempt is refused before its password is hashed, so a flood costs no argon2 memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.intake.models import Base
from shared.clock import as_utc
from shared.http import ApiError
from shared.settings import Settings

USER, ADDRESS = "user", "ip"


class LoginThrottle(Base):
    """Recent failed logins of one username or one client address, and until when it must wait."""

    __tablename__ = "login_throttles"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # "user:<username>" or "ip:<address>"
    kind: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(190))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class Keys:
    """The throttle rows one login attempt counts against."""

    username: str
    client_ip: str | None

    @property
    def all(self) -> list[str]:
        """Row keys: the username's, and the address's when known."""
        return [f"{USER}:{self.username}"] + ([f"{ADDRESS}:{self.client_ip}"] if self.client_ip else [])


def ensure_allowed(uow: Session, keys: Keys, now: datetime) -> None:
    """Raise 429 (with Retry-After) when the username is locked or either key is in back-off."""
    for row in uow.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys.all))):
        locked = as_utc(row.locked_until) if row.locked_until else None
        if locked and locked > now:
            raise _too_many(
                "account_locked",
                locked - now,
                "该用户名因多次密码错误已被临时锁定，请稍后再试，或请管理员解锁",
                "this username is temporarily locked after repeated wrong passwords; retry later or ask an admin",
            )
        blocked = as_utc(row.blocked_until) if row.blocked_until else None
        if blocked and blocked > now:
            raise _too_many(
                "login_throttled",
                blocked - now,
                "登录失败次数过多，请稍后再试",
                "too many failed logins; retry later",
            )


def record_failure(uow: Session, keys: Keys, now: datetime, settings: Settings) -> datetime | None:
    """Count a failed attempt against each key; returns the lockout's end when this failure locked the username."""
    locked_until = None
    for key in keys.all:
        row = _row(uow, key, now)
        if now - as_utc(row.last_failure_at) > timedelta(seconds=settings.auth_failure_window_s):
            row.failures, row.blocked_until, row.locked_until = 0, None, None
        row.failures += 1
        row.last_failure_at = now
        free = settings.auth_free_failures if row.kind == USER else settings.auth_ip_free_failures
        if row.failures >= free:
            wait = min(
                settings.auth_backoff_base_s * 2 ** min(row.failures - free, 40), settings.auth_backoff_max_s
            )
            row.blocked_until = now + timedelta(seconds=wait)
        if (
            row.kind == USER
            and row.failures >= settings.auth_lockout_failures
            and not _active(row.locked_until, now)
        ):
            row.locked_until = locked_until = now + timedelta(seconds=settings.auth_lockout_s)
    return locked_until


def record_success(uow: Session, keys: Keys) -> None:
    """A right password forgets the username's failures (the address's decay with time)."""
    row = uow.get(LoginThrottle, keys.all[0])
    if row is not None:
        uow.delete(row)


def lockouts(uow: Session, now: datetime) -> list[LoginThrottle]:
    """Usernames locked right now, and usernames and addresses in back-off, latest failure first."""
    rows = uow.scalars(select(LoginThrottle).order_by(LoginThrottle.last_failure_at.desc()))
    return [row for row in rows if _active(row.locked_until, now) or _active(row.blocked_until, now)]


def lift(uow: Session, username: str) -> LoginThrottle | None:
    """Remove a username's lockout and back-off; returns the row that was lifted (None: nothing to lift)."""
    row = uow.get(LoginThrottle, f"{USER}:{username.lower()}")
    if row is not None:
        uow.delete(row)
    return row


def _row(uow: Session, key: str, now: datetime) -> LoginThrottle:
    row = uow.get(LoginThrottle, key, with_for_update=True)
    if row is not None:
        return row
    kind, subject = key.split(":", 1)
    try:
        with uow.begin_nested():  # two first failures at once: the loser reads the winner's row
            row = LoginThrottle(key=key, kind=kind, subject=subject[:190], failures=0, last_failure_at=now)
            uow.add(row)
    except IntegrityError:
        row = uow.get(LoginThrottle, key, with_for_update=True, populate_existing=True)
        if row is None:  # inserted and deleted again meanwhile: a lift raced this failure
            raise
    return row


def _active(until: datetime | None, now: datetime) -> bool:
    return until is not None and as_utc(until) > now


def _too_many(code: str, wait: timedelta, message: str, message_en: str) -> ApiError:
    seconds = max(1, math.ceil(wait.total_seconds()))
    minutes = max(1, math.ceil(seconds / 60))
    error = ApiError(429, code, f"{message}（约 {minutes} 分钟后可再试）", f"{message_en} (in {seconds} s)")
    error.headers = {"Retry-After": str(seconds)}
    return error
