"""Who may see what in the notification API: staff see every unit, a unit its own subtree (docs/security.md).

Deliveries carry a unit id; the unit's path comes from unit.registered and liaison.designated.
"""

from __future__ import annotations

from sqlalchemy import false, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from services.notification.models import KnownUnit, Liaison
from shared.auth import Principal, ensure_visible, visible
from shared.http import not_found


def unit_rows(principal: Principal, unit_id_column) -> ColumnElement[bool]:
    """A WHERE clause keeping rows of units the caller may see (rows without a unit: staff only)."""
    if principal.is_staff:
        return true()
    if not principal.unit_id:
        return false()
    units = select(KnownUnit.unit_id).where(visible(principal, KnownUnit.unit_path, KnownUnit.unit_id))
    return or_(unit_id_column.in_(units), unit_id_column == principal.unit_id)


def ensure_unit_visible(uow: Session, principal: Principal, unit_id: str) -> None:
    """404 unless the unit is known here and the caller may see it (the same answer for both)."""
    missing = not_found("单位", "unit", unit_id)
    unit = uow.get(KnownUnit, unit_id)
    if unit is None and uow.get(Liaison, unit_id) is None:
        raise missing
    ensure_visible(principal, missing, unit_path=unit.unit_path if unit else None, unit_id=unit_id)
