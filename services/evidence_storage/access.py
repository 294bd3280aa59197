"""Who is calling, and whether they may see a unit's evidence: the one place every upload, download, listing
and export asks. The caller is the verified bearer-token principal (shared/auth.py); a unit sees only its own
subtree's evidence, staff see every unit's (docs/security.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Depends, Request

from shared.auth import ADMIN, INSPECTOR, Principal, ensure_visible, forbidden, require
from shared.http import ApiError
from shared.request_context import request_info

INSPECTION = (
    "inspection"  # state of a KnownSubmission that is an inspection's photo folder (from inspection.recorded)
)


@dataclass(frozen=True)
class Caller:
    """The verified identity behind a request and where it came from."""

    principal: Principal
    client_ip: str | None
    request_id: str | None = None

    @property
    def actor(self) -> str:
        """The caller's display name, as kept on uploads and sessions."""
        return self.principal.name


def caller_of(*roles: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting an authenticated caller in one of roles (any role when none given)."""
    guard = require(*roles)

    async def dependency(request: Request, principal: Principal = Depends(guard)) -> Caller:
        # async: no I/O here, so FastAPI need not run it on its thread pool (shared/auth.py)
        info = request_info(request)
        return Caller(principal=principal, client_ip=info.client_ip, request_id=info.request_id)

    dependency.__name__ = f"caller_{'_'.join(roles) or 'any'}"
    return dependency


def check_access(
    caller: Caller, missing: ApiError, *, unit_path: str | None, unit_id: str | None = None
) -> None:
    """Raise missing (a 404, so existence is not revealed) unless the caller may see that unit's evidence."""
    ensure_visible(caller.principal, missing, unit_path=unit_path, unit_id=unit_id)


def check_uploader(caller: Caller, owner_state: str | None) -> None:
    """403 unless the caller may upload to (or delete from) this owner: units their submissions, inspectors inspections."""
    role = caller.principal.role
    if role != ADMIN and owner_state is not None and (role == INSPECTOR) != (owner_state == INSPECTION):
        raise forbidden()
