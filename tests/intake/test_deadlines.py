"""The deadline watcher on SQLite: stages, what is missing, exactly once per unit, deadline and lead."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from services.intake import campaigns, deadlines
from services.intake.bootstrap import bootstrap
from services.intake.deadlines import iso_duration, stage
from shared.settings import Settings
from tests.intake.support import as_yaml, outbox, post, setup_campaign, small_definition

DUE = datetime(2020, 3, 12, 15, 59, 59, tzinfo=UTC)
LEADS = (timedelta(days=3), timedelta(days=1))


def at(clock, when: datetime) -> None:
    clock.advance(when - clock.now())


def alerts(ctx, since: int = 0) -> Counter:
    """(type, unit id, deadline, lead) of the deadline events in the outbox after the first `since` events."""
    return Counter(
        (e.type, e.payload["unit_id"], e.payload["deadline_code"], e.payload.get("lead"))
        for e in outbox(ctx)[since:]
        if e.type.startswith("deadline.")
    )


@pytest.mark.parametrize(
    "now, expected",
    [
        (DUE - timedelta(days=4), None),
        (DUE - timedelta(days=3), "P3D"),
        (DUE - timedelta(hours=30), "P3D"),
        (DUE - timedelta(hours=23), "P1D"),
        (DUE, "missed"),
        (DUE + timedelta(days=7), "missed"),
        (DUE + timedelta(days=7, seconds=1), None),
    ],
)
def test_stage_is_the_closest_passed_lead_then_missed(now, expected):
    assert stage(DUE, now, LEADS, timedelta(days=7)) == expected


def test_iso_durations():
    assert [
        iso_duration(d)
        for d in (timedelta(days=3), timedelta(hours=12), timedelta(days=1, hours=6, minutes=30))
    ] == ["P3D", "PT12H", "P1DT6H30M"]


def test_each_alert_fires_once_per_unit_deadline_and_lead_across_restarts(api, ctx, clock, tmp_path):
    units = setup_campaign(api)
    ids = {code: units[code]["id"] for code in ("D1", "D2", "S1", "V1")}
    without_liaison = {ids["D2"], ids["S1"], ids["V1"]}

    at(clock, datetime(2020, 3, 10, 4, tzinfo=UTC))  # 2.5 days before the liaison deadline
    start = len(outbox(ctx))
    assert deadlines.watch_deadlines(ctx=ctx) == 3
    fired = alerts(ctx, start)
    assert fired == Counter({("deadline.approaching", unit, "liaison", "P3D"): 1 for unit in without_liaison})
    event = next(e for e in outbox(ctx, "deadline.approaching") if e.payload["unit_id"] == ids["D2"])
    assert event.payload["missing"] == ["联络员"] and event.payload["deadline_name"] == "明确联络员"
    assert event.payload["due_at"].startswith("2020-03-12T15:59:59")
    assert deadlines.watch_deadlines(ctx=ctx) == 0

    restarted = bootstrap(Settings(data_dir=tmp_path), clock=clock)  # a new process on the same database
    try:
        assert deadlines.watch_deadlines(ctx=restarted) == 0
        at(clock, datetime(2020, 3, 12, 1, tzinfo=UTC))
        assert deadlines.watch_deadlines(ctx=restarted) == 3
        assert deadlines.watch_deadlines(ctx=ctx) == 0
    finally:
        restarted.db.dispose()

    api.put(f"/units/{ids['D2']}/liaison", json={"name": "周敏", "email": "zhou.min@example.org"})
    at(clock, datetime(2020, 3, 13, 1, tzinfo=UTC))  # past the deadline
    mark = len(outbox(ctx))
    assert deadlines.watch_deadlines(ctx=ctx) == 2
    assert alerts(ctx, mark) == Counter(
        {
            ("deadline.missed", ids["S1"], "liaison", None): 1,
            ("deadline.missed", ids["V1"], "liaison", None): 1,
        }
    )
    assert deadlines.watch_deadlines(ctx=ctx) == 0
    at(clock, datetime(2020, 3, 25, tzinfo=UTC))  # long after: no late flood
    assert deadlines.watch_deadlines(ctx=ctx) == 0
    total = Counter(e.type for e in outbox(ctx) if e.type.startswith("deadline."))
    assert total == Counter({"deadline.approaching": 6, "deadline.missed": 2})


def test_missing_lists_what_each_unit_still_owes(api, ctx, clock):
    units = setup_campaign(api)
    post(api, unit_id=units["D1"]["id"], measure_code="M1", title="会议")
    post(api, unit_id=units["D1"]["id"], kind="summary_report", title="总结")
    at(clock, datetime(2020, 4, 4, tzinfo=UTC))
    mark = len(outbox(ctx))
    assert deadlines.watch_deadlines(ctx=ctx) == 4
    missing = {e.payload["unit_id"]: e.payload["missing"] for e in outbox(ctx)[mark:]}
    assert missing[units["D1"]["id"]] == ["M2 宣传横幅"]
    assert missing[units["V1"]["id"]] == ["活动总结", "M1 专题会议", "M2 宣传横幅"]
    assert {e.payload["lead"] for e in outbox(ctx)[mark:]} == {"P3D"}


def test_a_moved_deadline_is_a_new_deadline(api, ctx, clock):
    setup_campaign(api)
    at(clock, datetime(2020, 4, 3, tzinfo=UTC))
    assert deadlines.watch_deadlines(ctx=ctx) == 4
    data = small_definition()
    data["deadlines"][1]["due"] = "2020-04-08"
    assert (
        api.post(
            "/campaigns", content=as_yaml(data).encode(), headers={"Content-Type": "application/yaml"}
        ).json()["version"]
        == 2
    )
    at(clock, datetime(2020, 4, 6, tzinfo=UTC))  # 2.7 days before the new date
    mark = len(outbox(ctx))
    assert deadlines.watch_deadlines(ctx=ctx) == 4
    assert {e.payload["due_at"][:10] for e in outbox(ctx)[mark:]} == {"2020-04-08"}


def test_lead_times_come_from_settings(tmp_path, clock):
    settings = Settings(data_dir=tmp_path, deadline_lead_times="PT12H", deadline_watch_interval_s=60)
    assert settings.deadline_lead_times == (timedelta(hours=12),)
    context = bootstrap(settings, clock=clock)
    try:
        campaigns.load_definition(as_yaml(small_definition()), ctx=context)
        at(clock, datetime(2020, 3, 11, tzinfo=UTC))  # 40 hours before: outside a 12-hour lead
        assert deadlines.watch_deadlines(ctx=context) == 0
        at(clock, datetime(2020, 3, 12, 6, tzinfo=UTC))
        assert deadlines.watch_deadlines(ctx=context) == 3
        assert {e.payload["lead"] for e in outbox(context, "deadline.approaching")} == {"PT12H"}
    finally:
        context.db.dispose()
