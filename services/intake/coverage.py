"""The coverage matrix: units x measures with each cell's state and colour, topics and liaison per unit.

Read from the coverage projection (services/intake/projection.py: one row per unit, kept in the same transaction
as each submission state change), so its cost grows with the number of units shown, not with the number of
submissions.

Colour rule (COLOUR_RULE below, also returned by the API): approved → green; submitted (or under
review) → yellow; missing or returned → red once its deadline is within `coverage.red_within_days`
(default 3) or past, yellow before that or when no deadline applies. The liaison column: designated
in time → green, designated late → yellow, missing → red/yellow by the liaison deadline as above.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.intake import projection, queries
from services.intake.definition import CampaignDefinition, Deadline
from services.intake.models import Campaign, CoverageUnit, Unit
from shared.http import ApiError, not_found
from shared.runtime import ServiceContext, collector_paused

COLOUR_RULE = (
    "approved=green; submitted/under_review=yellow; missing/returned=red when the deadline is within "
    "red_within_days or past, else yellow. Liaison: on time=green, late=yellow, missing like a missing cell."
)
_STATES = ("approved", "submitted", "returned", "missing")


@dataclass
class UnitStanding:
    """One unit's row, as the matrix and the deadline watcher need it."""

    unit_id: str
    code: str
    name: str
    level: str
    parent_id: str | None
    unit_path: str
    liaison_name: str | None
    liaison_late: bool
    measures: dict[str, str] = field(default_factory=dict)  # code → state, for the measures with submissions
    counts: dict[str, int] = field(default_factory=dict)  # code → how many submissions show in its cell
    summary_report: tuple[str, int] = ("missing", 0)
    good_practices: int = 0
    topics: tuple[str, ...] = ()  # the topics covered, sorted


def standings(
    uow: Session,
    campaign_id: str,
    definition: CampaignDefinition,
    *,
    scope: str | None = None,
    subtree: str | None = None,
) -> list[UnitStanding]:
    """Every active participating unit of the campaign in scope/subtree with its cells from the coverage projection."""
    conn = uow.connection()  # plain Core rows: thousands of them, no ORM needed
    rows = _tuples(
        conn,
        select(
            Unit.id,
            Unit.code,
            Unit.name,
            Unit.level,
            Unit.parent_id,
            Unit.unit_path,
            Unit.liaison_name,
            Unit.liaison_late,
            CoverageUnit.standing,
        )
        .outerjoin(
            CoverageUnit, (CoverageUnit.campaign_id == Unit.campaign_id) & (CoverageUnit.unit_id == Unit.id)
        )
        .where(
            Unit.campaign_id == campaign_id,
            queries.within(Unit.unit_path, scope),
            queries.within(Unit.unit_path, subtree),
            Unit.active.is_(True),
            Unit.participates.is_(True),
        ),
    )
    # Sorted here rather than by the database: code-point order whatever its collation, and cheaper than its
    # sort of the wide rows (a tenth of the query's time at 5,000 units).
    rows.sort(key=itemgetter(5))
    # One parse for all the units' standings; a unit without a counted submission has no row yet.
    empty = projection.no_standing()
    shown = json.loads("[" + ",".join(r[8] or empty for r in rows) + "]")
    return [
        UnitStanding(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            bool(r[7]),
            s["measures"],
            s["counts"],
            tuple(s["summary_report"]),
            s["good_practices"],
            tuple(s["topics"]),
        )
        for r, s in zip(rows, shown, strict=True)
    ]


def _tuples(conn, statement) -> list[tuple]:
    # The driver's own tuples: tens of thousands of plain values (strings and integers) need none of SQLAlchemy's
    # per-row processing, which costs several times the fetch itself here.
    result = conn.execute(statement)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def colour(state: str, deadline: Deadline | None, now: datetime, red_within: timedelta) -> str:
    """The colour of a cell (see COLOUR_RULE)."""
    if state == "approved":
        return "green"
    if state == "submitted":
        return "yellow"
    if deadline is not None and now >= deadline.due - red_within:
        return "red"
    return "yellow"


def coverage(
    campaign_ref: str,
    *,
    ctx: ServiceContext,
    unit_id: str | None = None,
    scope: str | None = None,
    shape: str = "full",
) -> dict:
    """The coverage matrix of a campaign, or of the subtree under unit_id, as of the clock's now: one object per cell
    (shape "full") or one string of state letters per unit (shape "compact", about a tenth of the size)."""
    now = ctx.clock.now()
    with collector_paused():
        with ctx.db.session() as uow:
            campaign, definition, subtree = _in_view(uow, campaign_ref, unit_id, scope)
            rows = standings(uow, campaign.id, definition, scope=scope, subtree=subtree)
        answer = (compact if shape == "compact" else matrix)(campaign, definition, rows, now)
        # Gone before the collector is back on: its first pass then walks only the answer, not the standings too.
        del rows
    return answer


def rollup(
    campaign_ref: str, *, ctx: ServiceContext, unit_id: str | None = None, scope: str | None = None
) -> dict:
    """Cell states and colours, liaisons and summary reports added up per unit level and per district (the subtrees
    under the top unit's children): what a dashboard shows before it loads any district's matrix."""
    now = ctx.clock.now()
    with collector_paused():
        with ctx.db.session() as uow:
            campaign, definition, subtree = _in_view(uow, campaign_ref, unit_id, scope)
            rows = standings(uow, campaign.id, definition, scope=scope, subtree=subtree)
            district_ids = {_district(row.unit_path) for row in rows}
            names = (
                dict(uow.execute(select(Unit.id, Unit.name).where(Unit.id.in_(district_ids))).tuples().all())
                if district_ids
                else {}
            )
        answer = _added_up(campaign, definition, rows, names, now)
        del rows  # as in coverage(): gone before the collector is back on
    return answer


def _added_up(
    campaign: Campaign, definition: CampaignDefinition, rows: list[UnitStanding], names: dict, now: datetime
) -> dict:
    shape = _Shape(definition, now)
    # Added up once per (level, district), then those into the levels and the districts: each unit counted once.
    buckets: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row.level, _district(row.unit_path))
        group = buckets.get(key)
        if group is None:
            group = buckets[key] = _group()
        group["units"] += 1
        for code in shape.codes:
            state = row.measures.get(code, "missing")
            group["cells"][state] = group["cells"].get(state, 0) + 1
            group["colours"][shape.colours[code, state]] += 1
        status = _liaison(row, shape.liaison_deadline, now, shape.red_within)["status"]
        group["liaisons"][status] = group["liaisons"].get(status, 0) + 1
        group["summary_reports"][row.summary_report[0]] = (
            group["summary_reports"].get(row.summary_report[0], 0) + 1
        )
    levels: dict[str, dict] = {}
    districts: dict[str, dict] = {}
    for (level, district), bucket in buckets.items():
        _add(levels.setdefault(level, _group(level=level)), bucket)
        _add(districts.setdefault(district, _group(unit_id=district, name=names.get(district, ""))), bucket)
    return {
        "campaign_id": campaign.id,
        "code": campaign.code,
        "version": campaign.version,
        "as_of": now,
        "units": len(rows),
        "measures": shape.codes,
        "levels": list(levels.values()),
        "districts": sorted(districts.values(), key=lambda g: (g["name"], g["unit_id"])),
    }


def _in_view(uow: Session, campaign_ref: str, unit_id: str | None, scope: str | None):
    campaign = queries.campaign_by_ref(uow, campaign_ref)
    if campaign is None:
        raise not_found("活动", "campaign", campaign_ref)
    subtree = None
    if unit_id:
        root = queries.get_unit(uow, unit_id, scope=scope)
        if root is None:
            raise not_found("单位", "unit", unit_id)
        if root.campaign_id != campaign.id:
            raise ApiError(
                422, "campaign_mismatch", "该单位不属于此活动", "the unit does not take part in this campaign"
            )
        subtree = root.unit_path
    return campaign, queries.current_definition(uow, campaign.id), subtree


def _district(unit_path: str) -> str:
    ids = unit_path.strip("/").split("/")
    return ids[1] if len(ids) > 1 else ids[0]


def _group(**key) -> dict:
    return {
        **key,
        "units": 0,
        "cells": {},
        "colours": {"green": 0, "yellow": 0, "red": 0},
        "liaisons": {},
        "summary_reports": {},
    }


def _add(group: dict, bucket: dict) -> None:
    group["units"] += bucket["units"]
    for name in ("cells", "colours", "liaisons", "summary_reports"):
        for key, count in bucket[name].items():
            group[name][key] = group[name].get(key, 0) + count


class _Shape:
    """What colours a campaign's cells as of a moment: worked out once per request, not once per cell."""

    def __init__(self, d: CampaignDefinition, now: datetime) -> None:
        self.red_within = timedelta(days=d.coverage.red_within_days)
        self.deadlines = {m.code: d.deadline_for(f"measure:{m.code}") for m in d.measures}
        self.summary_deadline, self.liaison_deadline = (
            d.deadline_for("summary_report"),
            d.deadline_for("liaison"),
        )
        self.codes = [m.code for m in d.measures]
        # A cell's colour depends only on its measure and state.
        self.colours = {
            (code, state): colour(state, self.deadlines[code], now, self.red_within)
            for code in self.codes
            for state in _STATES
        }
        self.summary_colours = {
            state: colour(state, self.summary_deadline, now, self.red_within) for state in _STATES
        }


def matrix(campaign: Campaign, d: CampaignDefinition, rows: list[UnitStanding], now: datetime) -> dict:
    """Shape standings into the API's matrix with colours and totals."""
    shape = _Shape(d, now)
    topic_codes = [t.code for t in d.topics]
    totals: dict[str, Any] = {
        "units": len(rows),
        "cells": {},
        "colours": {"green": 0, "yellow": 0, "red": 0},
        "liaisons": {},
    }
    cell_states, cell_colours = totals["cells"], totals["colours"]
    units = []
    # One object per (measure, state, count) and per combination of topics, shared by the units showing it.
    shown: dict[tuple[str, str, int], dict] = {}
    topic_lists: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
    for row in rows:
        cells = {}
        for code in shape.codes:
            state = row.measures.get(code, "missing")
            count = row.counts.get(code, 0)
            cell = shown.get((code, state, count))
            if cell is None:
                cell = shown[code, state, count] = {
                    "state": state,
                    "colour": shape.colours[code, state],
                    "count": count,
                }
            cells[code] = cell
            cell_states[state] = cell_states.get(state, 0) + 1
            cell_colours[cell["colour"]] += 1
        if row.topics not in topic_lists:
            topic_lists[row.topics] = (
                [t for t in topic_codes if t in row.topics],
                [t for t in topic_codes if t not in row.topics],
            )
        covered, missing = topic_lists[row.topics]
        summary_state, summary_count = row.summary_report
        liaison = _liaison(row, shape.liaison_deadline, now, shape.red_within)
        totals["liaisons"][liaison["status"]] = totals["liaisons"].get(liaison["status"], 0) + 1
        units.append(
            {
                "unit_id": row.unit_id,
                "code": row.code,
                "name": row.name,
                "level": row.level,
                "parent_id": row.parent_id,
                "unit_path": row.unit_path,
                "liaison": liaison,
                "cells": cells,
                "summary_report": {
                    "state": summary_state,
                    "colour": shape.summary_colours[summary_state],
                    "count": summary_count,
                },
                "good_practices": row.good_practices,
                "topics_covered": covered,
                "topics_missing": missing,
            }
        )
    return {**_heading(campaign, d, shape, now), "units": units, "totals": totals}


COMPACT_COLUMNS = [
    "unit_id",
    "code",
    "name",
    "level",
    "parent_id",
    "unit_path",
    "liaison_status",
    "liaison_name",
    "cells",
    "counts",
    "summary_report",
    "summary_count",
    "good_practices",
    "topics",
]
_LETTER = {"approved": "a", "submitted": "s", "returned": "r", "missing": "m"}


def compact(campaign: Campaign, d: CampaignDefinition, rows: list[UnitStanding], now: datetime) -> dict:
    """The same matrix with one array per unit (COMPACT_COLUMNS): cells as one letter per measure (a approved,
    s submitted, r returned, m missing), colours given once per measure and state, topics as one 0/1 per topic."""
    shape = _Shape(d, now)
    topic_codes = [t.code for t in d.topics]
    totals: dict[str, Any] = {
        "units": len(rows),
        "cells": {},
        "colours": {"green": 0, "yellow": 0, "red": 0},
        "liaisons": {},
    }
    cell_states, cell_colours = totals["cells"], totals["colours"]
    liaison_colours: dict[str, str] = {}
    units = []
    for row in rows:
        letters, counts = [], []
        for code in shape.codes:
            state = row.measures.get(code, "missing")
            letters.append(_LETTER[state])
            counts.append(row.counts.get(code, 0))
            cell_states[state] = cell_states.get(state, 0) + 1
            cell_colours[shape.colours[code, state]] += 1
        liaison = _liaison(row, shape.liaison_deadline, now, shape.red_within)
        liaison_colours[liaison["status"]] = liaison["colour"]
        totals["liaisons"][liaison["status"]] = totals["liaisons"].get(liaison["status"], 0) + 1
        summary_state, summary_count = row.summary_report
        units.append(
            [
                row.unit_id,
                row.code,
                row.name,
                row.level,
                row.parent_id,
                row.unit_path,
                liaison["status"],
                liaison["name"],
                "".join(letters),
                counts,
                _LETTER[summary_state],
                summary_count,
                row.good_practices,
                "".join("1" if t in row.topics else "0" for t in topic_codes),
            ]
        )
    return {
        **_heading(campaign, d, shape, now),
        "columns": COMPACT_COLUMNS,
        "letters": {letter: state for state, letter in _LETTER.items()},
        "colours": {
            code: {_LETTER[state]: shape.colours[code, state] for state in _STATES} for code in shape.codes
        },
        "summary_colours": {_LETTER[state]: shade for state, shade in shape.summary_colours.items()},
        "liaison_colours": liaison_colours,
        "units": units,
        "totals": totals,
    }


def _heading(campaign: Campaign, d: CampaignDefinition, shape: _Shape, now: datetime) -> dict:
    return {
        "campaign_id": campaign.id,
        "code": campaign.code,
        "version": campaign.version,
        "as_of": now,
        "colour_rule": COLOUR_RULE.replace("red_within_days", f"{d.coverage.red_within_days} days"),
        "measures": [
            {
                "code": m.code,
                "name": m.name,
                "deadline_code": due.code if due else None,
                "due_at": due.due if due else None,
            }
            for m in d.measures
            for due in [shape.deadlines[m.code]]
        ],
        "topics": [{"code": t.code, "name": t.name} for t in d.topics],
    }


def _liaison(row: UnitStanding, deadline: Deadline | None, now: datetime, red_within: timedelta) -> dict:
    if row.liaison_name:
        return {
            "status": "late" if row.liaison_late else "designated",
            "colour": "yellow" if row.liaison_late else "green",
            "name": row.liaison_name,
        }
    return {"status": "missing", "colour": colour("missing", deadline, now, red_within), "name": None}
