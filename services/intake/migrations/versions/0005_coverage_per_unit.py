"""The coverage projection, one row per unit: its counters and the standing the matrix shows, as JSON.

The per-cell and per-topic rows of 0002 become one row per unit (the matrix of a province's campaign read 75,000
rows for 5,000 units; now it reads 5,000). Filled from the old rows, which are then dropped; downgrade does the
reverse.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 01:00:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    units = op.create_table(
        "coverage_units",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("standing", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "unit_id"),
    )
    bind = op.get_bind()
    keys = "SELECT unit_id FROM coverage_cells UNION SELECT unit_id FROM coverage_topics"
    unit_ids = sorted(bind.execute(sa.text(keys)).scalars())
    cells = sa.text(
        "SELECT campaign_id, unit_id, kind, measure_code, approved, pending, returned FROM coverage_cells"
        " WHERE unit_id IN :batch"
    ).bindparams(sa.bindparam("batch", expanding=True))
    topics = sa.text(
        "SELECT campaign_id, unit_id, topic_code, handed_in FROM coverage_topics"
        " WHERE handed_in <> 0 AND unit_id IN :batch"
    ).bindparams(sa.bindparam("batch", expanding=True))
    for batch in _batches(unit_ids):  # a province's campaign in bounded memory (the migrate job has 256 MiB)
        counts: dict[tuple[str, str], dict[str, Any]] = {}
        for campaign, unit, kind, code, approved, pending, returned in bind.execute(cells, {"batch": batch}):
            if approved or pending or returned:
                row = counts.setdefault((campaign, unit), {"cells": {}, "topics": {}})
                row["cells"].setdefault(kind, {})[code] = [approved, pending, returned]
        for campaign, unit, code, handed_in in bind.execute(topics, {"batch": batch}):
            counts.setdefault((campaign, unit), {"cells": {}, "topics": {}})["topics"][code] = handed_in
        rows = [
            {"campaign_id": c, "unit_id": u, "counts": _dump(row), "standing": _dump(_standing(row))}
            for (c, u), row in counts.items()
        ]
        if rows:
            op.bulk_insert(units, rows)
    op.drop_table("coverage_topics")
    op.drop_table("coverage_cells")


def downgrade() -> None:
    cells = op.create_table(
        "coverage_cells",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("measure_code", sa.String(length=64), nullable=False),
        sa.Column("approved", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("returned", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "unit_id", "kind", "measure_code"),
    )
    topics = op.create_table(
        "coverage_topics",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("topic_code", sa.String(length=64), nullable=False),
        sa.Column("handed_in", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "unit_id", "topic_code"),
    )
    bind = op.get_bind()
    unit_ids = sorted(bind.execute(sa.text("SELECT unit_id FROM coverage_units")).scalars())
    stored = sa.text(
        "SELECT campaign_id, unit_id, counts FROM coverage_units WHERE unit_id IN :batch"
    ).bindparams(sa.bindparam("batch", expanding=True))
    for batch in _batches(unit_ids):
        cell_rows, topic_rows = [], []
        for campaign, unit, stored_counts in bind.execute(stored, {"batch": batch}):
            row = json.loads(stored_counts)
            for kind, codes in row["cells"].items():
                for code, (approved, pending, returned) in codes.items():
                    cell_rows.append(
                        {
                            "campaign_id": campaign,
                            "unit_id": unit,
                            "kind": kind,
                            "measure_code": code,
                            "approved": approved,
                            "pending": pending,
                            "returned": returned,
                        }
                    )
            for code, handed_in in row["topics"].items():
                topic_rows.append(
                    {"campaign_id": campaign, "unit_id": unit, "topic_code": code, "handed_in": handed_in}
                )
        if cell_rows:
            op.bulk_insert(cells, cell_rows)
        if topic_rows:
            op.bulk_insert(topics, topic_rows)
    op.drop_table("coverage_units")


def _batches(unit_ids: list[str], size: int = 2000) -> list[list[str]]:
    return [unit_ids[start : start + size] for start in range(0, len(unit_ids), size)]


# services/intake/projection.py's standing(), frozen here as it was when the table came.
def _standing(counts: dict[str, Any]) -> dict[str, Any]:
    cells = counts["cells"]
    summary = [sum(slots[i] for slots in cells.get("summary_report", {}).values()) for i in range(3)]
    shown = {
        code: cell for code, slots in cells.get("measure", {}).items() for cell in [_shown(slots)] if cell
    }
    return {  # dicts of plain values: the collector does not track them, and the matrix reads thousands
        "measures": {code: cell[0] for code, cell in shown.items()},
        "counts": {code: cell[1] for code, cell in shown.items()},
        "summary_report": _shown(summary) or ["missing", 0],
        "good_practices": sum(slots[0] + slots[1] for slots in cells.get("good_practice", {}).values()),
        "topics": sorted(code for code, handed_in in counts["topics"].items() if handed_in > 0),
    }


def _shown(slots: list[int]) -> list[Any] | None:
    approved, pending, returned = slots
    total = approved + pending + returned
    if total <= 0:
        return None
    return ["approved" if approved > 0 else "submitted" if pending > 0 else "returned", total]


def _dump(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
