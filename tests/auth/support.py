"""Helpers for the auth tests: an intake service of its own, units in it, and tokens."""

from __future__ import annotations

import uuid

from services.intake import schemas, units
from services.intake.bootstrap import bootstrap as intake_bootstrap
from shared.runtime import ServiceContext
from shared.settings import Settings


def intake_context(tmp_path, **settings) -> ServiceContext:
    """Intake alone on SQLite under tmp_path."""
    return intake_bootstrap(Settings(data_dir=tmp_path, **settings))


def make_unit(ctx: ServiceContext, *, parent_id: str | None = None, name: str = "相山区信访局") -> str:
    """Register a unit (with an invented liaison) through intake's own use case; returns its id."""
    code = f"U{uuid.uuid4().hex[:8]}"
    unit = units.register_unit(
        schemas.UnitCreate(
            code=code,
            name=name,
            level="county" if parent_id is None else "township",
            parent_id=parent_id,
            liaison={"name": "李明", "email": f"liaison-{code.lower()}@example.org"},
        ),
        ctx=ctx,
    )
    return unit.id


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}
