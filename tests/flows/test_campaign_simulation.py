"""Acceptance test of issue #5: the whole Huaibei campaign played by 14 units on a controllable clock.

One simulated campaign (tests/flows/simulation.py, docs/simulation.md) is shared by the tests of this
module; each test looks at one side of it. The expected figures below are worked out by hand from
the rubric of deploy/campaigns/huaibei-2020.yaml, never by calling the assessment code:

    measures 60, split by weight (M2 and M7 weigh 1.5, the others 1, of 8): 7.5 each, 11.25 for M2/M7,
             times the reviewer's score / 100; a unit not inspected gets inspection 30 x measures / 60
    timeliness 10: liaison by 12 March and summary by 5 April, 5 each, minus 1 per started day late
    inspection 30: measures in place 12 x verified/7, residents aware 6 x aware/asked,
             residents able 6 x able/asked, staff 6 x proficient/tested (each rounded to 2 decimals)
    supervision deductions by method as it stands: phone 2, on-site 5, interview (约谈) 10, capped at 20
    good practice +1 per approved report, capped at 5
"""

from __future__ import annotations

import hashlib
import io
import random
from collections import Counter
from typing import NamedTuple

import pytest
from docx import Document
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from deploy.embedded import build_platform
from services.review import cli as review_cli
from shared.clock import FixedClock
from shared.settings import Settings
from tests.flows.simulation import SAMPLING_SEED, START, Simulation, at
from tests.helpers import read_eml, wait_until

S = 60 * 1 / 8  # 7.5: M1, M3, M4, M5, M6
H = 60 * 1.5 / 8  # 11.25: M2, M7
ALL = 5 * S + 2 * H  # 60: every measure approved at 100


class Row(NamedTuple):
    """A unit's expected standing: rank within its level, the five parts and the total."""

    rank: int
    measures: float
    timeliness: float
    inspection: float
    deductions: float
    bonus: float
    total: float


# As of 10 April 2020, 16:00, when the office makes the circular.
FINAL = {
    # 三区一县 (county level)
    "LSQ": Row(
        1, ALL, 5 + 5, 30 * ALL / 60, 0, min(7 * 1, 5), 105
    ),  # not inspected; 7 good practices, bonus capped
    "XSQ": Row(2, ALL, 5 + 5, 12 + 6 + 6 + 6, 0, 2 * 1, 102),  # perfect on-site inspection; 2 good practices
    "DJQ": Row(
        3, ALL, 5 + 5, 12 * 7 / 7 + 6 * 9 / 10 + 6 * 8 / 10 + 6 * 3 / 4, 0, 0, 96.7
    ),  # M5 returned, fixed
    "SXX": Row(
        4, ALL, 5 + 5, 5.14 + 6 * 3 / 10 + 6 * 1 / 10 + 6 * 1 / 5, 5, 0, 73.74
    ),  # 12 x 3/7 = 5.142… → 5.14
    # 市直单位 (member units)
    "GAJ": Row(1, ALL, 5 + 5, 12 + 6 + 6 + 6, 0, 0, 100),
    "MZJ": Row(1, ALL, 5 + 5, 30 * ALL / 60, 0, 0, 100),  # equal totals share a rank
    "ZJJ": Row(
        3, ALL - S + S * 0.80, 5 + 5, 30 * 58.5 / 60, 0, 0, 97.75
    ),  # duplicate M3 rejected, own M3 scored 80
    "JTJ": Row(4, ALL, (5 - 2) + 5, 30 * ALL / 60, 2, 0, 96),  # liaison 2 started days late; red phone case
    "WJW": Row(4, ALL, 5 + (5 - 2), 30 * ALL / 60, 2, 0, 96),  # summary 2 started days late; red phone case
    "SJJ": Row(6, ALL, 5 + 5, 12 + 6 * 8 / 10 + 6 * 7 / 10 + 6 * 4 / 5, 0, 0, 95.8),
    "JYJ": Row(7, ALL, 5 + 5, 30 * ALL / 60, 5, 0, 95),  # manual case escalated to red on-site
    "RSJ": Row(
        8, S * 0.9 + H * 0.8 + S + S * 0.9 + S + S + H * 0.8, 5 + 5, 30 * 54 / 60, 0, 0, 91
    ),  # scores 90/80/100/90/100/100/80
    "ZRJ": Row(9, ALL - S, 5 + 5, 30 * 52.5 / 60, 10 + 2, 0, 76.75),  # M6 returned for good; 约谈 + red phone
    "NYJ": Row(
        10, 0, 0, 0, min(10 + 10 + 2, 20), 0, -20
    ),  # silent: three cases, deductions capped; no floor at 0
}

# As of 31 March (end of day): no summary is due yet (0 of 5, not overdue), WJW and ZRJ have no summary
# case yet, ZRJ's returned_stale case is red on-site (约谈 only from 3 April), fewer good practices approved.
MARCH_31 = {
    "LSQ": Row(1, ALL, 5 + 0, 30, 0, 2 * 1, 97),
    "XSQ": Row(2, ALL, 5 + 0, 30, 0, 1 * 1, 96),
    "DJQ": Row(3, ALL, 5 + 0, 26.7, 0, 0, 91.7),
    "SXX": Row(4, ALL, 5 + 0, 8.74, 5, 0, 68.74),
    "GAJ": Row(1, ALL, 5 + 0, 30, 0, 0, 95),
    "MZJ": Row(1, ALL, 5 + 0, 30, 0, 0, 95),
    "WJW": Row(1, ALL, 5 + 0, 30, 0, 0, 95),
    "ZJJ": Row(4, 58.5, 5 + 0, 29.25, 0, 0, 92.75),
    "JTJ": Row(5, ALL, 3 + 0, 30, 2, 0, 91),
    "SJJ": Row(6, ALL, 5 + 0, 25.8, 0, 0, 90.8),
    "JYJ": Row(7, ALL, 5 + 0, 30, 5, 0, 90),
    "RSJ": Row(8, 54, 5 + 0, 27, 0, 0, 86),
    "ZRJ": Row(9, 52.5, 5 + 0, 26.25, 5, 0, 78.75),
    "NYJ": Row(10, 0, 0, 0, 10 + 10, 0, -20),
}

COUNTY, MEMBER = (
    ("XSQ", "DJQ", "LSQ", "SXX"),
    ("GAJ", "RSJ", "ZJJ", "ZRJ", "JYJ", "WJW", "MZJ", "SJJ", "NYJ", "JTJ"),
)

# Every supervision at the end: (unit, rule, level, method, state, escalations).
CASES = sorted(
    [
        (
            "NYJ",
            "deadline_missed",
            "red",
            "interview",
            "open",
            2,
        ),  # liaison: red phone 3/13 → on-site 3/19 → 约谈 3/25
        ("JTJ", "deadline_missed", "red", "phone", "closed", 0),  # liaison: answered 3/14, closed 3/16
        (
            "JYJ",
            "manual",
            "red",
            "on_site",
            "closed",
            1,
        ),  # yellow phone 3/20 → red on-site 3/26; answered, closed
        (
            "ZRJ",
            "returned_stale",
            "red",
            "interview",
            "open",
            2,
        ),  # yellow phone 3/22 → red on-site 3/28 → 约谈 4/3
        ("NYJ", "inspection", "red", "interview", "open", 1),  # yellow on-site 3/23 → red 约谈 3/29
        ("SXX", "inspection", "yellow", "on_site", "closed", 0),  # answered 3/28 in time, closed 3/30
        ("NYJ", "deadline_missed", "red", "phone", "open", 0),  # summary, 4/6
        ("ZRJ", "deadline_missed", "red", "phone", "open", 0),  # summary (M6 still returned), 4/6
        ("WJW", "deadline_missed", "red", "phone", "closed", 0),  # summary, 4/6; handed in 4/7, closed 4/8
    ]
)

# What the 08:00 rules pass opened and escalated, day by day: (day, opened, escalated) as (unit, rule, level, method).
RULE_RUNS = [
    ("03-19", [], [("NYJ", "deadline_missed", "red", "on_site")]),
    ("03-22", [("ZRJ", "returned_stale", "yellow", "phone")], []),  # returned 3/16 15:00, 5 days passed
    ("03-25", [], [("NYJ", "deadline_missed", "red", "interview")]),
    ("03-26", [], [("JYJ", "manual", "red", "on_site")]),
    ("03-28", [], [("ZRJ", "returned_stale", "red", "on_site")]),
    ("03-29", [], [("NYJ", "inspection", "red", "interview")]),
    ("04-03", [], [("ZRJ", "returned_stale", "red", "interview")]),
]

COMMENDED = ["LSQ", "XSQ", "DJQ", "GAJ", "MZJ", "ZJJ"]  # per level the best 3 at 90 or more, not criticised
CRITICISED = ["JTJ", "WJW", "JYJ", "ZRJ", "NYJ"]  # a red supervision (NYJ also below 60), by level and rank
TITLE = "淮北市网上信访宣传月第一季度工作情况通报"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """The campaign played from 5 March to 10 April 2020 (16:00) on an embedded platform of its own."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("campaign"),
        bus_retry_delays_ms=(50, 100),
        outbox_poll_s=0.1,
        supervision_rules_interval_s=0,
        deadline_watch_interval_s=86400,
    )
    clock = FixedClock(at(START, "09:00"))
    platform = build_platform(settings, clock=clock)
    with TestClient(platform.app) as client:
        yield Simulation(platform, client, clock).run()


def standing(unit: dict) -> Row:
    """A unit's row of the assessment API as a Row."""
    parts = unit["parts"]
    return Row(
        unit["rank"],
        parts["measures"],
        parts["timeliness"],
        parts["inspection"],
        parts["deductions"],
        parts["bonus"],
        unit["total"],
    )


def rounded(row: Row) -> Row:
    """Hand arithmetic rounded to 2 decimals, as the rubric rounds."""
    return Row(row.rank, *(round(value, 2) + 0.0 for value in row[1:]))


def test_expected_tables_add_up():
    for table in (FINAL, MARCH_31):
        assert sorted(table) == sorted(COUNTY + MEMBER)
        for code, row in table.items():
            assert (
                round(row.measures + row.timeliness + row.inspection - row.deductions + row.bonus, 2)
                == row.total
            ), code


def test_the_cast_is_the_definitions_units(sim):
    units = sim.units
    assert sorted(units) == sorted(COUNTY + MEMBER + ("HB",))
    assert units["HB"]["participates"] is False and units["HB"]["level"] == "city"
    assert sorted(c for c, u in units.items() if u["level"] == "county") == sorted(COUNTY)
    assert sorted(c for c, u in units.items() if u["level"] == "member") == sorted(MEMBER)
    jtj = sim.call("admin", "GET", f"/intake/units/{sim.unit_id('JTJ')}")
    assert jtj["liaison_name"] == "许亮" and jtj["liaison_late"] is True
    assert sim.call("admin", "GET", f"/intake/units/{sim.unit_id('NYJ')}")["liaison_name"] is None


def test_submission_states(sim):
    rows = sim.call(
        "admin", "GET", "/intake/submissions", params={"campaign_id": sim.campaign_id, "limit": 1000}
    )
    # 13 units x 7 measures + ZJJ's second M3, 13 summaries, 2 + 7 good practices
    assert len(rows) == 13 * 7 + 1 + 13 + 9
    assert Counter(r["state"] for r in rows) == {"approved": len(rows) - 2, "rejected": 1, "returned": 1}
    by_id = {r["id"]: r for r in rows}
    assert by_id[sim.submission("ZJJ", "M3", 0)]["state"] == "rejected"
    assert by_id[sim.submission("ZJJ", "M3", 1)]["state"] == "approved"
    returned = by_id[sim.submission("ZRJ", "M6")]
    assert (returned["state"], returned["version"]) == ("returned", 1)
    fixed = by_id[sim.submission("DJQ", "M5")]
    assert (fixed["state"], fixed["version"]) == ("approved", 2)
    versions = sim.call("admin", "GET", f"/intake/submissions/{fixed['id']}/versions")
    assert [v["outcome"] for v in versions] == ["returned", "approved"]
    assert by_id[sim.submission("WJW", "summary_report")]["late"] is True
    assert not any(r["unit_id"] == sim.unit_id("NYJ") for r in rows)

    coverage = {
        u["code"]: u
        for u in sim.call("admin", "GET", f"/intake/campaigns/{sim.campaign_id}/coverage")["units"]
    }
    assert len(coverage) == 14
    assert {cell["state"] for cell in coverage["NYJ"]["cells"].values()} == {"missing"}
    assert (
        coverage["NYJ"]["liaison"]["status"] == "missing"
        and coverage["NYJ"]["summary_report"]["state"] == "missing"
    )
    assert coverage["ZRJ"]["cells"]["M6"]["state"] == "returned"
    assert coverage["JTJ"]["liaison"]["status"] == "late"
    assert coverage["LSQ"]["good_practices"] == 7
    assert all(
        cell["state"] == "approved"
        for code in ("XSQ", "GAJ", "JYJ")
        for cell in coverage[code]["cells"].values()
    )


def test_duplicate_photo_is_flagged_and_rejected(sim):
    flagged = sim.duplicate_flags["03-16"]  # the first review pass, after ZJJ copied 市公安局's M3 photo
    # both sides are flagged: the original (GAJ, first) as well as the copy (ZJJ), each naming the other unit
    by_unit = {(sim.code_of(item["unit_id"]), item["measure_code"]): item for item in flagged}
    assert sorted(by_unit) == [("GAJ", "M3"), ("ZJJ", "M3")]
    for (code, _measure), other in ((("ZJJ", "M3"), "GAJ"), (("GAJ", "M3"), "ZJJ")):
        item = by_unit[(code, "M3")]
        assert "duplicate" in item["flags"]
        assert [sim.code_of(u) for others in item["duplicates"].values() for u in others] == [other]
    assert all(not items for day, items in sim.duplicate_flags.items() if day != "03-16")
    assert ("03-16", "ZJJ", "M3", 1, "reject") in sim.decisions
    near = sim.call(
        "reviewer",
        "GET",
        "/review/queue",
        params={"campaign_id": sim.campaign_id, "state": "approved", "flag": "near_duplicate", "limit": 1000},
    )
    assert near == []  # the generated photos are all unlike each other
    rejected = sim.call(
        "reviewer", "GET", "/review/queue", params={"campaign_id": sim.campaign_id, "state": "rejected"}
    )
    assert [(sim.code_of(i["unit_id"]), i["measure_code"], i["comment"]) for i in rejected] == [
        ("ZJJ", "M3", "照片与其他单位报送的照片完全相同，不能作为本单位佐证")
    ]


def test_sampling_is_reproducible_and_inspections_are_scored(sim):
    draw = sim.sampling
    assert draw["seed"] == SAMPLING_SEED and draw["reproduced"] is True
    assert sorted(u["code"] for u in draw["units"]) == ["DJQ", "GAJ", "SJJ", "SXX", "XSQ"]
    assert random.Random(draw["seed"]).sample(draw["population"], draw["size"]) == draw["selected"]
    assert len(draw["population"]) == 14
    scores = {code: i["score"] for code, i in sim.inspections.items()}
    assert scores == {"XSQ": 30, "GAJ": 30, "DJQ": 26.7, "SJJ": 25.8, "SXX": 8.74, "NYJ": 0}
    assert (
        sim.inspections["NYJ"]["sampling_id"] is None and sim.inspections["XSQ"]["sampling_id"] == draw["id"]
    )
    assert (
        len(sim.inspections["SXX"]["supervision_ids"]) == 1
        and len(sim.inspections["NYJ"]["supervision_ids"]) == 1
    )
    assert not any(sim.inspections[code]["supervision_ids"] for code in ("XSQ", "GAJ", "DJQ", "SJJ"))


def test_supervision_cases(sim):
    cases = sim.call("admin", "GET", "/review/supervisions", params={"campaign_id": sim.campaign_id})
    assert (
        sorted(
            (sim.code_of(c["unit_id"]), c["rule"], c["level"], c["method"], c["state"], c["escalations"])
            for c in cases
        )
        == CASES
    )
    subjects = {(sim.code_of(c["unit_id"]), c["rule"], c["subject_id"]) for c in cases}
    assert ("ZRJ", "returned_stale", sim.submission("ZRJ", "M6")) in subjects
    assert ("SXX", "inspection", sim.inspections["SXX"]["id"]) in subjects
    assert {s for u, r, s in subjects if r == "deadline_missed"} == {"liaison", "summary"}
    runs = [
        (
            day,
            [(sim.code_of(c["unit_id"]), c["rule"], c["level"], c["method"]) for c in run["opened"]],
            [(sim.code_of(c["unit_id"]), c["rule"], c["level"], c["method"]) for c in run["escalated"]],
        )
        for day, run in sim.rule_runs
    ]
    assert runs == RULE_RUNS
    jyj = sim.call("admin", "GET", f"/review/supervisions/{sim.case('JYJ', 'manual')['id']}")
    assert [(s["action"], s["level"], s["method"]) for s in jyj["changes"]] == [
        ("opened", "yellow", "phone"),
        ("escalated", "red", "on_site"),
        ("responded", "red", "on_site"),
        ("closed", "red", "on_site"),
    ]


def test_scores_and_ranking_at_the_end(sim):
    result = sim.call("admin", "GET", "/review/assessment", params={"campaign_id": sim.campaign_id})
    units = {u["code"]: u for u in result["units"]}
    assert {code: standing(u) for code, u in units.items()} == {
        code: rounded(row) for code, row in FINAL.items()
    }
    for code, unit in units.items():
        assert round(sum(line["points"] for line in unit["lines"]), 2) == unit["total"], code
    county = [u["code"] for u in result["units"] if u["level"] == "county"]
    member = [u["code"] for u in result["units"] if u["level"] == "member"]
    assert county == ["LSQ", "XSQ", "DJQ", "SXX"]
    assert member == ["GAJ", "MZJ", "ZJJ", "JTJ", "WJW", "SJJ", "JYJ", "RSJ", "ZRJ", "NYJ"]
    # every point traces to what lies behind it
    zrj = {line["item"]: line for line in units["ZRJ"]["lines"] if line["part"] == "measures"}
    assert zrj["M6"]["points"] == 0 and zrj["M6"]["source_id"] == sim.submission("ZRJ", "M6")
    djq = next(line for line in units["DJQ"]["lines"] if line["item"] == "M5")
    assert djq["source_id"] == sim.submission("DJQ", "M5") and "退回修改" in djq["note"]
    cap = [line for line in units["NYJ"]["lines"] if line["part"] == "deductions"]
    assert [line["points"] for line in cap] == [-10, -10, 0]
    assert "上限" in cap[-1]["note"]


def test_scores_as_of_an_earlier_date(sim):
    result = sim.call(
        "admin", "GET", "/review/assessment", params={"campaign_id": sim.campaign_id, "as_of": "2020-03-31"}
    )
    units = {u["code"]: u for u in result["units"]}
    assert {code: standing(u) for code, u in units.items()} == {
        code: rounded(row) for code, row in MARCH_31.items()
    }
    summary = next(line for line in units["WJW"]["lines"] if line["item"] == "summary")
    assert summary["points"] == 0 and "尚未报送" in summary["note"]
    zrj_cases = [line["note"] for line in units["ZRJ"]["lines"] if line["part"] == "deductions"]
    assert len(zrj_cases) == 1 and zrj_cases[0].startswith("红色实地督办")


def test_circular_files_hold_the_figures_and_publishing_mails_them(sim):
    names = {code: unit["name"] for code, unit in sim.units.items()}
    circular = sim.call(
        "admin",
        "POST",
        "/review/circulars",
        expect=201,
        json={"campaign_id": sim.campaign_id, "period": "2020-Q1", "as_of": "2020-04-10T16:00:00+08:00"},
    )
    assert (circular["title"], circular["state"], circular["revision"]) == (TITLE, "draft", 1)
    base = f"/review/circulars/{circular['id']}"
    snapshot = sim.call("admin", "GET", f"{base}/files/snapshot", raw=True).content
    assert hashlib.sha256(snapshot).hexdigest() == circular["snapshot_sha256"]
    assert sim.call("admin", "GET", f"{base}/verify")["ok"] is True

    doc = Document(io.BytesIO(sim.call("admin", "GET", f"{base}/files/docx", raw=True).content))
    texts = [p.text for p in doc.paragraphs]
    assert TITLE in texts and doc.core_properties.title == TITLE
    for table, codes in zip(
        doc.tables[:2],
        (
            ["LSQ", "XSQ", "DJQ", "SXX"],
            ["GAJ", "MZJ", "ZJJ", "JTJ", "WJW", "SJJ", "JYJ", "RSJ", "ZRJ", "NYJ"],
        ),
        strict=True,
    ):
        rows = [[cell.text for cell in row.cells][:3] for row in table.rows]
        assert rows[0] == ["排名", "单位", "总分"]
        assert rows[1:] == [[str(FINAL[c].rank), names[c], f"{FINAL[c].total:.2f}"] for c in codes]
    commended = texts[texts.index("二、通报表扬") + 2]
    assert commended == "、".join(f"{names[c]}（{FINAL[c].total:g}分）" for c in COMMENDED) + "。"
    criticised = [t for t in texts if any(t.startswith(f"{names[c]}（") for c in CRITICISED)]
    assert [t.split("（")[0] for t in criticised] == [names[c] for c in CRITICISED]
    assert "考核得分 -20 分，低于 60 分" in criticised[-1] and "约谈" in criticised[-1]
    assert len(doc.tables[2].rows) == 1 + len(CASES)
    assert circular["snapshot_sha256"] in texts[-1]

    book = load_workbook(io.BytesIO(sim.call("admin", "GET", f"{base}/files/xlsx", raw=True).content))
    header, *ranking = list(book["排名"].values)
    assert header[:10] == (
        "单位层级",
        "排名",
        "单位代码",
        "单位名称",
        "总分",
        "宣传措施",
        "报送时效",
        "检查",
        "督办扣分",
        "经验做法加分",
    )
    figures = {row[2]: Row(row[1], *row[5:10], row[4]) for row in ranking}
    assert figures == {code: rounded(row) for code, row in FINAL.items()}
    verdicts = {row[2]: row[-2] for row in ranking}
    assert sorted(c for c, v in verdicts.items() if v == "表扬") == sorted(COMMENDED)
    assert sorted(c for c, v in verdicts.items() if v == "批评") == sorted(CRITICISED)
    assert [title.split(" ")[0] for title in header[10:17]] == ["M1", "M2", "M3", "M4", "M5", "M6", "M7"]
    per_measure = {row[2]: row[10:17] for row in ranking}
    assert per_measure["RSJ"] == (6.75, 9, 7.5, 6.75, 7.5, 7.5, 9) and per_measure["ZRJ"][5] == 0
    supervision_rows = list(book["督办"].values)[1:]
    assert sorted(r[0] for r in supervision_rows) == sorted(case[0] for case in CASES)
    notes = dict(list(book["说明"].values)[1:])
    assert notes["数据快照 SHA-256"] == circular["snapshot_sha256"]

    published = sim.call("admin", "POST", f"{base}/publish")
    assert published["state"] == "published"
    sim.call("admin", "POST", f"{base}/publish", expect=409)
    mailer = sim.platform.contexts["notification"].mailer
    liaisons = [
        code for code, unit in sim.units.items() if code != "HB" and code != "NYJ"
    ]  # NYJ never named one

    def circular_mails():
        found = [read_eml(path) for path in mailer.messages()]
        found = [m for m in found if m["Subject"] == f"【通报】{TITLE}"]
        return found if len(found) >= len(liaisons) else None

    mails = wait_until(circular_mails, what="the circular to be mailed to every liaison")
    assert len(mails) == len(liaisons)
    assert sorted(str(m["To"]).split("<")[1].rstrip(">") for m in mails) == sorted(
        sim.call("admin", "GET", f"/intake/units/{sim.unit_id(code)}")["liaison_email"] for code in liaisons
    )


def test_tampered_timeline_record_is_detected(sim):
    settings = sim.platform.contexts["review"].settings
    verified = sim.call("admin", "GET", "/review/timeline/verify")
    assert verified["ok"] is True and verified["records"] > 300
    assert review_cli.main(["verify-timeline"], settings=settings, out=io.StringIO(), err=io.StringIO()) == 0

    # Someone with database access raises RSJ's M2 score from 80 to 100 on the timeline.
    records = sim.call("admin", "GET", f"/review/submissions/{sim.submission('RSJ', 'M2')}/timeline")
    approval = next(r for r in records if r["kind"] == "submission.approved")
    assert approval["detail"]["score"] == 80
    engine = sim.platform.contexts["review"].db.engine
    with engine.begin() as conn:
        original = conn.exec_driver_sql(
            "SELECT detail FROM timeline_records WHERE seq = ?", (approval["seq"],)
        ).scalar()
        conn.exec_driver_sql("DROP TRIGGER timeline_records_no_update")
        conn.exec_driver_sql(
            "UPDATE timeline_records SET detail = json_set(detail, '$.score', 100) WHERE seq = ?",
            (approval["seq"],),
        )
    try:
        verified = sim.call("admin", "GET", "/review/timeline/verify")
        assert verified["ok"] is False
        assert [(p["seq"], p["code"]) for p in verified["problems"]] == [(approval["seq"], "altered")]
        out = io.StringIO()
        assert review_cli.main(["verify-timeline"], settings=settings, out=out, err=io.StringIO()) == 1
        assert f"[altered] 第 {approval['seq']} 条" in out.getvalue() and "校验未通过" in out.getvalue()
    finally:  # put the record back as it was, and the guard: the chain verifies again
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE timeline_records SET detail = ? WHERE seq = ?", (original, approval["seq"])
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER timeline_records_no_update BEFORE UPDATE ON timeline_records "
                "BEGIN SELECT RAISE(ABORT, 'timeline_records is append-only'); END"
            )
    assert sim.call("admin", "GET", "/review/timeline/verify")["ok"] is True
