"""Sampling (抽查): whom to inspect, drawn reproducibly with a recorded seed."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from services.review.models import ReviewUnit
from tests.review.inspection_world import CampaignWorld, error, ok


@pytest.fixture
def world(tmp_path):
    """The platform with the Huaibei campaign (16 participating units: 4 counties, 12 member units)."""
    with CampaignWorld(tmp_path) as w:
        yield w


def population_by_code(world: CampaignWorld, level: str | None = None) -> list[str]:
    """The participating units' ids sorted by code, computed here independently of the service."""
    with world.review.db.session() as uow:
        rows = uow.scalars(select(ReviewUnit).where(ReviewUnit.campaign_id == world.campaign_id)).all()
    return [
        u.unit_id
        for u in sorted(rows, key=lambda u: u.code)
        if u.participates and (level is None or u.level == level)
    ]


def test_the_same_seed_draws_the_same_units(world):
    first = ok(
        world.client.post(
            "/review/samplings",
            json={"campaign_id": world.campaign_id, "size": 5, "seed": 20200321},
            headers=world.inspector(),
        ),
        201,
    )
    again = ok(
        world.client.post(
            "/review/samplings",
            json={"campaign_id": world.campaign_id, "size": 5, "seed": 20200321},
            headers=world.admin(),
        ),
        201,
    )
    population = population_by_code(world)
    assert (
        len(population) == 16 and world.units["HB"] not in population
    )  # the organising office takes no part
    assert first["population"] == population
    assert first["selected"] == again["selected"] == random.Random(20200321).sample(population, 5)
    assert first["id"] != again["id"] and first["seed"] == 20200321 and first["reproduced"] is True
    assert [u["unit_id"] for u in first["units"]] == first["selected"]
    assert {u["code"] for u in first["units"]} <= set(world.units) and first["drawn_by"] == "孙丽"
    other = ok(
        world.client.post(
            "/review/samplings",
            json={"campaign_id": world.campaign_id, "size": 5, "seed": 7},
            headers=world.inspector(),
        ),
        201,
    )
    assert other["selected"] == random.Random(7).sample(population, 5)


def test_a_draw_without_a_seed_records_one_that_repeats_it(world):
    drawn = ok(
        world.client.post(
            "/review/samplings", json={"campaign_id": world.campaign_id, "size": 3}, headers=world.inspector()
        ),
        201,
    )
    assert isinstance(drawn["seed"], int) and 0 <= drawn["seed"] < 2**63
    stored = ok(world.client.get(f"/review/samplings/{drawn['id']}", headers=world.reviewer()))
    assert (stored["seed"], stored["selected"], stored["reproduced"]) == (
        drawn["seed"],
        drawn["selected"],
        True,
    )
    repeated = ok(
        world.client.post(
            "/review/samplings",
            json={"campaign_id": world.campaign_id, "size": 3, "seed": drawn["seed"]},
            headers=world.inspector(),
        ),
        201,
    )
    assert repeated["selected"] == drawn["selected"]
    listed = ok(
        world.client.get(
            "/review/samplings", params={"campaign_id": world.campaign_id}, headers=world.admin()
        )
    )
    assert {d["id"] for d in listed} == {drawn["id"], repeated["id"]}
    assert world.audit_actions(drawn["id"]) == ["sampling.drawn"]


def test_a_level_narrows_the_population_and_the_size_is_bounded(world):
    counties = ok(
        world.client.post(
            "/review/samplings",
            json={"campaign_id": world.campaign_id, "size": 2, "level": "county", "seed": 1},
            headers=world.inspector(),
        ),
        201,
    )
    assert counties["population"] == population_by_code(world, "county") and len(counties["population"]) == 4
    assert {u["level"] for u in counties["units"]} == {"county"}
    assert counties["selected"] == random.Random(1).sample(counties["population"], 2)
    too_many = error(
        world.client.post(
            "/review/samplings",
            json={"campaign_id": world.campaign_id, "size": 5, "level": "county"},
            headers=world.inspector(),
        ),
        422,
    )
    assert too_many["code"] == "sample_too_large" and "4" in too_many["message"]
    assert (
        error(
            world.client.post(
                "/review/samplings",
                json={"campaign_id": "no-such-campaign", "size": 1},
                headers=world.inspector(),
            ),
            404,
        )["code"]
        == "not_found"
    )


def test_only_inspectors_and_admins_draw_and_units_cannot_read_draws(world):
    body = {"campaign_id": world.campaign_id, "size": 2, "seed": 3}
    assert world.client.post("/review/samplings", json=body, headers=world.reviewer()).status_code == 403
    assert world.client.post("/review/samplings", json=body, headers=world.unit("XSQ")).status_code == 403
    drawn = ok(world.client.post("/review/samplings", json=body, headers=world.inspector()), 201)
    assert world.client.get(f"/review/samplings/{drawn['id']}", headers=world.unit("XSQ")).status_code == 403
    assert world.client.get("/review/samplings/no-such-draw", headers=world.inspector()).status_code == 404
