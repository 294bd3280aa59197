"""`make demo` against a temporary data dir: the Huaibei plan shifted so that it runs today, with people, evidence,
decisions, an inspection and a supervision; then the platform (as `make run` starts it) shows it in progress."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from deploy.demo import CAMPAIGN_FILE, DAY_OF_WINDOW, DEMO_CODE, LIAISONS, REPORTS, load_demo
from deploy.embedded import build_platform
from services.intake.definition import parse_definition
from shared.settings import Settings

PASSWORD = "demo-test-password"


@pytest.mark.timeout(900)
def test_make_demo_loads_a_campaign_in_progress(tmp_path):
    settings = Settings(
        data_dir=tmp_path, bus_retry_delays_ms=(50, 100), outbox_poll_s=0.1, evidence_rendition_poll_s=0.5
    )
    plan = parse_definition(CAMPAIGN_FILE.read_text(encoding="utf-8"))
    today = datetime.now(plan.zone).date()
    out = io.StringIO()
    campaign_id = load_demo(settings, password=PASSWORD, out=out)
    assert campaign_id and "make run" in out.getvalue()

    with TestClient(
        build_platform(settings).app
    ) as http:  # the platform as `make run` starts it on that state
        token = http.post("/intake/auth/login", json={"username": "demo-admin", "password": PASSWORD}).json()[
            "access_token"
        ]
        http.headers["Authorization"] = f"Bearer {token}"

        campaign = http.get(f"/intake/campaigns/{DEMO_CODE}").json()
        days = campaign["definition"]["shift"]["days"]
        assert days == (today - timedelta(days=DAY_OF_WINDOW) - plan.windows.publicity.start).days
        assert campaign["definition"]["shift"]["source"] == "huaibei-2020"
        start, end = (
            date.fromisoformat(campaign["publicity_start"]),
            date.fromisoformat(campaign["publicity_end"]),
        )
        assert start <= today <= end and start == plan.windows.publicity.start + timedelta(days=days)
        assert date.fromisoformat(campaign["inspection_start"]) <= today  # inspections can be recorded today
        moved = {d["code"]: datetime.fromisoformat(d["due"]) for d in campaign["definition"]["deadlines"]}
        assert moved == {
            d.code: d.due + timedelta(days=days) for d in plan.deadlines
        }  # all dates moved together
        assert len(http.get(f"/intake/campaigns/{campaign_id}/materials").json()) == len(plan.materials)

        coverage = http.get(f"/intake/campaigns/{campaign_id}/coverage").json()
        states = [cell["state"] for unit in coverage["units"] for cell in unit["cells"].values()]
        decisions = [spec.decision[0] for spec in REPORTS if spec.decision and spec.measure]
        assert states.count("approved") == decisions.count("approve") and states.count(
            "returned"
        ) == decisions.count("return")
        assert (
            "submitted" in states and "missing" in states
        )  # a campaign in progress: some done, some waiting

        queue = http.get("/review/queue", params={"campaign_id": campaign_id}).json()
        assert len(queue) == len([spec for spec in REPORTS if not spec.decision])
        ranking = http.get("/review/assessment", params={"campaign_id": campaign_id}).json()["units"]
        leader = min((u for u in ranking if u["level"] == "county"), key=lambda u: u["rank"])
        assert leader["code"] == "XSQ" and leader["total"] > 0

        # the copied photo is flagged on both sides: the original says it came first and names the copier
        units = {u["code"]: u for u in http.get(f"/intake/campaigns/{campaign_id}/units").json()}

        def evidence_of(code: str, measure: str) -> list[dict]:
            [row] = [
                s
                for s in http.get("/intake/submissions", params={"unit_id": units[code]["id"]}).json()
                if s["measure_code"] == measure
            ]
            return http.get(f"/evidence/submissions/{row['id']}/evidence").json()

        original = [d for e in evidence_of("XSQ", "M5") for d in e["duplicates"]]
        copy = [d for e in evidence_of("DJQ", "M5") for d in e["duplicates"]]
        assert [(d["came_first"], d["other_unit_id"]) for d in original] == [("this", units["DJQ"]["id"])]
        assert [(d["came_first"], d["other_unit_id"]) for d in copy] == [("other", units["XSQ"]["id"])]
        # ... and so does the review item of the original, though it was approved before the copy came
        first_m5 = next(
            s
            for s in http.get("/intake/submissions", params={"unit_id": units["XSQ"]["id"]}).json()
            if s["measure_code"] == "M5"
        )
        reviewed = http.get(f"/review/submissions/{first_m5['id']}").json()
        copiers = {unit for others in reviewed["duplicates"].values() for unit in others}
        assert "duplicate" in reviewed["flags"] and units["DJQ"]["id"] in copiers
        assert [d["came_first"] for e in reviewed["evidence"] for d in e["duplicates"]] == ["this"]
        hevc = [e for e in evidence_of("XSQ", "M7") if e["category"] == "video"]
        assert [(e["video_codec"], e["rendition"]["state"]) for e in hevc] == [("hevc", "ready")]

        [inspection] = http.get("/review/inspections", params={"campaign_id": campaign_id}).json()
        assert inspection["inspected_on"] == today.isoformat() and inspection["unit_id"] == units["DJQ"]["id"]
        supervisions = http.get("/review/supervisions", params={"campaign_id": campaign_id}).json()
        opened = {(s["unit_id"], s["rule"], s["state"]) for s in supervisions}
        assert (units["RSJ"]["id"], "manual", "open") in opened  # opened by the reviewer
        assert opened <= {(units["RSJ"]["id"], "manual", "open"), (units["DJQ"]["id"], "inspection", "open")}
        for username in LIAISONS.values():  # every demo liaison can log in
            assert (
                http.post("/intake/auth/login", json={"username": username, "password": PASSWORD}).status_code
                == 200
            )
        assert all(
            u["liaison_email"] is None or u["liaison_email"].endswith("@example.org") for u in units.values()
        )

    again = io.StringIO()
    assert load_demo(settings, password=PASSWORD, out=again) is None and "未重复加载" in again.getvalue()
