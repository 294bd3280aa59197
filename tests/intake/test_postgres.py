"""Campaign loading and the coverage matrix on PostgreSQL, including loads racing each other."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from services.intake import campaigns
from services.intake.api import create_app
from services.intake.bootstrap import bootstrap
from shared.clock import FixedClock
from shared.settings import Settings
from tests.intake.support import BEFORE_CAMPAIGN, admin_header, as_yaml, huaibei_text, post, small_definition


@pytest.fixture
def pg_settings(tmp_path, postgres_url) -> Settings:
    """Settings on a fresh PostgreSQL database."""
    return Settings(data_dir=tmp_path, database_url=postgres_url)


def race(contexts, work) -> list:
    """Run work(ctx) on every context at the same moment; returns the results (or exceptions)."""
    barrier = threading.Barrier(len(contexts))
    results: list = []

    def run(ctx) -> None:
        barrier.wait()
        try:
            results.append(work(ctx))
        except Exception as exc:  # collected and asserted on by the caller
            results.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_racing_loads_create_one_campaign_then_serialise_new_versions(pg_settings):
    contexts = [bootstrap(pg_settings, clock=FixedClock(BEFORE_CAMPAIGN)) for _ in range(4)]
    try:
        results = race(contexts, lambda ctx: campaigns.load_definition(huaibei_text(), ctx=ctx))
        assert Counter(r.outcome for r in results) == Counter({"created": 1, "unchanged": 3}), results
        assert {r.campaign_id for r in results} == {results[0].campaign_id}

        variants = [small_definition(code="huaibei-2020", name=f"改版{n}") for n in range(2)]
        results = race(
            contexts[:2],
            lambda ctx: campaigns.load_definition(as_yaml(variants[contexts.index(ctx)]), ctx=ctx),
        )
        assert sorted(r.version for r in results) == [2, 3] and {r.outcome for r in results} == {
            "new_version"
        }
    finally:
        for ctx in contexts:
            ctx.db.dispose()


def test_coverage_and_subtree_filters_on_postgres(pg_settings):
    ctx = bootstrap(pg_settings, clock=FixedClock(BEFORE_CAMPAIGN))
    try:
        with TestClient(create_app(ctx)) as api:
            api.headers.update(admin_header(ctx))
            loaded = api.post(
                "/campaigns",
                content=as_yaml(small_definition()).encode(),
                headers={"Content-Type": "application/yaml"},
            )
            campaign_id = loaded.json()["campaign_id"]
            units = {u["code"]: u for u in api.get(f"/campaigns/{campaign_id}/units").json()}
            assert (
                post(
                    api, unit_id=units["V1"]["id"], measure_code="M1", title="社区会议", topics=["T1"]
                ).status_code
                == 201
            )
            assert post(api, unit_id=units["D2"]["id"], measure_code="M2", title="横幅").status_code == 201
            matrix = api.get(
                f"/campaigns/{campaign_id}/coverage", params={"unit_id": units["D1"]["id"]}
            ).json()
            rows = {u["code"]: u for u in matrix["units"]}
            assert set(rows) == {"D1", "S1", "V1"}
            assert rows["V1"]["cells"]["M1"]["state"] == "submitted" and rows["V1"]["topics_covered"] == [
                "T1"
            ]
            assert [
                s["title"] for s in api.get("/submissions", params={"subtree_of": units["D2"]["id"]}).json()
            ] == ["横幅"]
            assert len(api.get("/units", params={"subtree_of": units["S1"]["id"]}).json()) == 2
    finally:
        ctx.db.dispose()
