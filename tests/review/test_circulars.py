"""Circulars (通报): the frozen snapshot and its SHA-256, the .docx and .xlsx with the ranking figures,
revisions, verification, publishing once, and who may see what."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import docx
import openpyxl
import pytest
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Pt
from sqlalchemy import select

from services.notification.links import Links
from services.review.models import AUDIT, TimelineRecord
from services.review.timeline import chain as timeline
from tests.review.test_assessment_support import AS_OF, EXPECTED, AssessmentWorld, build_profiles, local

TITLE = "淮北市网上信访宣传月第一季度工作情况通报"
PARTS = ("measures", "timeliness", "inspection", "deductions", "bonus")


@pytest.fixture
def world(tmp_path):
    """The Huaibei campaign in a review service with the seven hand-scored units and a folder blob store."""
    w = AssessmentWorld(tmp_path)
    w.ids = build_profiles(w)
    yield w
    w.close()


def ok(response, status: int = 200):
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()


def error(response, status: int) -> dict:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    return response.json()


def make(world, **body) -> dict:
    return ok(
        world.client.post(
            "/circulars",
            json={"campaign_id": world.campaign_id, "period": "2020-Q1", **body},
            headers=world.admin(),
        ),
        201,
    )


def download(world, circular: dict, kind: str, headers=None):
    response = world.client.get(f"/circulars/{circular['id']}/files/{kind}", headers=headers or world.admin())
    assert response.status_code == 200, response.text
    return response


def east_asia_font(run) -> str:
    return run._element.rPr.rFonts.get(qn("w:eastAsia"))


def figures(code: str) -> list[str]:
    e = EXPECTED[code]
    return [f"{e['total']:.2f}"] + [f"{e[part]:.2f}" for part in PARTS]


def test_the_circular_files_hold_the_ranking_and_findings(world):
    circular = make(world, as_of=AS_OF)
    assert (circular["revision"], circular["state"], circular["title"]) == (1, "draft", TITLE)
    assert circular["as_of"] == "2020-04-10T15:59:59.999999Z"
    prefix = f"circulars/{world.campaign_id}/2020-Q1/r1"
    assert all(
        world.blobs.exists(f"{prefix}/{name}") for name in ("snapshot.json", "circular.docx", "circular.xlsx")
    )

    document = docx.Document(io.BytesIO(download(world, circular, "docx").content))
    texts = [p.text for p in document.paragraphs]
    title = next(p for p in document.paragraphs if p.text == TITLE)
    assert title.alignment == WD_ALIGN_PARAGRAPH.CENTER
    assert east_asia_font(title.runs[0]) == "方正小标宋简体" and title.runs[0].font.size == Pt(22)
    assert "宣传月通报〔2020〕1号" in texts and texts.index("宣传月通报〔2020〕1号") < texts.index(TITLE)
    body = next(p for p in document.paragraphs if p.text.startswith("根据"))
    assert east_asia_font(body.runs[0]) == "仿宋_GB2312"
    assert (
        "本期共有7家单位参加考核，平均得分71.41分" in body.text and "督办4件（其中红色督办1件）" in body.text
    )
    county, member, supervision = (
        [[c.text for c in row.cells] for row in table.rows] for table in document.tables
    )
    head_cell, body_cell = (document.tables[0].rows[n].cells[1].paragraphs[0] for n in (0, 1))
    assert (head_cell.style.name, head_cell.style.font.bold) == ("通报表头", True)
    assert head_cell.style.element.rPr.rFonts.get(qn("w:eastAsia")) == "黑体"
    assert body_cell.style.element.rPr.rFonts.get(
        qn("w:eastAsia")
    ) == "宋体" and body_cell.style.font.size == Pt(10.5)
    assert county[0] == ["排名", "单位", "总分", "宣传措施", "报送时效", "检查", "督办扣分", "经验做法加分"]
    assert county[1:] == [
        ["1", "相山区信访局", *figures("XSQ")],
        ["2", "杜集区信访局", *figures("DJQ")],
        ["2", "濉溪县信访局", *figures("SXX")],
        ["4", "烈山区信访局", *figures("LSQ")],
    ]
    assert member[1:] == [
        ["1", "市人力资源和社会保障局", *figures("RSJ")],
        ["2", "市交通运输局", *figures("JTJ")],
        ["3", "市公安局", *figures("GAJ")],
    ]
    assert [row[1:3] + row[4:] for row in supervision[1:]] == [
        ["黄", "实地", "督办中"],
        ["红", "约谈", "督办中"],
        ["黄", "实地", "督办中"],
        ["蓝", "电话", "督办中"],
    ]
    praised = texts[texts.index("二、通报表扬") + 2]
    assert praised == "相山区信访局（99.2分）、市人力资源和社会保障局（100分）。"
    criticised = texts[texts.index("三、通报批评") + 1 : texts.index("四、督办情况")]
    sxx = next(t for t in criticised if t.startswith("濉溪县信访局"))
    assert "被红色约谈督办（巡回宣讲弄虚作假）" in sxx and "报送活动总结（含视频或照片）逾期未报送" in sxx
    gaj = next(t for t in criticised if t.startswith("市公安局"))
    assert "考核得分 0 分，低于 60 分" in gaj and "“巡回宣讲”" in gaj and "明确联络员逾期未报送" in gaj
    assert not any(t.startswith(("烈山区", "杜集区", "市交通")) for t in criticised)
    assert texts[-4:-2] == ["淮北市网上信访宣传月活动领导小组办公室（市信访局网信科）", "2020年4月20日"]

    book = openpyxl.load_workbook(io.BytesIO(download(world, circular, "xlsx").content))
    assert book.sheetnames == ["排名", "得分明细", "督办", "说明"]
    ranking = list(book["排名"].iter_rows(values_only=True))
    header = ranking[0]
    rows = {row[header.index("单位代码")]: row for row in ranking[1:]}
    for code, expected in EXPECTED.items():
        row = rows[code]
        assert row[header.index("总分")] == pytest.approx(expected["total"])
        assert [
            row[header.index(name)] for name in ("宣传措施", "报送时效", "检查", "督办扣分", "经验做法加分")
        ] == pytest.approx([expected[part] for part in PARTS])
    assert (
        rows["LSQ"][header.index("M7 巡回宣讲")] == 0
        and rows["LSQ"][header.index("M2 网上信访宣传角")] == 11.25
    )
    assert (rows["SXX"][header.index("表扬/批评")], rows["RSJ"][header.index("表扬/批评")]) == (
        "批评",
        "表扬",
    )
    details = list(book["得分明细"].iter_rows(values_only=True))
    liaison = next(r for r in details if r[0] == "DJQ" and r[4] == "liaison")
    assert (liaison[5], liaison[6], liaison[7], liaison[8]) == (3, 5, "联络员", world.units["DJQ"])
    for code, expected in EXPECTED.items():  # the details add up to each unit's total
        assert round(sum(r[5] for r in details[1:] if r[0] == code), 2) == pytest.approx(expected["total"])
    assert len(list(book["督办"].iter_rows(min_row=2))) == 4
    notes = dict(book["说明"].iter_rows(min_row=2, values_only=True))
    assert notes["数据快照 SHA-256"] == circular["snapshot_sha256"]
    assert notes["统计截止时间"] == "2020-04-10T23:59:59.999999+08:00"


def test_the_snapshot_is_canonical_and_its_sha256_is_recorded(world):
    circular = make(world, as_of=AS_OF)
    stored = download(world, circular, "snapshot").content
    assert hashlib.sha256(stored).hexdigest() == circular["snapshot_sha256"]
    snapshot = json.loads(stored)
    assert json.dumps(snapshot, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode() == stored
    assert snapshot["rules"]["circular"] == {
        "commend_top": 3,
        "commend_min_score": 90.0,
        "criticise_below": 60.0,
    }
    assert snapshot["rules"]["rubric"]["supervision_deductions"]["max_deduction"] == 20
    assert [u["code"] for u in snapshot["commended"]] == ["XSQ", "RSJ"]
    assert [u["code"] for u in snapshot["criticised"]] == ["SXX", "GAJ"]
    units = {u["code"]: u for level in snapshot["levels"] for u in level["units"]}
    assert {code: u["total"] for code, u in units.items()} == {
        code: e["total"] for code, e in EXPECTED.items()
    }
    assert all(round(sum(line["points"] for line in u["lines"]), 2) == u["total"] for u in units.values())
    assert ok(world.client.get(f"/circulars/{circular['id']}/verify", headers=world.inspector())) == {
        "circular_id": circular["id"],
        "ok": True,
        "recorded_sha256": circular["snapshot_sha256"],
        "actual_sha256": circular["snapshot_sha256"],
        "message": "快照与记录的 SHA-256 一致",
    }
    disposition = download(world, circular, "docx").headers["content-disposition"]
    assert f"filename*=UTF-8''{quote(TITLE + '.docx')}" in disposition


def test_defaults_revisions_and_the_same_moment_later(world):
    first = make(world)  # as of the end of the first quarter, Beijing time
    assert first["as_of"] == "2020-03-31T15:59:59.999999Z" and first["title"] == TITLE
    q1 = json.loads(download(world, first, "snapshot").content)
    djq = next(u for level in q1["levels"] for u in level["units"] if u["code"] == "DJQ")
    assert djq["parts"]["timeliness"] == 3  # the summary is not due until 5 April
    world.clock.advance(timedelta(days=3))
    world.approved("LSQ", "M7", local(4, 21))  # after the moment: changes nothing in a Q1 circular
    world.supervise("XSQ", local(4, 22), level="red", method="interview", reason="迟报")
    second = make(world)
    assert (second["revision"], second["state"]) == (2, "draft")
    q1_again = json.loads(download(world, second, "snapshot").content)
    assert q1_again["levels"] == q1["levels"] and q1_again["supervisions"] == q1["supervisions"]
    assert q1_again["document_number"] == q1["document_number"] == "宣传月通报〔2020〕1号"
    assert second["snapshot_sha256"] != first["snapshot_sha256"]  # revision and issue date differ
    assert world.blobs.exists(f"circulars/{world.campaign_id}/2020-Q1/r2/circular.docx")
    titled = make(
        world,
        period="2020-03",
        as_of="2020-03-31",
        title="三月份宣传月工作通报",
        document_number="淮信宣〔2020〕7号",
    )
    assert (titled["period"], titled["revision"], titled["title"]) == ("2020-03", 1, "三月份宣传月工作通报")
    listed = ok(
        world.client.get("/circulars", params={"campaign_id": world.campaign_id}, headers=world.reviewer())
    )
    assert [(c["period"], c["revision"]) for c in listed] == [("2020-03", 1), ("2020-Q1", 2), ("2020-Q1", 1)]
    # the one as_of rule (as GET /assessment): a moment after now means now
    now = world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    today_local = world.clock.now().astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    running = make(world, period="2020-Q2")  # the period is under way: as of now
    today = make(world, period="2020-04", as_of=today_local)  # today's date: its end is still ahead
    assessed = ok(
        world.client.get(
            "/assessment",
            params={"campaign_id": world.campaign_id, "as_of": today_local},
            headers=world.admin(),
        )
    )
    assert (
        running["as_of"] == today["as_of"] == assessed["as_of"] == now and assessed["as_of_clamped"] is True
    )
    not_begun = world.client.post(
        "/circulars", json={"campaign_id": world.campaign_id, "period": "2020-Q3"}, headers=world.admin()
    )
    assert error(not_begun, 422)["code"] == "period_not_started"
    bad = world.client.post(
        "/circulars", json={"campaign_id": world.campaign_id, "period": "第一季度"}, headers=world.admin()
    )
    assert error(bad, 422)["code"] == "invalid_period"


def test_a_changed_snapshot_is_detected_and_cannot_be_published(world):
    circular = make(world, as_of=AS_OF)
    key = f"circulars/{world.campaign_id}/2020-Q1/r1/snapshot.json"
    original = b"".join(world.blobs.read(key))
    world.blobs.put(
        key,
        io.BytesIO(original.replace("相山区信访局".encode(), "相山区信访办".encode())),
        content_type="application/json",
    )
    check = ok(world.client.get(f"/circulars/{circular['id']}/verify", headers=world.admin()))
    assert check["ok"] is False and check["actual_sha256"] != check["recorded_sha256"]
    refused = world.client.post(f"/circulars/{circular['id']}/publish", headers=world.admin())
    assert error(refused, 409)["code"] == "snapshot_mismatch"
    world.blobs.delete(key)
    missing = ok(world.client.get(f"/circulars/{circular['id']}/verify", headers=world.admin()))
    assert (missing["ok"], missing["message"]) == (False, "快照文件缺失")


def test_publishing_happens_once_with_its_event_timeline_and_audit(world):
    circular = make(world, as_of=AS_OF)
    world.clock.advance(timedelta(hours=1))
    published = ok(world.client.post(f"/circulars/{circular['id']}/publish", headers=world.admin()))
    assert (published["state"], published["published_by"], published["published_at"]) == (
        "published",
        "王芳",
        "2020-04-20T03:00:00Z",
    )
    again = world.client.post(f"/circulars/{circular['id']}/publish", headers=world.admin())
    assert error(again, 409)["code"] == "already_published"
    table = world.ctx.messaging.outbox
    with world.ctx.db.session() as uow:
        bodies = list(uow.scalars(select(table.c.body).where(table.c.type == "circular.published")))
        records = list(uow.scalars(select(TimelineRecord).where(TimelineRecord.subject_type == "circular")))
        actions = list(
            uow.scalars(
                select(AUDIT.c.action).where(AUDIT.c.resource_id == circular["id"]).order_by(AUDIT.c.id)
            )
        )
        assert timeline.verify(uow).ok
    assert [json.loads(body)["payload"] for body in bodies] == [
        {
            "circular_id": circular["id"],
            "campaign_id": world.campaign_id,
            "period": "2020-Q1",
            "title": TITLE,
            "docx_key": f"circulars/{world.campaign_id}/2020-Q1/r1/circular.docx",
            "xlsx_key": f"circulars/{world.campaign_id}/2020-Q1/r1/circular.xlsx",
            "snapshot_sha256": circular["snapshot_sha256"],
        }
    ]
    assert [(r.kind, r.subject_id, r.actor, r.detail["revision"]) for r in records] == [
        ("circular.published", circular["id"], "王芳", 1)
    ]
    assert actions == ["circular.created", "circular.published"]
    # the link the notification e-mail carries opens the console's page of this circular, which reads this route
    link = Links("http://example.org").circular(circular["id"])
    assert link == f"http://example.org/console/circulars/{circular['id']}"
    route = link.replace("http://example.org/console", "")
    assert ok(world.client.get(route, headers=world.unit_caller("DJQ")))["id"] == circular["id"]


def test_who_may_make_publish_and_read_circulars(world):
    circular = make(world, as_of=AS_OF)
    body = {"campaign_id": world.campaign_id, "period": "2020-Q1", "as_of": AS_OF}
    unit, reviewer = world.unit_caller("DJQ"), world.reviewer()
    assert world.client.post("/circulars", json=body, headers=reviewer).status_code == 403
    assert world.client.post("/circulars", json=body, headers=unit).status_code == 403
    assert world.client.post("/circulars", json=body).status_code == 401
    assert world.client.post(f"/circulars/{circular['id']}/publish", headers=reviewer).status_code == 403
    # a draft is the office's own: units neither list nor open it
    assert ok(world.client.get("/circulars", headers=unit)) == []
    assert world.client.get(f"/circulars/{circular['id']}", headers=unit).status_code == 404
    assert world.client.get(f"/circulars/{circular['id']}/files/docx", headers=unit).status_code == 404
    ok(world.client.post(f"/circulars/{circular['id']}/publish", headers=world.admin()))
    assert [c["id"] for c in ok(world.client.get("/circulars", headers=unit))] == [circular["id"]]
    issued = download(world, circular, "docx", headers=unit)
    assert TITLE in [p.text for p in docx.Document(io.BytesIO(issued.content)).paragraphs]
    for kind in ("xlsx", "snapshot"):
        assert world.client.get(f"/circulars/{circular['id']}/files/{kind}", headers=unit).status_code == 403
    assert world.client.get(f"/circulars/{circular['id']}/verify", headers=unit).status_code == 403
    assert (
        world.client.get(f"/circulars/{circular['id']}/files/pdf", headers=world.admin()).status_code == 422
    )
    assert world.client.get("/circulars/nope", headers=world.admin()).status_code == 404


def test_a_campaign_without_a_rubric_gets_no_circular(world):
    from services.review import handlers
    from shared.contracts import make_event
    from shared.contracts.intake import CampaignPublished

    payload = CampaignPublished(
        campaign_id="plain",
        code="plain",
        name="无考核的活动",
        version=1,
        publicity_start="2020-03-09",
        publicity_end="2020-03-31",
    )
    with world.ctx.db.transaction() as uow:
        handlers.project_campaign(make_event(payload, producer="intake"), uow=uow, ctx=world.ctx)
    refused = world.client.post(
        "/circulars", json={"campaign_id": "plain", "period": "2020-Q1"}, headers=world.admin()
    )
    assert error(refused, 422)["code"] == "no_rubric"
    assert not list(world.blobs.list_keys("circulars/plain/"))
