"""Upload grants: intake's create response carries a short-lived grant, signed with the platform's key, that lets
evidence_storage accept an upload to a submission before it has heard `submission.submitted`.

A grant names the submission, its unit and unit path, measure, campaign and version, and says it was handed in.
It is not a bearer token (its audience differs and it has no role): the uploader still needs its own token, and
the unit-subtree rule is checked against the unit path the grant names. The event, when it arrives, confirms
(and, for a later version, updates) what the grant said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import jwt

from shared.auth import ALGORITHM, LEEWAY_S, load_keys
from shared.clock import Clock, SystemClock
from shared.settings import Settings

AUDIENCE = "upload-grant"
HEADER = "X-Upload-Grant"
TTL_S = 900


@dataclass(frozen=True)
class UploadGrant:
    """What intake vouched for when it created (or handed in) the submission."""

    submission_id: str
    unit_id: str
    unit_path: str
    measure_code: str
    version: int
    campaign_id: str | None


class GrantError(Exception):
    """A grant that is malformed, forged, expired or for another submission."""


class GrantSigner:
    """Signs grants; only intake (which holds the private key) has one."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        keys = load_keys(settings)
        if keys.private_key is None:
            raise ValueError("upload grants need AUTH_PRIVATE_KEY")
        self._key, self._issuer, self._clock = keys.private_key, settings.auth_issuer, clock or SystemClock()

    def sign(self, grant: UploadGrant, *, ttl_s: int = TTL_S) -> str:
        """A grant valid for ttl_s seconds."""
        now = self._clock.now()
        claims = {
            "iss": self._issuer,
            "aud": AUDIENCE,
            "sub": grant.submission_id,
            "unit_id": grant.unit_id,
            "unit_path": grant.unit_path,
            "measure_code": grant.measure_code,
            "version": grant.version,
            "campaign_id": grant.campaign_id,
            "state": "submitted",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class GrantVerifier:
    """Checks grants with the platform's public key."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self._key, self._issuer = load_keys(settings).public_key, settings.auth_issuer
        self._clock = clock or SystemClock()

    def verify(self, token: str, submission_id: str) -> UploadGrant:
        """The grant for this submission; raises GrantError."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                audience=AUDIENCE,
                options={"require": ["iss", "aud", "sub", "exp"], "verify_exp": False},
            )
        except jwt.PyJWTError as exc:
            raise GrantError(str(exc)) from None
        if self._clock.now().timestamp() > claims["exp"] + LEEWAY_S:
            raise GrantError("grant expired")
        if claims["sub"] != submission_id or claims.get("state") != "submitted":
            raise GrantError("grant for another submission")
        try:
            return UploadGrant(
                submission_id=claims["sub"],
                unit_id=str(claims["unit_id"]),
                unit_path=str(claims["unit_path"]),
                measure_code=str(claims["measure_code"]),
                version=int(claims["version"]),
                campaign_id=claims.get("campaign_id"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GrantError(f"incomplete grant: {exc}") from None
