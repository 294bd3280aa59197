"""Who is calling, and whether they may see a unit's evidence: the one place every download, listing and
export asks. Authentication is not built yet; until it is, the caller names itself in the `X-Actor` header
(TEMPORARY: trusted as given; percent-encoded UTF-8, as HTTP headers are ASCII) and every caller may see every unit. The authentication work replaces
`caller_of` with the authenticated identity and `check_access` with the per-unit rule."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from fastapi import Request

ANONYMOUS = "anonymous"
MAX_ACTOR = 200


@dataclass(frozen=True)
class Caller:
    """The identity behind a request and where it came from."""

    actor: str
    client_ip: str | None
    request_id: str | None = None


def caller_of(request: Request) -> Caller:
    """The caller of an HTTP request (temporary: the X-Actor header, until authentication lands)."""
    actor = unquote(request.headers.get("x-actor") or "").strip()[:MAX_ACTOR] or ANONYMOUS
    client_ip = request.client.host if request.client else None
    return Caller(actor=actor, client_ip=client_ip, request_id=getattr(request.state, "request_id", None))


def check_access(caller: Caller, *, action: str, unit_id: str | None = None, campaign_id: str | None = None) -> None:
    """Raise a 403 ApiError unless the caller may do action on the unit's (or campaign's) evidence.

    Every unit is allowed until authentication lands; this is the slot for the per-unit rule.
    """
    return None
