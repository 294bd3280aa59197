"""Who made an intake change through the API, written to intake's append-only audit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from services.intake import identity
from shared import audit
from shared.auth import Principal
from shared.request_context import RequestInfo, request_info


@dataclass(frozen=True)
class Actor:
    """The caller of one API request: recorded with every change it makes."""

    principal: Principal | None
    request: RequestInfo | None = None

    @classmethod
    def of(cls, principal: Principal, request: Request) -> Actor:
        """The actor behind a request."""
        return cls(principal, request_info(request))

    def record(
        self,
        uow: Session,
        action: str,
        resource: tuple[str, str | None],
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append an audit entry inside the caller's transaction."""
        audit.record(
            uow,
            identity.AUDIT,
            principal=self.principal,
            action=action,
            resource=resource,
            detail=detail,
            request=self.request,
        )


def record(
    actor: Actor | None,
    uow: Session,
    action: str,
    resource: tuple[str, str | None],
    detail: dict[str, Any] | None = None,
) -> None:
    """Record when the change came through the API (actor given); internal callers pass None."""
    if actor is not None:
        actor.record(uow, action, resource, detail)
