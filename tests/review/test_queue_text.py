"""The text read in photos (evidence.text_read) on the review queue: the finding, the matched words, the
filter and the search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.review import handlers
from services.review.models import ReviewEvidenceText
from services.review.subscriptions import SUBSCRIPTIONS
from shared.contracts.evidence import EvidenceTextRead, TextMatch
from tests.review.test_queue_support import ok, open_world

READ_AT = datetime(2020, 3, 12, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    """A review service (SQLite or PostgreSQL) with one county."""
    w = open_world(request, tmp_path, request.param)
    w.xs = w.unit("相山区信访局")
    yield w
    w.close()


def read(world, submission_id: str, evidence_id: str, finding: str, text: str = "", matches=(), **extra):
    """Deliver evidence.text_read for a photo."""
    world.feed(
        EvidenceTextRead(
            evidence_id=evidence_id,
            submission_id=submission_id,
            unit_id=world.xs,
            measure_code="M5",
            finding=finding,
            text=text,
            matches=[TextMatch(keyword=k, found=f) for k, f in matches],
            keywords=["网上信访", "信访"],
            read_at=extra.pop("read_at", READ_AT),
            **extra,
        ),
        handlers.attach_text,
    )


def test_the_queue_shows_and_filters_on_what_the_photos_say(world):
    assert SUBSCRIPTIONS["evidence.text_read"] == [handlers.attach_text]
    banner = world.submit(world.xs, measure="M5")
    found = world.evidence(banner, world.xs)
    other = world.submit(world.xs, measure="M5")
    slogan = world.evidence(other, world.xs)
    not_yet = world.submit(world.xs, measure="M5")
    world.evidence(not_yet, world.xs)  # stored, not read yet
    no_ocr = world.submit(world.xs, measure="M5")
    world.evidence(no_ocr, world.xs, evidence_id="e-no-ocr")
    read(world, banner, found, "keywords_found", "有事网上说\n网上信仿方便快捷", [("网上信访", "网上信仿")])
    read(world, other, slogan, "no_campaign_text", "文明交通 安全出行")
    read(world, no_ocr, "e-no-ocr", "unread", state="unavailable", note="OCR 未安装")

    def q(**params) -> list[str]:
        items = ok(world.client.get("/queue", params=params, headers=world.reviewer()))
        return [i["submission_id"] for i in items]

    assert q(text_finding="keywords_found") == [banner]
    assert q(text_finding="no_campaign_text") == [other]
    assert q(text_finding="unread") == [not_yet, no_ocr]
    assert q(text="安全出行") == [other]
    assert q(text="网上") == [banner]
    assert q(text="100%") == []  # LIKE wildcards are searched for literally
    assert (
        world.client.get("/queue", params={"text_finding": "blurry"}, headers=world.reviewer()).status_code
        == 422
    )

    item = ok(world.client.get(f"/submissions/{banner}", headers=world.reviewer()))
    assert (item["text_finding"], item["text_keywords"]) == ("keywords_found", ["网上信访"])
    text = item["evidence"][0]["text"]
    assert (text["state"], text["finding"], text["text"]) == (
        "read",
        "keywords_found",
        "有事网上说\n网上信仿方便快捷",
    )
    assert text["matches"] == [{"keyword": "网上信访", "found": "网上信仿", "exact": True}]
    pending = ok(world.client.get(f"/submissions/{not_yet}", headers=world.reviewer()))
    assert pending["text_finding"] == "unread" and pending["evidence"][0]["text"]["state"] == "pending"
    unavailable = ok(world.client.get(f"/submissions/{no_ocr}", headers=world.reviewer()))["evidence"][0][
        "text"
    ]
    assert (unavailable["state"], unavailable["note"]) == ("unavailable", "OCR 未安装")
    assert (
        ok(world.client.get(f"/submissions/{other}", headers=world.reviewer()))["text_finding"]
        == "no_campaign_text"
    )


def test_a_reading_delivered_twice_or_late_keeps_the_newest(world):
    banner = world.submit(world.xs, measure="M5")
    photo = world.evidence(banner, world.xs)
    read(world, banner, photo, "unread", state="unavailable", note="OCR 未安装")
    read(
        world,
        banner,
        photo,
        "keywords_found",
        "网上信访",
        [("网上信访", "网上信访")],
        read_at=READ_AT + timedelta(hours=1),
    )
    read(
        world,
        banner,
        photo,
        "keywords_found",
        "网上信访",
        [("网上信访", "网上信访")],
        read_at=READ_AT + timedelta(hours=1),
    )
    read(world, banner, photo, "unread", state="unavailable", note="OCR 未安装")  # the older one, late
    with world.ctx.db.session() as uow:
        row = uow.get(ReviewEvidenceText, photo)
        assert (row.state, row.finding, row.text) == ("read", "keywords_found", "网上信访")


def test_text_read_before_the_photo_is_known_still_counts(world):
    banner = world.submit(world.xs, measure="M5")
    read(world, banner, "e-early", "no_campaign_text", "森林防火")
    world.evidence(banner, world.xs, evidence_id="e-early")
    item = ok(world.client.get(f"/submissions/{banner}", headers=world.reviewer()))
    assert item["text_finding"] == "no_campaign_text"
