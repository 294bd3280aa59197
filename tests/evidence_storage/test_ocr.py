"""Reading the text in photos: keyword matching, the real OCR engine on rendered banners, the worker's job
(claims, crash take-over, idempotency) and the "OCR 未安装" path."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from bench.ocr import fonts_installed, render
from services.evidence_storage import ocr
from services.evidence_storage.models import EvidenceText, KnownCampaign
from services.evidence_storage.textmatch import TextRules, find_keywords, judge, normalise
from shared.contracts.intake import CampaignPublished, MeasureInfo
from tests.helpers import wait_until

HAS_OCR = importlib.util.find_spec("rapidocr_onnxruntime") is not None
needs_ocr = pytest.mark.skipif(not HAS_OCR, reason="OCR not installed (pip install .[ocr])")


@pytest.fixture(autouse=True)
def _cjk_fonts(request):
    """Tests that draw banners need real Chinese glyphs: skip, or fail under REQUIRE_SERVICES=1, without them."""
    if "make_world" in request.fixturenames:
        need_fonts()


def need_fonts() -> None:
    """Skip (or fail under REQUIRE_SERVICES=1) when fonts-noto-cjk is missing."""
    if fonts_installed():
        return
    message = "fonts-noto-cjk is not installed; run `make browser-deps` (apt-get) to draw the test banners"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but {message}", pytrace=False)
    pytest.skip(message)


KEYWORDS = ["网上信访", "阳光信访", "信访宣传", "信访", "wsxf.gov.cn"]


# ---------------------------------------------------------------- matching (no engine)


FULL_WIDTH_URL = "\uff37\uff33\uff38\uff26\uff0e\uff47\uff4f\uff56\uff0e\uff43\uff4e"  # wsxf.gov.cn in full-width characters


def test_normalising_folds_width_case_spaces_and_punctuation():
    assert normalise(FULL_WIDTH_URL)[0] == normalise("wsxf gov cn")[0] == "wsxfgovcn"
    assert normalise("网上 信访：")[0] == "网上信访"
    found = find_keywords([f"请登录 {FULL_WIDTH_URL} 反映诉求"], ["wsxf.gov.cn"])
    assert [(m.keyword, m.found, m.exact) for m in found] == [("wsxf.gov.cn", FULL_WIDTH_URL, True)]


def test_one_wrong_character_is_tolerated_in_long_keywords_only():
    # 国家信访局 read as 国家信仿局: found, not exactly; off, it is not
    assert [(m.found, m.exact) for m in find_keywords(["国家信仿局网上信访平台"], ["国家信访局"])] == [
        ("国家信仿局", False)
    ]
    assert find_keywords(["国家信仿局"], ["国家信访局"], fuzzy=False) == []
    assert find_keywords(["国家信用体系建设"], ["国家信访局"]) == []  # two characters differ
    # four characters: exact only (bench/ocr.py: one wrong character takes 网上信息 and 阳光信贷 for the campaign)
    assert find_keywords(["网上信息发布", "阳光信贷"], ["网上信访", "阳光信访"]) == []
    assert [m.found for m in find_keywords(["网上信息发布"], ["网上信访"], fuzzy_min=4)] == ["网上信息"]


def test_the_finding_follows_the_measures_rules():
    expected = TextRules(keywords=tuple(KEYWORDS), expected=True)
    assert judge(["有事网上说，网上信访方便快捷"], expected)[0] == "keywords_found"
    assert judge(["文明交通 安全出行"], expected) == ("no_campaign_text", [])
    assert judge(["文明交通 安全出行"], TextRules(keywords=("信访",), expected=False)) == ("none", [])
    assert judge(["网上信访"], TextRules()) == ("none", [])  # a measure without keywords: no finding


# ---------------------------------------------------------------- the worker, with the real engine


def _campaign(world, campaign_id: str | None = None, *, version: int = 1, keywords=KEYWORDS) -> str:
    campaign_id = campaign_id or str(uuid.uuid4())
    world.publish(
        CampaignPublished(
            campaign_id=campaign_id,
            code="WSXF-OCR",
            name="网上信访宣传月",
            version=version,
            publicity_start=date(2020, 3, 9),
            publicity_end=date(2020, 3, 31),
            measures=[
                MeasureInfo(code="M1", name="专题会议"),
                MeasureInfo(code="M5", name="宣传横幅", text_keywords=keywords, expects_text=True),
            ],
        )
    )

    def rules_known() -> bool:
        with world.ctx.db.session() as uow:
            known = uow.get(KnownCampaign, campaign_id)
            return known is not None and known.version == version and bool(known.text_rules)

    wait_until(rules_known, what="the campaign's text rules")
    return campaign_id


def _upload(world, campaign_id: str, measure: str, slogan: str, seed: int) -> str:
    submission = world.submission(campaign_id=campaign_id, measure=measure)
    response = world.upload(submission["id"], render("banner", slogan, seed=seed), "横幅.jpg")
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _read_events(world) -> dict[str, dict]:
    return {e["evidence_id"]: e for e in world.events("evidence.text_read")}


@needs_ocr
def test_the_worker_reads_banners_and_reports_keywords_or_their_absence(make_world):
    world = make_world(ocr_enabled=True, ocr_poll_s=0.2)
    campaign_id = _campaign(world)
    campaign = _upload(world, campaign_id, "M5", "有事网上说 网上信访方便快捷", seed=1)
    other = _upload(world, campaign_id, "M5", "文明交通 安全出行", seed=2)
    no_rules = _upload(world, campaign_id, "M1", "网上信访宣传月动员部署会", seed=3)
    wait_until(lambda: len(_read_events(world)) == 3, timeout=60, what="three photos read")
    events = _read_events(world)

    found = events[campaign]
    assert (found["state"], found["finding"], found["measure_code"]) == ("read", "keywords_found", "M5")
    assert "网上信访" in found["text"]
    assert {m["keyword"] for m in found["matches"]} >= {"网上信访", "信访"}
    assert all(m["found"] in found["text"] for m in found["matches"])  # what the console highlights
    assert events[other]["finding"] == "no_campaign_text" and events[other]["matches"] == []
    assert "文明交通" in events[other]["text"]
    assert events[no_rules]["finding"] == "none" and "网上信访" in events[no_rules]["text"]
    with world.ctx.db.session() as uow:
        row = uow.get(EvidenceText, campaign)
        assert (row.state, row.finding, row.attempts) == ("read", "keywords_found", 1)

    # a new version of the campaign changes M5's keywords: the text already read is judged again, not re-read
    _campaign(world, campaign_id, version=2, keywords=["安全出行"])
    wait_until(lambda: len(world.events("evidence.text_read")) == 5, what="two photos judged again")
    again = {e["evidence_id"]: e for e in world.events("evidence.text_read")[3:]}
    assert again[other]["finding"] == "keywords_found" and again[other]["matches"][0]["keyword"] == "安全出行"
    assert again[campaign]["finding"] == "no_campaign_text"
    assert no_rules not in again  # M1 has no keywords either way


@needs_ocr
def test_a_dead_readers_claim_is_taken_over_and_its_late_result_ignored(make_world):
    world = make_world(ocr_enabled=True, ocr_poll_s=3600)
    world.drive_job("evidence-ocr")  # its run at start, on a busy machine, could read the photo first
    campaign_id = _campaign(world)
    evidence_id = _upload(world, campaign_id, "M5", "阳光信访 便民利民", seed=4)
    ctx = world.ctx
    # a worker claimed it and died: its claim is older than OCR_CLAIM_TIMEOUT_S
    stale = ctx.clock.now() - timedelta(seconds=ctx.settings.ocr_claim_timeout_s + 5)
    with ctx.db.transaction() as uow:
        uow.execute(
            update(EvidenceText)
            .where(EvidenceText.evidence_id == evidence_id)
            .values(state="reading", claim="dead-worker", started_at=stale, attempts=1)
        )
    assert ocr.read_pending(ctx) == 1
    assert ocr.read_pending(ctx) == 0  # read once: nothing left, no second event
    events = [e for e in world.events("evidence.text_read") if e["evidence_id"] == evidence_id]
    assert [e["finding"] for e in events] == ["keywords_found"]
    with ctx.db.session() as uow:
        row = uow.get(EvidenceText, evidence_id)
        assert (row.state, row.attempts) == ("read", 2)
    # the dead worker wakes up and reports: its claim is gone, nothing is recorded
    evidence = _evidence(ctx, evidence_id)
    assert ocr._failed(ctx, evidence, "dead-worker", "OSError: late") is True
    with ctx.db.session() as uow:
        assert uow.get(EvidenceText, evidence_id).state == "read"
    assert len([e for e in world.events("evidence.text_read") if e["evidence_id"] == evidence_id]) == 1


@needs_ocr
def test_a_photo_whose_readers_keep_dying_is_given_up(make_world):
    world = make_world(ocr_enabled=True, ocr_poll_s=3600)
    world.drive_job("evidence-ocr")
    submission = world.submission(measure="M5")
    evidence_id = world.upload(submission["id"], render("led", "文明交通", seed=5), "led.jpg").json()["id"]
    ctx = world.ctx
    stale = ctx.clock.now() - timedelta(seconds=ctx.settings.ocr_claim_timeout_s + 5)
    with ctx.db.transaction() as uow:
        uow.execute(
            update(EvidenceText)
            .where(EvidenceText.evidence_id == evidence_id)
            .values(state="reading", claim="x", started_at=stale, attempts=ocr.MAX_ATTEMPTS)
        )
    ocr.read_pending(ctx)
    with ctx.db.session() as uow:
        row = uow.get(EvidenceText, evidence_id)
        assert (row.state, row.finding) == ("failed", "unread")
    [event] = [e for e in world.events("evidence.text_read") if e["evidence_id"] == evidence_id]
    assert (event["state"], event["finding"]) == ("failed", "unread")


def test_without_an_engine_photos_are_recorded_unread_and_read_once_it_is_there(
    make_world, monkeypatch, caplog
):
    world = make_world(ocr_enabled=True, ocr_poll_s=3600)
    world.drive_job("evidence-ocr")
    ctx = world.ctx
    monkeypatch.setattr(ocr, "ENGINE", ocr._Engine())
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # import fails: not installed
    monkeypatch.setattr(ocr, "_requeued", set())
    submission = world.submission(measure="M5")
    evidence_id = world.upload(submission["id"], render("banner", "网上信访", seed=6), "b.jpg").json()["id"]
    assert ocr.read_pending(ctx) == 1
    assert ocr.read_pending(ctx) == 0
    assert "OCR not installed" in caplog.text
    [event] = world.events("evidence.text_read")
    assert (event["evidence_id"], event["state"], event["finding"], event["note"]) == (
        evidence_id,
        "unavailable",
        "unread",
        "OCR 未安装",
    )
    with ctx.db.session() as uow:
        assert uow.scalar(select(EvidenceText.state).where(EvidenceText.evidence_id == evidence_id)) == (
            "unavailable"
        )
    assert ocr.state(ctx) == {"ok": True, "ocr": "unavailable", "note": "OCR 未安装"}  # the ops note
    # the engine arrives (a new process with the extra installed): the photo goes back and is read
    monkeypatch.delitem(sys.modules, "rapidocr_onnxruntime")
    monkeypatch.setattr(ocr, "ENGINE", ocr._Engine())
    if not HAS_OCR:
        return
    assert ocr.read_pending(ctx) == 1
    assert [e["state"] for e in world.events("evidence.text_read")] == ["unavailable", "read"]


def _evidence(ctx, evidence_id):
    from services.evidence_storage.models import Evidence

    with ctx.db.session() as uow:
        evidence = uow.get(Evidence, evidence_id)
        uow.expunge(evidence)
        return evidence


def _banner_video(tmp_path, slogan: str) -> bytes:
    """A two-second H.264 MP4 of a still photo of a banner (what a phone's short clip of it looks like)."""
    import subprocess

    from services.evidence_storage import video

    still, clip = tmp_path / "banner.jpg", tmp_path / "banner.mp4"
    still.write_bytes(render("banner", slogan, seed=7))
    command = [video.ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-loop", "1", "-i", str(still), "-t", "2"]
    command += ["-r", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-vf", "scale=1280:-2", str(clip)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return clip.read_bytes()


@needs_ocr
def test_a_videos_poster_frame_is_read(make_world, tmp_path):
    world = make_world(ocr_enabled=True, ocr_poll_s=0.2)
    campaign_id = _campaign(world)
    submission = world.submission(campaign_id=campaign_id, measure="M5")
    response = world.upload(submission["id"], _banner_video(tmp_path, "阳光信访 便民利民"), "横幅.mp4")
    assert response.status_code == 201, response.text
    evidence_id = response.json()["id"]
    wait_until(lambda: evidence_id in _read_events(world), timeout=60, what="the video's poster read")
    event = _read_events(world)[evidence_id]
    assert event["finding"] == "keywords_found" and "阳光信访" in [m["keyword"] for m in event["matches"]]
