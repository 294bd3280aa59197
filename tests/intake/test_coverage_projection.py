"""The coverage projection: what every submission change maintains equals a rebuild from the submissions."""

from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from services.intake import cli, projection, submissions
from services.intake.api import create_app
from services.intake.bootstrap import bootstrap
from services.intake.models import CoverageUnit
from shared.clock import FixedClock
from shared.contracts import make_event
from shared.contracts.review import (
    SubmissionApproved,
    SubmissionClaimed,
    SubmissionRejected,
    SubmissionReleased,
    SubmissionReturned,
)
from shared.settings import Settings
from tests.intake.support import BEFORE_CAMPAIGN, admin_header, handle, post, setup_campaign


def projected(ctx) -> tuple[set, set, dict]:
    """The projection's counters as plain tuples (cells, topics), and each unit's standing as the matrix reads it."""
    cells, topics, standings = set(), set(), {}
    with ctx.db.session() as uow:
        for row in uow.scalars(select(CoverageUnit)):
            counts = json.loads(row.counts)
            cells |= {
                (row.campaign_id, row.unit_id, kind, code, *slots)
                for kind, codes in counts["cells"].items()
                for code, slots in codes.items()
            }
            topics |= {(row.campaign_id, row.unit_id, code, n) for code, n in counts["topics"].items()}
            assert json.loads(row.standing) == projection.standing(counts)
            standings[row.unit_id] = row.standing
    assert all(0 not in {a + p + r} for *_, a, p, r in cells) and all(n for *_, n in topics)
    return cells, topics, standings


def event(ctx, sub: dict, model, handler=submissions.record_decision, **extra) -> None:
    """Deliver a review event about the submission to intake's handler."""
    if model in (SubmissionClaimed, SubmissionReleased):
        payload = model(
            submission_id=sub["id"], unit_id=sub["unit_id"], version=sub["version"], reviewer="王芳", **extra
        )
        handler = submissions.record_claim
    else:
        payload = model(
            submission_id=sub["id"],
            unit_id=sub["unit_id"],
            measure_code=sub["measure_code"],
            title=sub["title"],
            version=sub["version"],
            reviewer="王芳",
            **extra,
        )
    handle(ctx, make_event(payload, producer="review"), handler)


def busy_campaign(api, ctx) -> dict:
    """A campaign whose submissions went through every kind of change."""
    units = setup_campaign(api)
    d1, d2, v1 = units["D1"]["id"], units["D2"]["id"], units["V1"]["id"]
    approved = post(api, unit_id=d1, measure_code="M1", title="会议", topics=["T1"]).json()
    event(ctx, approved, SubmissionApproved)
    second = post(api, unit_id=d1, measure_code="M1", title="第二次会议", topics=["T1", "T2"]).json()
    event(ctx, second, SubmissionClaimed)
    event(ctx, second, SubmissionReleased)
    event(ctx, second, SubmissionClaimed)
    event(ctx, second, SubmissionRejected, comment="重复")
    returned = post(api, unit_id=d2, measure_code="M1", title="会议", topics=["T2"]).json()
    event(ctx, returned, SubmissionReturned, comment="请补充")
    resubmitted = api.post(
        f"/submissions/{returned['id']}/resubmit", json={"topics": ["T1"], "description": "补充"}
    ).json()
    event(ctx, resubmitted, SubmissionApproved)
    draft = post(api, unit_id=v1, measure_code="M2", title="草稿", submit=False, topics=["T1"]).json()
    api.patch(f"/submissions/{draft['id']}", json={"topics": ["T2"]})
    api.post(f"/submissions/{draft['id']}/submit")
    withdrawn = post(api, unit_id=v1, measure_code="M1", title="撤回", topics=["T1"]).json()
    api.post(f"/submissions/{withdrawn['id']}/withdraw")
    still_returned = post(api, unit_id=v1, measure_code="M2", title="待改", topics=["T1"]).json()
    event(ctx, still_returned, SubmissionReturned, comment="请补充")
    post(api, unit_id=d2, kind="summary_report", title="总结")
    post(api, unit_id=d2, kind="good_practice", title="经验", topics=["T2"])
    post(api, unit_id=d2, kind="good_practice", title="经验二")
    return units


@pytest.mark.parametrize("batch", [projection.REBUILD_BATCH, 1])
def test_rebuild_equals_what_the_changes_maintained(api, ctx, monkeypatch, batch):
    monkeypatch.setattr(projection, "REBUILD_BATCH", batch)  # 1: a round per unit, as a province's would be
    units = busy_campaign(api, ctx)
    before = api.get(f"/campaigns/{units['_campaign']}/coverage").json()
    maintained = projected(ctx)
    assert maintained[0] and maintained[1]
    with ctx.db.transaction() as uow:
        assert projection.rebuild(uow) == (len(maintained[0]), len(maintained[1]))
    assert projected(ctx) == maintained
    assert api.get(f"/campaigns/{units['_campaign']}/coverage").json() == before
    rows = {u["code"]: u for u in before["units"]}
    assert rows["D1"]["cells"]["M1"] == {
        "state": "approved",
        "colour": "green",
        "count": 1,
    }  # the rejected one shows as nothing
    assert rows["D2"]["cells"]["M1"]["state"] == "approved" and rows["D2"]["good_practices"] == 2
    assert rows["V1"]["cells"]["M2"] == {"state": "submitted", "colour": "yellow", "count": 2}
    assert rows["V1"]["topics_covered"] == [
        "T2"
    ]  # the draft's edited topic counts once handed in; the returned one's not


def test_rebuild_command_repairs_a_damaged_projection(api, ctx):
    units = busy_campaign(api, ctx)
    maintained = projected(ctx)
    with ctx.db.transaction() as uow:
        uow.query(CoverageUnit).filter(CoverageUnit.unit_id != units["V1"]["id"]).delete()
        uow.query(CoverageUnit).update(
            {"counts": json.dumps({"cells": {}, "topics": {"T9": 3}}), "standing": "{}"}
        )
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["rebuild-coverage", "--campaign", "demo-2020"], ctx=ctx, out=out, err=err) == 0, (
        err.getvalue()
    )
    assert "覆盖情况投影已重建" in out.getvalue()
    assert projected(ctx) == maintained
    assert cli.main(["rebuild-coverage", "--campaign", "nope"], ctx=ctx, out=out, err=err) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migration_fills_the_projection_from_existing_submissions(tmp_path, request, backend):
    from alembic import command

    from shared.migrations import alembic_config, migration_connection, upgrade

    database = {"database_url": request.getfixturevalue("postgres_url")} if backend == "postgresql" else {}
    ctx = bootstrap(Settings(data_dir=tmp_path, **database), clock=FixedClock(BEFORE_CAMPAIGN))
    try:
        with TestClient(create_app(ctx)) as api:
            api.headers.update(admin_header(ctx))
            busy_campaign(api, ctx)
        maintained = projected(ctx)
        # Back to the per-cell rows of 0002, filled from one row per unit; then to before the projection existed.
        with migration_connection(ctx.db) as conn:
            command.downgrade(alembic_config("intake", conn), "0004")
            cells = conn.execute(text("SELECT COUNT(*) FROM coverage_cells")).scalar_one()
            assert cells == len(maintained[0])
            command.downgrade(alembic_config("intake", conn), "0001")
        upgrade(ctx.db, "intake")  # 0002 fills the cells from the submissions, 0005 the units from the cells
        assert projected(ctx) == maintained
        with migration_connection(ctx.db) as conn:
            command.downgrade(alembic_config("intake", conn), "0004")
        upgrade(ctx.db, "intake")
        assert projected(ctx) == maintained
    finally:
        ctx.db.dispose()


@pytest.mark.parametrize("writers", [4])
def test_concurrent_changes_add_up_on_postgresql(tmp_path, postgres_url, writers):
    import threading

    ctx = bootstrap(Settings(data_dir=tmp_path, database_url=postgres_url), clock=FixedClock(BEFORE_CAMPAIGN))
    try:
        with TestClient(create_app(ctx)) as api:
            api.headers.update(admin_header(ctx))
            units = setup_campaign(api)
            errors: list = []

            def hand_in(n: int) -> None:
                try:
                    for i in range(5):
                        response = post(  # different cells and topics of one unit: its row is what they share
                            api,
                            unit_id=units["D1"]["id"],
                            measure_code=("M1", "M2")[n % 2],
                            title=f"会议{n}-{i}",
                            topics=[("T1", "T2")[i % 2]],
                        )
                        assert response.status_code == 201, response.text
                except Exception as exc:  # asserted below
                    errors.append(exc)

            threads = [threading.Thread(target=hand_in, args=(n,)) for n in range(writers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            maintained = projected(ctx)
            unit = (units["_campaign"], units["D1"]["id"])
            assert {
                (*unit, "measure", "M1", 0, writers // 2 * 5, 0),
                (*unit, "measure", "M2", 0, writers // 2 * 5, 0),
            } <= maintained[0]
            assert {(*unit, "T1", writers * 3), (*unit, "T2", writers * 2)} <= maintained[1]
            with ctx.db.transaction() as uow:
                projection.rebuild(uow)
            assert projected(ctx) == maintained
    finally:
        ctx.db.dispose()


def decoded(compact: dict) -> list[dict]:
    """The compact matrix's rows as the full matrix shows them."""
    codes, topics = [m["code"] for m in compact["measures"]], [t["code"] for t in compact["topics"]]
    states = compact["letters"]
    rows = []
    for values in compact["units"]:
        row = dict(zip(compact["columns"], values, strict=True))
        rows.append(
            {
                "unit_id": row["unit_id"],
                "code": row["code"],
                "name": row["name"],
                "level": row["level"],
                "parent_id": row["parent_id"],
                "unit_path": row["unit_path"],
                "liaison": {
                    "status": row["liaison_status"],
                    "colour": compact["liaison_colours"][row["liaison_status"]],
                    "name": row["liaison_name"],
                },
                "cells": {
                    code: {
                        "state": states[letter],
                        "colour": compact["colours"][code][letter],
                        "count": count,
                    }
                    for code, letter, count in zip(codes, row["cells"], row["counts"], strict=True)
                },
                "summary_report": {
                    "state": states[row["summary_report"]],
                    "colour": compact["summary_colours"][row["summary_report"]],
                    "count": row["summary_count"],
                },
                "good_practices": row["good_practices"],
                "topics_covered": [t for t, bit in zip(topics, row["topics"], strict=True) if bit == "1"],
                "topics_missing": [t for t, bit in zip(topics, row["topics"], strict=True) if bit == "0"],
            }
        )
    return rows


def test_the_compact_matrix_says_what_the_full_one_says(api, ctx):
    units = busy_campaign(api, ctx)
    for params in ({}, {"unit_id": units["S1"]["id"]}):
        full = api.get(f"/campaigns/{units['_campaign']}/coverage", params=params).json()
        small = api.get(f"/campaigns/{units['_campaign']}/coverage", params={**params, "format": "compact"})
        assert small.status_code == 200
        small = small.json()
        assert decoded(small) == full["units"] and small["totals"] == full["totals"]
        same = ("campaign_id", "as_of", "measures", "topics")
        assert {k: small[k] for k in same} == {k: full[k] for k in same}
    assert api.get(f"/campaigns/{units['_campaign']}/coverage", params={"format": "csv"}).status_code == 422


def test_rollups_add_up_the_matrix_per_level_and_district(api, ctx):
    units = busy_campaign(api, ctx)
    full = api.get(f"/campaigns/{units['_campaign']}/coverage").json()
    rollup = api.get(f"/campaigns/{units['_campaign']}/coverage/rollup").json()
    assert rollup["units"] == full["totals"]["units"] == 4
    for groups in (rollup["levels"], rollup["districts"]):
        assert sum(g["units"] for g in groups) == 4
        for colour in ("green", "yellow", "red"):
            assert sum(g["colours"][colour] for g in groups) == full["totals"]["colours"][colour]
    by_district = {g["name"]: g for g in rollup["districts"]}
    expected = {}  # a district is the second id of a unit's path (the top unit's child)
    for row in full["units"]:
        district = row["unit_path"].strip("/").split("/")[1]
        expected[district] = expected.get(district, 0) + 1
    assert {g["unit_id"]: g["units"] for g in rollup["districts"]} == expected
    assert all(name for name in by_district)
    levels = {g["level"]: g for g in rollup["levels"]}
    approved = sum(
        1 for row in full["units"] for cell in row["cells"].values() if cell["state"] == "approved"
    )
    assert sum(g["cells"].get("approved", 0) for g in levels.values()) == approved
    streets = api.get(
        f"/campaigns/{units['_campaign']}/coverage/rollup", params={"unit_id": units["S1"]["id"]}
    ).json()
    assert streets["units"] == 2


def test_a_claim_delivered_after_its_release_leaves_the_submission_submitted(tmp_path):
    """The bus may deliver a redelivered claim after the release that followed it: intake keeps review's order."""
    from datetime import timedelta

    ctx = bootstrap(Settings(data_dir=tmp_path), clock=FixedClock(BEFORE_CAMPAIGN))
    api = TestClient(create_app(ctx))
    api.headers.update(admin_header(ctx))
    try:
        units = setup_campaign(api)
        sub = post(api, unit_id=units["D1"]["id"], measure_code="M1", title="会议", topics=["T1"]).json()
        payload = {"submission_id": sub["id"], "unit_id": sub["unit_id"], "version": 1, "reviewer": "王芳"}
        claim = make_event(SubmissionClaimed(**payload), producer="review")
        release = make_event(SubmissionReleased(**payload), producer="review")
        release = release.model_copy(update={"occurred_at": claim.occurred_at + timedelta(seconds=1)})
        handle(ctx, release, submissions.record_claim)  # the release first: nothing to release yet
        handle(ctx, claim, submissions.record_claim)  # then the older claim: ignored
        assert api.get(f"/submissions/{sub['id']}").json()["state"] == "submitted"

        again = make_event(SubmissionClaimed(**payload), producer="review")
        again = again.model_copy(update={"occurred_at": release.occurred_at + timedelta(seconds=1)})
        handle(ctx, again, submissions.record_claim)  # a newer claim still counts
        assert api.get(f"/submissions/{sub['id']}").json()["state"] == "under_review"
    finally:
        api.close()
        ctx.db.dispose()
