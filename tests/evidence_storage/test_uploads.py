"""Streamed uploads that succeed: what inspection records (type from bytes, checksum, size, dimensions, duration,
EXIF capture time and GPS, window flag, previews), the multipart path, and keys chosen by the server."""

from __future__ import annotations

import hashlib
import io
from datetime import date

import pytest
from PIL import Image

from services.evidence_storage import video
from services.evidence_storage.models import KnownSubmission
from shared.contracts.intake import CampaignPublished, SubmissionSubmitted, SubmissionWithdrawn
from shared.contracts.review import SubmissionApproved, SubmissionReturned
from tests.evidence_storage import media
from tests.helpers import PDF_BYTES, wait_until


def test_photo_metadata_exif_gps_and_thumbnail(world):
    campaign = world.campaign(date(2020, 3, 9), date(2020, 3, 31))
    submission = world.submission(campaign_id=campaign)
    data = media.photo(5, size=(1200, 900), taken="2020:03:15 10:30:00", gps=(33.9562, 116.7983))
    response = world.upload(submission["id"], data, "专题会议.jpg", content_type="text/plain", actor="李明")
    assert response.status_code == 201, response.text
    evidence = response.json()
    assert (evidence["media_type"], evidence["category"], evidence["size"]) == (
        "image/jpeg",
        "photo",
        len(data),
    )
    assert evidence["sha256"] == hashlib.sha256(data).hexdigest()
    assert (evidence["width"], evidence["height"]) == (1200, 900)
    assert evidence["captured_at"] == "2020-03-15T10:30:00" and evidence["captured_on"] == "2020-03-15"
    assert evidence["gps_lat"] == pytest.approx(33.9562, abs=1e-3) and evidence["gps_lon"] == pytest.approx(
        116.7983, abs=1e-3
    )
    assert evidence["outside_window"] is False
    assert evidence["filename"] == "专题会议.jpg" and evidence["uploaded_by"] == "李明"
    assert evidence["campaign_id"] == campaign and evidence["upload_path"] == "stream"

    preview = world.client.get(f"/evidence/{evidence['id']}/preview")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    thumbnail = Image.open(io.BytesIO(preview.content))
    assert max(thumbnail.size) == 320 and thumbnail.format == "JPEG"

    stored = world.stored_keys()
    assert stored == sorted(
        [
            f"evidence/{submission['unit_id']}/{submission['id']}/{evidence['id']}.jpg",
            f"previews/{submission['unit_id']}/{submission['id']}/{evidence['id']}.jpg",
        ]
    )
    event = world.events("evidence.stored")[0]
    assert (
        event["outside_window"] is False
        and event["captured_at"] == "2020-03-15T10:30:00"
        and event["category"] == "photo"
    )


def test_capture_outside_the_publicity_window_is_flagged_and_rejudged_when_the_window_changes(world):
    campaign = world.campaign(date(2020, 3, 9), date(2020, 3, 31))
    submission = world.submission(campaign_id=campaign)
    early = world.upload(submission["id"], media.photo(6, taken="2020:02:20 08:00:00"), "旧照片.jpg").json()
    late = world.upload(
        submission["id"], media.photo(7, taken="2020:04:01 00:30:00", offset="+08:00"), "晚.jpg"
    ).json()
    undated = world.upload(submission["id"], media.photo(8), "无日期.jpg").json()
    assert early["outside_window"] is True and late["outside_window"] is True
    assert late["captured_at"] == "2020-04-01T00:30:00+08:00" and late["captured_on"] == "2020-04-01"
    assert undated["outside_window"] is None and undated["captured_at"] is None

    world.publish(
        CampaignPublished(
            campaign_id=campaign,
            code="WSXF-2020",
            name="网上信访宣传月",
            version=2,
            publicity_start=date(2020, 2, 1),
            publicity_end=date(2020, 4, 5),
        )
    )
    wait_until(
        lambda: world.client.get(f"/evidence/{early['id']}").json()["outside_window"] is False,
        what="the wider window to re-judge the evidence",
    )
    assert world.client.get(f"/evidence/{late['id']}").json()["outside_window"] is False


def test_heic_png_webp_are_decoded(world):
    submission = world.submission()
    for fmt, name, media_type in (
        ("HEIC", "IMG_0001.HEIC", "image/heic"),
        ("PNG", "a.png", "image/png"),
        ("WEBP", "b.webp", "image/webp"),
    ):
        data = media.photo(10, size=(400, 300), fmt=fmt, taken="2020:03:20 16:00:00")
        response = world.upload(submission["id"], data, name)
        assert response.status_code == 201, (fmt, response.text)
        evidence = response.json()
        assert evidence["media_type"] == media_type and (evidence["width"], evidence["height"]) == (400, 300)
        assert evidence["has_preview"] is True
    heic = world.client.get(f"/submissions/{submission['id']}/evidence").json()[0]
    assert heic["captured_at"] == "2020-03-20T16:00:00"


@pytest.mark.parametrize("moov_first", [True, False], ids=["moov-first", "moov-last"])
def test_video_is_probed_by_ffmpeg_with_a_poster_frame(world, moov_first):
    campaign = world.campaign(date(2020, 3, 9), date(2020, 3, 31))
    submission = world.submission(campaign_id=campaign)
    data = media.mp4(
        bytes(300_000), moov_first=moov_first, seconds=3.0, size=(320, 240), created="2020-03-14T02:00:00Z"
    )
    response = world.upload(submission["id"], data, "巡回宣讲.mp4")
    assert response.status_code == 201, response.text
    evidence = response.json()
    assert (evidence["media_type"], evidence["category"]) == ("video/mp4", "video")
    assert evidence["duration_s"] == pytest.approx(3.0, abs=0.1) and (
        evidence["width"],
        evidence["height"],
    ) == (320, 240)
    assert (evidence["video_codec"], evidence["audio_codec"]) == ("h264", "aac")
    assert evidence["captured_at"].startswith("2020-03-14T02:00") and evidence["outside_window"] is False
    assert evidence["has_preview"] is True and evidence["preview_note"] is None
    assert evidence["rendition"] is None  # H.264/AAC in MP4 plays in browsers as it is
    poster = world.client.get(f"/evidence/{evidence['id']}/preview")
    assert poster.status_code == 200 and Image.open(io.BytesIO(poster.content)).format == "JPEG"


def test_a_video_ffmpeg_cannot_decode_is_refused(world):
    submission = world.submission()
    no_moov = media.ftyp() + media.box(b"mdat", bytes(range(256)) * 40)  # no movie header at all
    boxes_only = media.box_mp4(bytes(4000))  # headers that promise a video, but no frame in the media data
    # no moov: refused by the strict box walk before ffmpeg runs; boxes without frames: refused by ffmpeg
    for data, name, code in (
        (no_moov, "camera.mp4", "unplayable_video"),
        (boxes_only, "empty.mp4", "video_undecodable"),
    ):
        response = world.upload(submission["id"], data, name)
        assert response.status_code == 422, (name, response.text)
        assert response.json()["code"] == code
    clip = media.mp4(seconds=2.0)
    cut = world.upload(
        submission["id"], clip[: len(clip) * 2 // 3], "cut.mp4"
    )  # cut off midway: the first frames play
    assert cut.status_code == 422 and cut.json()["code"] == "damaged_file"
    assert world.evidence_count() == 0 and world.stored_keys() == []
    assert [e["reason_code"] for e in world.events("evidence.rejected")] == [
        "unplayable_video",
        "video_undecodable",
        "damaged_file",
    ]


@pytest.mark.parametrize("store", ["folder", "s3"])
def test_a_video_browsers_cannot_play_gets_a_web_playable_copy(make_world, store):
    world = make_world(store, evidence_rendition_poll_s=0.2)
    submission = world.submission()
    hevc = media.mp4(seconds=2.0, size=(320, 240), codec="hevc", container="mov")
    response = world.upload(submission["id"], hevc, "手机拍摄.mov")
    assert response.status_code == 201, response.text
    evidence = response.json()
    assert (evidence["media_type"], evidence["video_codec"], evidence["has_preview"]) == (
        "video/quicktime",
        "hevc",
        True,
    )
    assert evidence["rendition"]["state"] in ("pending", "rendering", "ready")

    def ready():
        found = world.client.get(f"/evidence/{evidence['id']}").json()["rendition"]
        return found if found["state"] in ("ready", "failed") else None

    rendition = wait_until(ready, timeout=120, what="the worker to make the web-playable copy")
    assert rendition["state"] == "ready" and rendition["media_type"] == "video/mp4"

    web = world.client.get(f"/evidence/{evidence['id']}/content", params={"variant": "web"})
    assert web.status_code == 200 and web.headers["X-Evidence-Variant"] == "web"
    assert hashlib.sha256(web.content).hexdigest() == rendition["sha256"] == web.headers["X-Content-SHA256"]
    assert len(web.content) == rendition["size"] and web.content[4:8] == b"ftyp"
    probed = video.probe(video.ffmpeg_exe(), _saved(world, web.content))
    assert (probed.video_codec, probed.width, probed.height) == ("h264", 320, 240) and probed.web_playable(
        "video/mp4"
    )

    # the original stays the proof, byte for byte, with its own hash
    original = world.client.get(f"/evidence/{evidence['id']}/content")
    assert original.headers["X-Evidence-Variant"] == "original" and original.content == hevc
    assert (
        world.client.get(f"/evidence/{evidence['id']}").json()["sha256"] == hashlib.sha256(hevc).hexdigest()
    )
    # a playable video asked for its web variant is served as it is
    plain = world.upload(submission["id"], media.mp4(seconds=1.0), "宣讲.mp4").json()
    assert (
        world.client.get(f"/evidence/{plain['id']}/content", params={"variant": "web"}).headers[
            "X-Evidence-Variant"
        ]
        == "original"
    )
    # deleting the evidence removes its copy too
    assert world.client.delete(f"/evidence/{evidence['id']}").status_code == 204
    assert not [key for key in world.stored_keys(extra=("renditions/",)) if evidence["id"] in key]


def _saved(world, data: bytes) -> str:
    path = world.ctx.settings.data_dir / "probe.mp4"
    path.write_bytes(data)
    return str(path)


def test_documents_are_typed_from_their_contents(world):
    submission = world.submission()
    for data, name, expected in (
        (media.docx(), "总结.bin", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (media.xlsx(), "统计表", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (PDF_BYTES, "方案.docx", "application/pdf"),
    ):
        response = world.upload(submission["id"], data, name)
        assert response.status_code == 201, response.text
        assert response.json()["media_type"] == expected and response.json()["category"] == "document"
    extensions = sorted(key.rsplit(".", 1)[-1] for key in world.stored_keys())
    assert extensions == ["docx", "pdf", "xlsx"]  # server-chosen keys, extension from the content; no preview
    assert world.stored_keys() and not [key for key in world.stored_keys() if key.startswith("staging/")]


def test_multipart_form_with_several_files_and_fields(world):
    submission = world.submission()
    photo, video = media.photo(11), media.mp4(bytes(2000))
    files = [
        ("note", (None, "备注：现场照片两张")),
        ("files", ("横幅.jpg", photo, "image/jpeg")),
        ("files", ("宣讲.mp4", video, "video/mp4")),
        ("files", ("总结.docx", media.docx(), "application/octet-stream")),
    ]
    response = world.client.post(
        f"/submissions/{submission['id']}/evidence", files=files, headers=world.token("张伟")
    )
    assert response.status_code == 201, response.text
    rows = response.json()
    assert [row["filename"] for row in rows] == ["横幅.jpg", "宣讲.mp4", "总结.docx"]
    assert [row["sha256"] for row in rows[:2]] == [
        hashlib.sha256(photo).hexdigest(),
        hashlib.sha256(video).hexdigest(),
    ]
    assert {row["upload_path"] for row in rows} == {"multipart"} and {row["uploaded_by"] for row in rows} == {
        "张伟"
    }
    listed = world.client.get(f"/submissions/{submission['id']}/evidence").json()
    assert len(listed) == 3


def test_multipart_rfc5987_filename_and_no_file(world):
    submission = world.submission()
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=\"files\"; filename*=UTF-8''%E5%AE%A3%E4%BC%A0%E8%A7%92.png\r\n"
        b"Content-Type: image/png\r\n\r\n" + media.photo(12, fmt="PNG", size=(64, 48)) + b"\r\n--XyZ--\r\n"
    )
    response = world.client.post(
        f"/submissions/{submission['id']}/evidence",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert response.status_code == 201, response.text
    assert response.json()[0]["filename"] == "宣传角.png"
    empty = world.client.post(
        f"/submissions/{submission['id']}/evidence",
        content=b"--XyZ--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert empty.status_code == 400 and empty.json()["code"] == "bad_multipart"


def test_long_filename_is_capped_keeping_its_extension(world):
    submission = world.submission()
    name = "宣传" * 150 + ".jpg"
    evidence = world.upload(submission["id"], media.photo(13, size=(64, 64)), name).json()
    assert len(evidence["filename"]) == 200 and evidence["filename"].endswith(".jpg")


def test_closed_or_unknown_submissions_take_no_uploads(world):
    assert world.upload("no-such-submission", media.photo(1, size=(32, 32)), "a.jpg").status_code == 404
    submission = world.submission()
    world.approve(submission)
    response = world.upload(submission["id"], media.photo(1, size=(32, 32)), "a.jpg")
    assert response.status_code == 409 and response.json()["code"] == "submission_closed"
    assert world.stored_keys() == []


def test_a_newer_version_of_a_known_submission_reopens_it_and_an_older_one_changes_nothing(world):
    submission = world.submission(measure="M2")

    def known() -> tuple[int, str, str, str]:
        with world.ctx.db.session() as uow:
            row = uow.get(KnownSubmission, submission["id"])
            return row.version, row.state, row.measure_code, row.unit_path

    def hand_in(version: int, measure: str) -> None:
        world.publish(
            SubmissionSubmitted(
                submission_id=submission["id"],
                unit_id=submission["unit_id"],
                measure_code=measure,
                title="第二版",
                version=version,
                unit_path=f"/{submission['unit_id']}/",
            )
        )

    assert known() == (1, "submitted", "M2", f"/{submission['unit_id']}/")
    world.approve(submission)
    hand_in(2, "M3")
    wait_until(lambda: known()[0] == 2, what="the second version to be known")
    assert known() == (2, "submitted", "M3", f"/{submission['unit_id']}/")
    hand_in(1, "M2")  # late and out of order: the older version
    world.submission()  # a later event through the same queue, to know the older one was handled
    assert known() == (2, "submitted", "M3", f"/{submission['unit_id']}/")


def test_decisions_and_withdrawals_apply_to_the_version_they_name_only(world):
    first, second = world.submission(), world.submission()
    kept = world.upload(first["id"], media.photo(60, size=(32, 32)), "a.jpg").json()

    def state(submission: dict) -> str:
        with world.ctx.db.session() as uow:
            return uow.get(KnownSubmission, submission["id"]).state

    def settled() -> None:  # a later event through the same queue: everything before it was handled
        world.submission()

    def decided(kind, submission_id: str, version: int, **extra):
        return kind(
            submission_id=submission_id,
            unit_id=first["unit_id"],
            measure_code="M1",
            title="t",
            version=version,
            reviewer="王芳",
            **extra,
        )

    world.publish(decided(SubmissionApproved, first["id"], 2))
    world.publish(SubmissionWithdrawn(submission_id=second["id"], unit_id=second["unit_id"], version=2))
    world.publish(decided(SubmissionApproved, "never-heard-of", 1))
    settled()
    assert (state(first), state(second)) == ("submitted", "submitted")  # version 2 is not the one known
    assert world.client.get(f"/evidence/{kept['id']}").json()["locked"] is False
    world.publish(SubmissionWithdrawn(submission_id=second["id"], unit_id=second["unit_id"], version=1))
    world.publish(decided(SubmissionReturned, first["id"], 1, comment="请补充现场照片"))
    settled()
    assert (state(first), state(second)) == ("returned", "withdrawn")
    refused = world.upload(second["id"], media.photo(61, size=(32, 32)), "b.jpg")
    assert refused.status_code == 409 and refused.json()["code"] == "submission_closed"
