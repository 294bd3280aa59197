"""Approved evidence is locked (and retained by the store where it can be); downloads are audited; exports
stream a ZIP arranged unit/measure/file with a SHA-256 manifest."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from datetime import date, timedelta
from urllib.parse import quote

import httpx

from services.evidence_storage.retention import APPLY_RETENTION
from shared.auth import ADMIN, INSPECTOR, REVIEWER
from shared.blobs.port import BlobLocked
from tests.evidence_storage import media
from tests.helpers import PDF_BYTES, wait_until


def _retention(world, evidence_id: str) -> dict:
    return wait_until(
        lambda: (v := world.client.get(f"/evidence/{evidence_id}").json())["retention"] != "pending" and v,
        what="retention to be settled",
    )


def test_approval_locks_evidence_and_the_api_refuses_to_delete_it(world):
    submission = world.submission()
    kept = world.upload(submission["id"], media.photo(50, size=(64, 64)), "a.jpg").json()
    dropped = world.upload(submission["id"], media.photo(51, size=(64, 64)), "b.jpg").json()
    assert (
        world.client.delete(f"/evidence/{dropped['id']}", headers=world.token("unit-admin")).status_code
        == 204
    )
    deleted = world.client.get("/audit-log", params={"action": "evidence.delete"}).json()
    assert [(row["resource_id"], row["actor_name"]) for row in deleted] == [(dropped["id"], "unit-admin")]
    assert len(world.stored_keys()) == 2  # kept's file and preview; dropped's are gone
    world.approve(submission)
    view = _retention(world, kept["id"])
    assert view["locked"] is True and view["locked_at"]
    assert view["retention"] == "unsupported" and view["retained_until"] is None  # a folder cannot retain
    refused = world.client.delete(f"/evidence/{kept['id']}")
    assert refused.status_code == 409 and refused.json()["code"] == "evidence_locked"
    assert (
        world.upload(submission["id"], media.photo(52, size=(64, 64)), "late.jpg").status_code == 409
    )  # no overwrite by adding
    assert (
        world.client.put(f"/evidence/{kept['id']}/content", content=b"x").status_code == 405
    )  # no route to overwrite
    assert world.events("evidence.locked")[0]["evidence_id"] == kept["id"]


def test_object_lock_bucket_retains_approved_evidence(make_world):
    world = make_world("s3-locked", evidence_retention_days=30)
    submission = world.submission()
    evidence = world.upload(submission["id"], media.photo(53, size=(64, 64)), "a.jpg").json()
    world.approve(submission)
    view = _retention(world, evidence["id"])
    assert view["retention"] == "applied"
    assert (
        view["retained_until"][:10]
        == (date.fromisoformat(view["locked_at"][:10]) + timedelta(days=30)).isoformat()
    )
    key = next(k for k in world.stored_keys() if k.startswith("evidence/"))
    try:
        world.ctx.blobs.delete(key)
        raise AssertionError("the store deleted an object under retention")
    except BlobLocked:
        pass
    assert world.client.delete(f"/evidence/{evidence['id']}").status_code == 409


def test_downloads_are_streamed_and_audited(world):
    submission = world.submission()
    photo = media.photo(54)
    evidence = world.upload(submission["id"], photo, "会议.jpg").json()
    response = world.client.get(
        f"/evidence/{evidence['id']}/content", headers=world.token("王芳", subject="u-wangfang")
    )
    assert response.status_code == 200 and response.content == photo
    assert response.headers["x-content-sha256"] == evidence["sha256"]
    assert response.headers["content-disposition"] == "attachment; filename*=UTF-8''" + quote("会议.jpg")
    assert (
        world.client.get(
            f"/evidence/{evidence['id']}/preview",
            headers=world.token("reviewer-2", role=REVIEWER, subject="r2"),
        ).status_code
        == 200
    )
    url = world.client.post(f"/evidence/{evidence['id']}/download-url")
    assert url.status_code == 501 and url.json()["code"] == "presign_unsupported"

    log = world.client.get("/audit-log", params={"evidence_id": evidence["id"]}).json()
    assert [(row["action"], row["actor_name"]) for row in log] == [
        ("evidence.thumbnail", "reviewer-2"),
        ("evidence.download", "王芳"),
    ]
    assert all(
        row["client_ip"] == "testclient" and row["detail"]["unit_id"] == submission["unit_id"] for row in log
    )
    assert [(row["actor_id"], row["actor_role"]) for row in log] == [
        ("r2", REVIEWER),
        ("u-wangfang", ADMIN),
    ]  # from the token
    assert log[1]["at"].endswith("Z") or "+00:00" in log[1]["at"]


def test_presigned_download_url_on_s3_is_short_lived_and_audited(make_world):
    world = make_world("s3", evidence_download_ttl_s=120)
    submission = world.submission()
    photo = media.photo(55)
    evidence = world.upload(submission["id"], photo, "横幅.jpg").json()
    issued = world.client.post(
        f"/evidence/{evidence['id']}/download-url", headers=world.token("inspector-1", role=INSPECTOR)
    )
    assert issued.status_code == 200, issued.text
    url = issued.json()["url"]
    assert "X-Amz-Expires=120" in url and "response-content-disposition" in url
    fetched = httpx.get(url, timeout=10, trust_env=False)
    assert fetched.status_code == 200 and fetched.content == photo
    log = world.client.get("/audit-log", params={"actor": "inspector-1"}).json()
    assert [row["action"] for row in log] == ["evidence.download_url"]


def test_export_streams_unit_measure_file_with_a_sha256_manifest(world):
    campaign = world.campaign(date(2020, 3, 9), date(2020, 3, 31))
    xiangshan = world.unit("XS", "相山区信访局")
    duji = world.unit("DJ", "杜集区信访局")
    meeting = world.submission(unit_id=xiangshan, campaign_id=campaign, measure="M1")
    banner = world.submission(unit_id=xiangshan, campaign_id=campaign, measure="M5")
    other = world.submission(unit_id=duji, campaign_id=campaign, measure="M1")
    pending = world.submission(unit_id=duji, campaign_id=campaign, measure="M2")
    files = {
        "m1": (meeting, media.photo(60, taken="2020:03:10 09:00:00"), "会议.jpg"),
        "m5": (banner, media.mp4(bytes(50_000)), "横幅视频.mp4"),
        "doc": (banner, PDF_BYTES, "方案.pdf"),
        "dj": (other, media.photo(61), "会议.jpg"),
        "pending": (pending, media.photo(62), "未审核.jpg"),
    }
    ids = {
        name: world.upload(sub["id"], data, filename).json()["id"]
        for name, (sub, data, filename) in files.items()
    }
    for submission in (meeting, banner, other):
        world.approve(submission)

    response = world.client.get(f"/units/{xiangshan}/export.zip", headers=world.token("office"))
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    names = sorted(archive.namelist())
    assert names == sorted(
        [
            f"XS_相山区信访局/M1/会议_{ids['m1'][:8]}.jpg",
            f"XS_相山区信访局/M5/横幅视频_{ids['m5'][:8]}.mp4",
            f"XS_相山区信访局/M5/方案_{ids['doc'][:8]}.pdf",
            "manifest.csv",
        ]
    )
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8-sig"))))
    assert len(manifest) == 3
    for row in manifest:
        assert (
            hashlib.sha256(archive.read(row["path"])).hexdigest() == row["sha256"] and row["verified"] == "ok"
        )
    assert {row["measure_code"] for row in manifest} == {"M1", "M5"} and {
        row["unit_code"] for row in manifest
    } == {"XS"}

    campaign_zip = zipfile.ZipFile(io.BytesIO(world.client.get(f"/campaigns/{campaign}/export.zip").content))
    folders = {name.split("/")[0] for name in campaign_zip.namelist() if "/" in name}
    assert folders == {"XS_相山区信访局", "DJ_杜集区信访局"}  # the unapproved submission is not exported
    assert not any(ids["pending"][:8] in name for name in campaign_zip.namelist())
    exported = world.client.get("/audit-log", params={"actor": "office", "action": "evidence.export"}).json()
    assert sorted(row["resource_id"] for row in exported) == sorted([ids["m1"], ids["m5"], ids["doc"]])
    assert (
        world.client.get(f"/units/{pending['unit_id']}/export.zip").status_code == 200
    )  # duji has approved files
    nothing = world.client.get("/units/nobody/export.zip")
    assert nothing.status_code == 404 and nothing.json()["code"] == "nothing_to_export"


def test_export_marks_a_damaged_object_in_the_manifest(world):
    submission = world.submission()
    evidence = world.upload(submission["id"], media.photo(63), "a.jpg").json()
    world.approve(submission)
    key = next(k for k in world.stored_keys() if k.startswith("evidence/"))
    world.ctx.blobs.put(key, io.BytesIO(b"tampered"), content_type="image/jpeg")
    archive = zipfile.ZipFile(
        io.BytesIO(world.client.get(f"/units/{submission['unit_id']}/export.zip").content)
    )
    row = next(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8-sig"))))
    assert row["evidence_id"] == evidence["id"] and row["verified"].startswith("MISMATCH ")


def test_retention_runs_for_a_commit_that_locked_evidence_not_for_every_approval(world):
    wakes: list[str] = []
    wake = world.ctx.job_wakers[APPLY_RETENTION]
    world.ctx.job_wakers[APPLY_RETENTION] = lambda: (wakes.append(APPLY_RETENTION), wake())
    world.approve(world.submission())  # a submission without files: nothing to lock
    assert wakes == []
    submission = world.submission()
    evidence = world.upload(submission["id"], media.photo(54, size=(64, 64)), "a.jpg").json()
    world.approve(submission)
    assert _retention(world, evidence["id"])["retention"] == "unsupported"  # settled at once, not in 30 s
    assert wakes == [APPLY_RETENTION]
