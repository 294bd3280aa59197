"""Identity in intake: users with argon2 password hashes, units' API keys, and the use cases that issue tokens.

The tables live on intake's own metadata (and so in intake's migrations, services/intake/migrations).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import Boolean, DateTime, ForeignKey, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.intake import throttle
from services.intake.models import Base, Unit
from shared import audit
from shared.auth import ADMIN, ROLES, UNIT, Principal, TokenIssuer, ensure_visible, unauthenticated
from shared.events import new_id
from shared.http import ApiError, UtcDateTime, not_found
from shared.request_context import RequestInfo
from shared.runtime import ServiceContext
from shared.settings import Settings

AUDIT = audit.audit_table(Base.metadata)
API_KEY_PREFIX = "cek_"
MIN_PASSWORD = 10
log = logging.getLogger(__name__)


class User(Base):
    """A person who logs in: campaign office staff, or a unit's liaison (role unit, bound to its unit)."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"), nullable=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiKey(Base):
    """A unit's revocable key for scripted uploads; only its SHA-256 is kept, the key is shown once."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(100))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# ---------------------------------------------------------------- API models


class UserCreate(BaseModel):
    """A new user; a unit user is bound to its unit."""

    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{3,64}$")
    display_name: str = Field(min_length=1, max_length=100)
    role: str = Field(pattern="^(admin|reviewer|inspector|unit)$")
    unit_id: str | None = Field(None, max_length=36)
    password: str = Field(min_length=MIN_PASSWORD, max_length=200)

    @field_validator("username")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @model_validator(mode="after")
    def _unit_matches_role(self) -> UserCreate:
        if (self.role == UNIT) != bool(self.unit_id):
            raise ValueError("unit_id is required for role unit and not allowed for other roles")
        return self


class UserRead(BaseModel):
    """A user as the API shows it (never the hash)."""

    model_config = {"from_attributes": True}
    id: str
    username: str
    display_name: str
    role: str
    unit_id: str | None
    active: bool
    created_at: UtcDateTime
    last_login_at: UtcDateTime | None


class Login(BaseModel):
    """Username and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    """A bearer token (OAuth2 style)."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


class ApiKeyCreate(BaseModel):
    """A label telling what the key is for (e.g. the upload script's host)."""

    label: str = Field(min_length=1, max_length=100)


class ApiKeyRead(BaseModel):
    """An API key's metadata; the key itself is never shown again."""

    model_config = {"from_attributes": True}
    id: str
    unit_id: str
    label: str
    prefix: str
    created_at: UtcDateTime
    created_by: str
    revoked_at: UtcDateTime | None
    last_used_at: UtcDateTime | None


class ApiKeyCreated(ApiKeyRead):
    """A new API key with its plaintext, shown exactly once."""

    key: str


# ---------------------------------------------------------------- passwords


@lru_cache(maxsize=4)
def _hasher(time_cost: int = 3, memory_kib: int = 65536) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


def _hasher_for(settings: Settings | None) -> PasswordHasher:
    # A hash records its own parameters: changing the settings never locks anyone out, and a login rehashes.
    return (
        _hasher()
        if settings is None
        else _hasher(settings.auth_hash_time_cost, settings.auth_hash_memory_kib)
    )


@lru_cache(maxsize=8)
def _hash_slots(size: int) -> threading.BoundedSemaphore:
    # Each argon2 hash takes AUTH_HASH_MEMORY_KIB: a burst of logins waits for a slot, not exhausting memory.
    return threading.BoundedSemaphore(size)


@contextmanager
def _hash_slot(settings: Settings) -> Iterator[None]:
    slots = _hash_slots(settings.auth_max_concurrent_hashes)
    if not slots.acquire(timeout=settings.auth_hash_wait_s):
        log.warning(
            "every password-hashing slot stayed busy for %ss: login answered 503", settings.auth_hash_wait_s
        )
        error = ApiError(503, "busy", "登录请求过多，请稍后再试", "too many logins at once; retry shortly")
        error.headers = {"Retry-After": "5"}
        raise error
    try:
        yield
    finally:
        slots.release()


PASSWORD_RULES = (
    "密码至少 10 个字符；不能包含用户名或姓名；不能是常见密码、键盘序列、重复或连续字符"
    "（如 1234567890、password12、qwertyuiop）。建议用几个不相关的词或一句话组成。"
)
MIN_STRENGTH = 3  # zxcvbn score 0-4: 3 = "safely unguessable" against an online attack


def password_problem(password: str, *, username: str, display_name: str = "") -> ApiError | None:
    """Why a new password is too weak (None when it is fine): checked with zxcvbn and against the user's names."""
    from zxcvbn import zxcvbn  # type: ignore[import-untyped]

    lowered = password.lower()
    names = [name.lower() for name in (username, display_name) if name and len(name) >= 3]
    if len(password) < MIN_PASSWORD or not password.strip():
        reason, reason_en = "太短", "too short"
    elif any(name in lowered for name in names):
        reason, reason_en = "包含了用户名或姓名", "it contains the user name"
    elif zxcvbn(password[:72], user_inputs=names)["score"] < MIN_STRENGTH:
        reason, reason_en = "太简单、太常见，容易被猜中", "too easy to guess"
    else:
        return None
    return ApiError(
        422,
        "weak_password",
        f"密码强度不足：{reason}。{PASSWORD_RULES}",
        f"weak password: {reason_en}; use 10+ characters, not your name, not a common or patterned password",
    )


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    # Unknown usernames are checked against this, so they cost as much time as a wrong password.
    return _hasher(time_cost, memory_kib).hash(secrets.token_urlsafe(16))


def _dummy_for(settings: Settings) -> str:
    return _dummy_hash(settings.auth_hash_time_cost, settings.auth_hash_memory_kib)


def hash_password(password: str, settings: Settings | None = None) -> str:
    """An argon2id hash of a password (within the bound on concurrent hashes when settings are given)."""
    if settings is None:
        return _hasher().hash(password)
    with _hash_slot(settings):
        return _hasher_for(settings).hash(password)


def _password_ok(stored: str, password: str, settings: Settings) -> bool:
    with _hash_slot(settings):
        try:
            return _hasher_for(settings).verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- use cases


def create_user(
    command: UserCreate,
    *,
    ctx: ServiceContext,
    principal: Principal | None,
    request: RequestInfo | None = None,
) -> User:
    """Add a user (an admin's act, or the CLI's for the first admin); audited as user.created."""
    if command.role not in ROLES:
        raise ApiError(422, "invalid_role", f"未知角色：{command.role}", f"unknown role: {command.role}")
    weak = password_problem(command.password, username=command.username, display_name=command.display_name)
    if weak is not None:
        raise weak
    password_hash = hash_password(command.password, ctx.settings)  # outside the transaction: hashing is slow
    try:
        with ctx.db.transaction() as uow:
            if command.unit_id and uow.get(Unit, command.unit_id) is None:
                raise not_found("单位", "unit", command.unit_id)
            if uow.scalar(select(User.id).where(User.username == command.username)):
                raise _duplicate_user(command.username)
            user = User(
                id=new_id(),
                username=command.username,
                display_name=command.display_name,
                role=command.role,
                unit_id=command.unit_id,
                password_hash=password_hash,
                active=True,
                created_at=ctx.clock.now(),
            )
            uow.add(user)
            uow.flush()
            audit.record(
                uow,
                AUDIT,
                principal=principal,
                action="user.created",
                resource=("user", user.id),
                detail={"username": user.username, "role": user.role, "unit_id": user.unit_id},
                request=request,
            )
    except IntegrityError:
        raise _duplicate_user(command.username) from None
    return user


def login(
    command: Login, *, ctx: ServiceContext, issuer: TokenIssuer, request: RequestInfo | None = None
) -> TokenOut:
    """Check a password and issue a token; unknown user, wrong password and disabled user all give the same 401.

    Throttled per username and client address (services/intake/throttle.py): 429 with Retry-After.
    """
    username = command.username.lower()
    keys = throttle.Keys(username=username, client_ip=request.client_ip if request else None)
    with ctx.db.session() as uow:
        throttle.ensure_allowed(uow, keys, ctx.clock.now())
        user = uow.scalar(select(User).where(User.username == username))
        user_id, stored = (user.id, user.password_hash) if user else (None, _dummy_for(ctx.settings))
    ok = _password_ok(stored, command.password, ctx.settings)  # no transaction open while argon2 runs
    rehash = (
        hash_password(command.password, ctx.settings)
        if ok and _hasher_for(ctx.settings).check_needs_rehash(stored)
        else None
    )
    now = ctx.clock.now()
    with ctx.db.transaction() as uow:
        user = uow.get(User, user_id) if user_id else None
        if not (
            user and ok and user.password_hash == stored and user.active and _unit_active(uow, user.unit_id)
        ):
            audit.record(
                uow,
                AUDIT,
                principal=None,
                action="auth.login_failed",
                resource=("user", user_id),
                detail={"username": username},
                request=request,
            )
            locked_until = throttle.record_failure(uow, keys, now, ctx.settings)
            if locked_until is not None:
                log.warning(
                    "username %r locked until %s after repeated wrong passwords",
                    username,
                    locked_until.isoformat(),
                )
                audit.record(
                    uow,
                    AUDIT,
                    principal=None,
                    action="auth.locked",
                    resource=("user", user_id),
                    detail={"username": username, "until": locked_until.isoformat()},
                    request=request,
                )
            failed = True
        else:
            failed = False
            throttle.record_success(uow, keys)
            if rehash:
                user.password_hash = rehash
            user.last_login_at = now
            unit_path = _unit_path(uow, user.unit_id) if user.role == UNIT else None
            ttl = ctx.settings.auth_token_ttl_s
            token = issuer.issue(
                subject=user.id,
                name=user.display_name,
                role=user.role,
                ttl_s=ttl,
                unit_id=user.unit_id if user.role == UNIT else None,
                unit_path=unit_path,
            )
            audit.record(
                uow,
                AUDIT,
                principal=_as_principal(user, unit_path),
                action="auth.login",
                resource=("user", user.id),
                request=request,
            )
    if failed:  # raised after commit, so the failed attempt stays in the audit log
        raise unauthenticated("login_failed", "用户名或密码错误", "wrong username or password")
    return TokenOut(access_token=token, expires_in=ttl)


def list_lockouts(*, ctx: ServiceContext) -> list[throttle.LoginThrottle]:
    """Usernames locked and usernames/addresses in login back-off right now (for admins)."""
    with ctx.db.session() as uow:
        return throttle.lockouts(uow, ctx.clock.now())


def lift_lockout(
    username: str, *, ctx: ServiceContext, principal: Principal, request: RequestInfo | None = None
) -> None:
    """Lift a username's lockout and back-off at once (an admin's act, audited as auth.unlocked)."""
    with ctx.db.transaction() as uow:
        row = throttle.lift(uow, username)
        if row is None:
            raise not_found("锁定记录", "lockout", username)
        user_id = uow.scalar(select(User.id).where(User.username == username.lower()))
        audit.record(
            uow,
            AUDIT,
            principal=principal,
            action="auth.unlocked",
            resource=("user", user_id),
            detail={"username": username.lower(), "failures": row.failures},
            request=request,
        )


def create_api_key(
    unit_id: str,
    command: ApiKeyCreate,
    *,
    ctx: ServiceContext,
    principal: Principal,
    request: RequestInfo | None = None,
) -> ApiKeyCreated:
    """Make a new API key for a unit in the caller's subtree; the plaintext is returned only here."""
    _no_keys_from_keys(principal)
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    with ctx.db.transaction() as uow:
        unit = uow.get(Unit, unit_id)
        _ensure_unit_visible(uow, principal, unit, unit_id)
        row = ApiKey(
            id=new_id(),
            unit_id=unit_id,
            label=command.label,
            key_hash=_hash_key(key),
            prefix=key[:10],
            created_at=ctx.clock.now(),
            created_by=principal.id,
        )
        uow.add(row)
        uow.flush()
        audit.record(
            uow,
            AUDIT,
            principal=principal,
            action="api_key.created",
            resource=("api_key", row.id),
            detail={"unit_id": unit_id, "label": command.label, "prefix": row.prefix},
            request=request,
        )
    return ApiKeyCreated(**ApiKeyRead.model_validate(row).model_dump(), key=key)


def list_api_keys(unit_id: str, *, ctx: ServiceContext, principal: Principal) -> list[ApiKey]:
    """A unit's API keys (revoked ones included), newest first."""
    with ctx.db.session() as uow:
        _ensure_unit_visible(uow, principal, uow.get(Unit, unit_id), unit_id)
        return list(
            uow.scalars(select(ApiKey).where(ApiKey.unit_id == unit_id).order_by(ApiKey.created_at.desc()))
        )


def revoke_api_key(
    key_id: str, *, ctx: ServiceContext, principal: Principal, request: RequestInfo | None = None
) -> ApiKey:
    """Revoke a key at once: it can no longer be exchanged (tokens already issued expire on their own)."""
    _no_keys_from_keys(principal)
    with ctx.db.transaction() as uow:
        row = uow.get(ApiKey, key_id)
        if row is None:
            raise not_found("API 密钥", "API key", key_id)
        _ensure_unit_visible(uow, principal, uow.get(Unit, row.unit_id), key_id, what=("API 密钥", "API key"))
        if row.revoked_at is None:
            row.revoked_at, row.revoked_by = ctx.clock.now(), principal.id
            audit.record(
                uow,
                AUDIT,
                principal=principal,
                action="api_key.revoked",
                resource=("api_key", row.id),
                detail={"unit_id": row.unit_id},
                request=request,
            )
    return row


def exchange_api_key(
    key: str, *, ctx: ServiceContext, issuer: TokenIssuer, request: RequestInfo | None = None
) -> TokenOut:
    """Swap a live API key for a short-lived bearer token of its unit; unknown or revoked keys get 401."""
    digest = _hash_key(key)
    with ctx.db.transaction() as uow:
        row = uow.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        if row is None or row.revoked_at is not None or not _unit_active(uow, row.unit_id):
            row = None
        else:
            unit = uow.get_one(Unit, row.unit_id)  # _unit_active found it
            unit_path = _unit_path(uow, row.unit_id)
            ttl = ctx.settings.auth_api_token_ttl_s
            token = issuer.issue(
                subject=f"apikey:{row.id}",
                name=f"{unit.name}（API 密钥 {row.label}）",
                role=UNIT,
                ttl_s=ttl,
                unit_id=row.unit_id,
                unit_path=unit_path,
                via="api_key",
                key_id=row.id,
            )
            row.last_used_at = ctx.clock.now()
    if row is None:
        raise unauthenticated("invalid_api_key", "API 密钥无效或已吊销", "API key unknown or revoked")
    return TokenOut(access_token=token, expires_in=ttl)


def list_users(*, ctx: ServiceContext, limit: int = 100, offset: int = 0) -> list[User]:
    """Users by username."""
    with ctx.db.session() as uow:
        return list(uow.scalars(select(User).order_by(User.username).limit(limit).offset(offset)))


# ---------------------------------------------------------------- helpers


def unit_path_of(uow: Session, unit_id: str) -> str:
    """The unit's materialised path "/<root id>/.../<unit id>/" (stored on the unit, else built from its parents)."""
    return _unit_path(uow, unit_id)


def _unit_path(uow: Session, unit_id: str | None) -> str:
    unit = uow.get(Unit, unit_id) if unit_id else None
    stored = getattr(unit, "unit_path", None) if unit is not None else None
    if stored:
        return stored
    ids, seen, current = [], set(), unit
    while current is not None and current.id not in seen:
        seen.add(current.id)
        ids.append(current.id)
        current = uow.get(Unit, current.parent_id) if current.parent_id else None
    return "/" + "".join(f"{ident}/" for ident in reversed(ids))


def _unit_active(uow: Session, unit_id: str | None) -> bool:
    # A deactivated unit's liaison and scripts can no longer get tokens.
    if unit_id is None:
        return True
    unit = uow.get(Unit, unit_id)
    return unit is not None and getattr(unit, "active", True)


def _ensure_unit_visible(
    uow: Session,
    principal: Principal,
    unit: Unit | None,
    ident: str,
    what: tuple[str, str] = ("单位", "unit"),
) -> None:
    error = not_found(what[0], what[1], ident)
    if unit is None:
        raise error
    ensure_visible(principal, error, unit_path=_unit_path(uow, unit.id), unit_id=unit.id)


def _no_keys_from_keys(principal: Principal) -> None:
    if principal.via == "api_key":
        raise ApiError(
            403,
            "forbidden",
            "API 密钥不能用于管理 API 密钥，请以联络员身份登录",
            "an API key cannot manage API keys; log in as the liaison",
        )
    if principal.role not in (ADMIN, UNIT):
        raise ApiError(403, "forbidden", "当前角色无权执行此操作", "your role may not do this")


def _as_principal(user: User, unit_path: str | None) -> Principal:
    return Principal(
        id=user.id, name=user.display_name, role=user.role, unit_id=user.unit_id, unit_path=unit_path
    )


def _duplicate_user(username: str) -> ApiError:
    return ApiError(
        409, "duplicate_username", f"用户名已存在：{username}", f"username already exists: {username}"
    )
