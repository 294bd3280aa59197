"""Intake's identity endpoints: login, API-key exchange, users, API keys, and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Request
from pydantic import BaseModel, Field

from services.intake import identity
from shared import audit
from shared.auth import (
    ADMIN,
    UNIT,
    Principal,
    TokenIssuer,
    install,
    issuer_from_settings,
    require,
    verifier_from_settings,
)
from shared.bounds import Limit, Offset
from shared.http import UtcDateTime
from shared.request_context import request_info
from shared.runtime import ServiceContext


class PrincipalRead(BaseModel):
    """Who the token says the caller is."""

    id: str
    name: str
    role: str
    unit_id: str | None
    unit_path: str | None
    via: str


class LockoutRead(BaseModel):
    """A username or client address that must wait before its next login attempt."""

    model_config = {"from_attributes": True}
    kind: str = Field(description="user（用户名）或 ip（客户端地址）")
    subject: str
    failures: int
    last_failure_at: UtcDateTime
    blocked_until: UtcDateTime | None
    locked_until: UtcDateTime | None


def install_identity(app: FastAPI, ctx: ServiceContext) -> None:
    """Make intake's app verify tokens and serve the identity endpoints (called from intake's create_app)."""
    install(app, verifier_from_settings(ctx.settings))
    app.include_router(auth_router(ctx, issuer_from_settings(ctx.settings)))
    app.include_router(audit.audit_router(identity.AUDIT, ctx.db))


def auth_router(ctx: ServiceContext, issuer: TokenIssuer) -> APIRouter:
    """The identity routes of the intake service."""
    router = APIRouter()

    @router.post(
        "/auth/login",
        response_model=identity.TokenOut,
        tags=["auth"],
        responses={
            429: {
                "description": "登录失败过多：按 Retry-After 等待 · throttled or locked; wait Retry-After seconds"
            },
            503: {"description": "同时登录过多 · every password-hashing slot busy"},
        },
    )
    def login(body: identity.Login, request: Request) -> identity.TokenOut:
        """Log in with username and password; returns a bearer token (throttled after wrong passwords)."""
        return identity.login(body, ctx=ctx, issuer=issuer, request=request_info(request))

    @router.get("/auth/lockouts", response_model=list[LockoutRead], tags=["auth"])
    def list_lockouts(_admin: Principal = Depends(require(ADMIN))) -> list:
        """Usernames locked and usernames/addresses in login back-off right now (admins only)."""
        return identity.list_lockouts(ctx=ctx)

    @router.delete("/auth/lockouts/{username}", status_code=204, tags=["auth"])
    def lift_lockout(
        request: Request, username: str = Path(max_length=64), principal: Principal = Depends(require(ADMIN))
    ) -> None:
        """Lift a username's lockout and back-off now (admins only; audited as auth.unlocked)."""
        identity.lift_lockout(username, ctx=ctx, principal=principal, request=request_info(request))

    @router.post("/auth/token", response_model=identity.TokenOut, tags=["auth"])
    def exchange(
        request: Request, x_api_key: str = Header(..., min_length=8, max_length=200)
    ) -> identity.TokenOut:
        """Exchange a unit's API key (header X-API-Key) for a short-lived bearer token."""
        return identity.exchange_api_key(x_api_key, ctx=ctx, issuer=issuer, request=request_info(request))

    @router.get("/auth/me", response_model=PrincipalRead, tags=["auth"])
    def me(principal: Principal = Depends(require())) -> PrincipalRead:
        """The caller as its token describes it."""
        return PrincipalRead(
            id=principal.id,
            name=principal.name,
            role=principal.role,
            unit_id=principal.unit_id,
            unit_path=principal.unit_path,
            via=principal.via,
        )

    @router.post("/users", status_code=201, response_model=identity.UserRead, tags=["users"])
    def create_user(
        body: identity.UserCreate, request: Request, principal: Principal = Depends(require(ADMIN))
    ) -> identity.User:
        """Add a user (admins only)."""
        return identity.create_user(body, ctx=ctx, principal=principal, request=request_info(request))

    @router.get("/users", response_model=list[identity.UserRead], tags=["users"])
    def list_users(
        limit: Limit = 100, offset: Offset = 0, _admin: Principal = Depends(require(ADMIN))
    ) -> list[identity.User]:
        """Every user by username (admins only)."""
        return identity.list_users(ctx=ctx, limit=limit, offset=offset)

    @router.post(
        "/units/{unit_id}/api-keys", status_code=201, response_model=identity.ApiKeyCreated, tags=["api keys"]
    )
    def create_api_key(
        unit_id: str,
        body: identity.ApiKeyCreate,
        request: Request,
        principal: Principal = Depends(require(ADMIN, UNIT)),
    ) -> identity.ApiKeyCreated:
        """Make an API key for the unit; the key is shown in this answer only."""
        return identity.create_api_key(
            unit_id, body, ctx=ctx, principal=principal, request=request_info(request)
        )

    @router.get("/units/{unit_id}/api-keys", response_model=list[identity.ApiKeyRead], tags=["api keys"])
    def list_api_keys(
        unit_id: str, principal: Principal = Depends(require(ADMIN, UNIT))
    ) -> list[identity.ApiKey]:
        """The unit's API keys, without the keys themselves."""
        return identity.list_api_keys(unit_id, ctx=ctx, principal=principal)

    @router.delete("/api-keys/{key_id}", response_model=identity.ApiKeyRead, tags=["api keys"])
    def revoke_api_key(
        key_id: str, request: Request, principal: Principal = Depends(require(ADMIN, UNIT))
    ) -> identity.ApiKey:
        """Revoke an API key at once."""
        return identity.revoke_api_key(key_id, ctx=ctx, principal=principal, request=request_info(request))

    return router
