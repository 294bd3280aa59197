"""Who is calling: Ed25519-signed bearer tokens, the roles, and the unit-subtree rule every service applies.

Only the identity side (intake) holds the signing key; every service verifies tokens itself with the
public key, without calling intake. See docs/security.md.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, overload

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, FastAPI, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import SQLColumnExpression, and_, false, or_, true
from sqlalchemy.sql.elements import ColumnElement

from shared import docs, problems
from shared.clock import Clock, SystemClock
from shared.http import ApiError
from shared.request_context import RequestContextMiddleware
from shared.settings import Settings

ADMIN, REVIEWER, INSPECTOR, UNIT = "admin", "reviewer", "inspector", "unit"
ROLES = (ADMIN, REVIEWER, INSPECTOR, UNIT)
STAFF = (ADMIN, REVIEWER, INSPECTOR)  # roles that see every unit's data
ROLE_NAMES = {ADMIN: "管理员", REVIEWER: "审核员", INSPECTOR: "检查员", UNIT: "单位"}
ALGORITHM = "EdDSA"
LEEWAY_S = 30  # tolerated clock skew between the issuing and the verifying machine
VERIFIED_TOKENS = 4096  # tokens whose signature a process remembers having checked (at most about 6 MiB)
KEY_FILE = "token-signing-key.pem"


@dataclass(frozen=True)
class Principal:
    """The verified caller of one request, as the token describes it."""

    id: str
    name: str
    role: str
    unit_id: str | None = None
    unit_path: str | None = None
    token_id: str = ""
    expires_at: datetime | None = None
    via: str = "password"  # "password" (a person's login) or "api_key" (a unit's script)

    @property
    def is_staff(self) -> bool:
        """Whether the caller sees every unit's data (admin, reviewer, inspector)."""
        return self.role in STAFF


# ---------------------------------------------------------------- key material


@dataclass(frozen=True)
class KeyMaterial:
    """The public key every service verifies with, and the private key only the issuer has."""

    public_key: Ed25519PublicKey
    private_key: Ed25519PrivateKey | None = None


def load_keys(settings: Settings) -> KeyMaterial:
    """Keys from AUTH_PRIVATE_KEY / AUTH_PUBLIC_KEY, else a pair generated once under DATA_DIR/auth/."""
    if settings.auth_private_key:
        private = _load_pem(settings.auth_private_key.get_secret_value(), private=True)
        public = private.public_key()
        if settings.auth_public_key and _raw(_load_pem(settings.auth_public_key, private=False)) != _raw(
            public
        ):
            raise ValueError("AUTH_PUBLIC_KEY does not belong to AUTH_PRIVATE_KEY")
        return KeyMaterial(public_key=public, private_key=private)
    if settings.auth_public_key:
        return KeyMaterial(public_key=_load_pem(settings.auth_public_key, private=False))
    private = _generated_key(Path(settings.data_dir) / "auth" / KEY_FILE)
    return KeyMaterial(public_key=private.public_key(), private_key=private)


def generate_key_pair() -> tuple[str, str]:
    """A fresh Ed25519 key pair as (private PEM, public PEM) text."""
    private = Ed25519PrivateKey.generate()
    return _private_pem(private).decode("ascii"), public_pem(private.public_key())


def public_pem(key: Ed25519PublicKey) -> str:
    """A public key as PEM text."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@overload
def _load_pem(value: str, *, private: Literal[True]) -> Ed25519PrivateKey: ...
@overload
def _load_pem(value: str, *, private: Literal[False]) -> Ed25519PublicKey: ...
def _load_pem(value: str, *, private: bool) -> Ed25519PrivateKey | Ed25519PublicKey:
    text = value.strip()
    data = text.encode("ascii") if text.startswith("-----BEGIN") else Path(text).expanduser().read_bytes()
    if private:
        secret = serialization.load_pem_private_key(data, password=None)
        if isinstance(secret, Ed25519PrivateKey):
            return secret
    else:
        public = serialization.load_pem_public_key(data)
        if isinstance(public, Ed25519PublicKey):
            return public
    raise ValueError(f"{'AUTH_PRIVATE_KEY' if private else 'AUTH_PUBLIC_KEY'} must be an Ed25519 key")


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _generated_key(path: Path) -> Ed25519PrivateKey:
    # Several processes may start at once on one DATA_DIR: each writes a private temp file and links
    # it into place; the first link wins and everyone reads the winner.
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_private_pem(Ed25519PrivateKey.generate()))
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            temp.unlink(missing_ok=True)
    return _load_pem(str(path), private=True)


# ---------------------------------------------------------------- tokens


class TokenIssuer:
    """Signs bearer tokens; only the identity service (intake) has one."""

    def __init__(self, private_key: Ed25519PrivateKey, *, issuer: str, clock: Clock | None = None) -> None:
        self._key, self._issuer, self._clock = private_key, issuer, clock or SystemClock()

    def issue(
        self,
        *,
        subject: str,
        name: str,
        role: str,
        ttl_s: int,
        unit_id: str | None = None,
        unit_path: str | None = None,
        via: str = "password",
        key_id: str | None = None,
    ) -> str:
        """A signed token for a principal, valid for ttl_s seconds from now."""
        if role not in ROLES:
            raise ValueError(f"unknown role: {role!r}")
        if role == UNIT and not (unit_id and unit_path):
            raise ValueError("a unit token needs unit_id and unit_path")
        now = self._clock.now()
        claims = {
            "iss": self._issuer,
            "sub": subject,
            "name": name,
            "role": role,
            "unit_id": unit_id,
            "unit_path": unit_path,
            "via": via,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        if key_id:
            claims["kid"] = key_id
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class TokenError(Exception):
    """A token that is malformed, forged, expired or otherwise unacceptable."""


class TokenVerifier:
    """Checks a bearer token's signature, issuer and lifetime and turns it into a Principal."""

    def __init__(self, public_key: Ed25519PublicKey, *, issuer: str, clock: Clock | None = None) -> None:
        self._key, self._issuer, self._clock = public_key, issuer, clock or SystemClock()
        # A token whose signature and issuer checked out once will again under the same key: a client sends the
        # same token with every request, and checking it cost 0.24 ms of CPU each time. Only the
        # signature check is remembered (never a failure); lifetime and claims are checked at every use.
        self._signed_claims = functools.lru_cache(maxsize=VERIFIED_TOKENS)(self._decode)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            # exp/iat are checked in verify() against our clock, so tests can move time instead of sleeping.
            return jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={
                    "require": ["iss", "sub", "role", "exp", "iat", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; raises TokenError otherwise."""
        claims = self._signed_claims(token)
        now = self._clock.now().timestamp()
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, (int, float)) or not isinstance(iat, (int, float)):
            raise TokenError("exp and iat must be numbers")
        if now > exp + LEEWAY_S:
            raise TokenError("token expired")
        if iat > now + LEEWAY_S:
            raise TokenError("token issued in the future")
        role = claims["role"]
        if role not in ROLES:
            raise TokenError(f"unknown role {role!r}")
        unit_path = claims.get("unit_path") or None
        if role == UNIT and not (
            claims.get("unit_id") and unit_path and unit_path.startswith("/") and unit_path.endswith("/")
        ):
            raise TokenError("unit token without a unit path")
        return Principal(
            id=str(claims["sub"]),
            name=str(claims.get("name") or claims["sub"]),
            role=role,
            unit_id=claims.get("unit_id") or None,
            unit_path=unit_path,
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(exp, UTC),
            via=str(claims.get("via") or "password"),
        )


def issuer_from_settings(settings: Settings, *, clock: Clock | None = None) -> TokenIssuer:
    """The token issuer of the identity service; fails when only a public key is configured."""
    keys = load_keys(settings)
    if keys.private_key is None:
        raise ValueError(
            "the identity service needs AUTH_PRIVATE_KEY to sign tokens (only AUTH_PUBLIC_KEY is set)"
        )
    return TokenIssuer(keys.private_key, issuer=settings.auth_issuer, clock=clock)


def verifier_from_settings(settings: Settings, *, clock: Clock | None = None) -> TokenVerifier:
    """The token verifier every service builds from its settings."""
    return TokenVerifier(load_keys(settings).public_key, issuer=settings.auth_issuer, clock=clock)


# ---------------------------------------------------------------- FastAPI dependencies

_bearer = HTTPBearer(
    auto_error=False,
    description="登录或兑换 API 密钥得到的令牌 · token from /intake/auth/login or /intake/auth/token",
)
_api_key = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="单位 API 密钥，仅用于 /intake/auth/token 兑换令牌 · unit API key, exchanged at /intake/auth/token",
)


def install(app: FastAPI, verifier: TokenVerifier) -> None:
    """Make an app verify bearer tokens, give every request an id and client IP, and answer errors as problems."""
    app.state.token_verifier = verifier
    problems.install(app)  # first, so its catch-all sits inside the request-id middleware
    docs.install(app)  # self-hosted Swagger UI / ReDoc, CSP on HTML pages
    app.add_middleware(RequestContextMiddleware)


def unauthenticated(
    code: str = "unauthenticated", message: str = "请先登录", message_en: str = "authentication required"
) -> ApiError:
    """401 with a bilingual body and a WWW-Authenticate challenge."""
    error = ApiError(401, code, message, message_en)
    error.headers = {"WWW-Authenticate": "Bearer"}
    return error


def forbidden() -> ApiError:
    """403 for a role that may not do this at all."""
    return ApiError(403, "forbidden", "当前角色无权执行此操作", "your role may not do this")


# The dependencies below are async on purpose: they only check a signature and a role, and FastAPI runs a sync
# dependency on the thread pool, a hop that cost more than the check (py-spy, bench/submit.py).
async def current_principal(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    api_key: str | None = Depends(_api_key),
) -> Principal:
    """The caller named by `Authorization: Bearer <token>`; 401 when missing, invalid or expired."""
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise RuntimeError("shared.auth.install(app, verifier) was not called for this app")
    if bearer is None:
        if api_key:
            raise unauthenticated(
                "api_key_needs_exchange",
                "API 密钥须先在 /intake/auth/token 兑换为令牌",
                "exchange the API key for a token at /intake/auth/token first",
            )
        raise unauthenticated()
    try:
        principal = verifier.verify(bearer.credentials)
    except TokenError:
        raise unauthenticated(
            "invalid_token", "登录凭据无效或已过期，请重新登录", "token invalid or expired; log in again"
        ) from None
    request.state.principal = principal
    return principal


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting an authenticated caller whose role is one of roles (any role when none given)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if roles and principal.role not in roles:
            raise forbidden()
        return principal

    dependency.__name__ = f"require_{'_'.join(roles) or 'any'}"
    return dependency


# ---------------------------------------------------------------- the unit-subtree rule


def scope_of(principal: Principal) -> str | None:
    """The unit-path prefix a caller is confined to: None for staff (everything), the unit's path for a unit."""
    if principal.is_staff:
        return None
    if principal.role != UNIT or not principal.unit_path:
        raise ValueError("a unit principal without a unit path has no scope")
    return principal.unit_path


def can_see_unit(principal: Principal, unit_path: str | None, unit_id: str | None = None) -> bool:
    """Whether the caller may see data of the unit at unit_path (staff: always; a unit: its own subtree).

    Data recorded before unit paths existed has an empty path; then only the unit itself matches by id.
    """
    if principal.is_staff:
        return True
    if principal.role != UNIT or not principal.unit_path:
        return False
    if unit_path:
        return unit_path.startswith(principal.unit_path)
    return unit_id is not None and unit_id == principal.unit_id


def ensure_visible(
    principal: Principal, error: ApiError, *, unit_path: str | None, unit_id: str | None = None
) -> None:
    """Raise error (a 404, so existence is not revealed) unless the caller may see that unit's data."""
    if not can_see_unit(principal, unit_path, unit_id):
        raise error


def visible(
    principal: Principal,
    path_column: SQLColumnExpression[str | None],
    unit_id_column: SQLColumnExpression[str | None] | None = None,
) -> ColumnElement[bool]:
    """A WHERE clause keeping only rows the caller may see (for unit-scoped queries)."""
    if principal.is_staff:
        return true()
    if principal.role != UNIT or not principal.unit_path:
        return false()
    clause = path_column.startswith(principal.unit_path, autoescape=True)
    if unit_id_column is not None and principal.unit_id:
        clause = or_(
            clause, and_(or_(path_column.is_(None), path_column == ""), unit_id_column == principal.unit_id)
        )
    return clause
