"""Duplicates across units and campaigns are flagged on the evidence for reviewers, never refused."""

from __future__ import annotations

import io

from PIL import Image, ImageEnhance

from services.evidence_storage import perceptual
from tests.evidence_storage import media


def _variant(
    data: bytes, *, scale: float = 1.0, quality: int = 90, crop: float = 0.0, brightness: float = 1.0
) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if crop:
        dx, dy = int(image.width * crop / 2), int(image.height * crop / 2)
        image = image.crop((dx, dy, image.width - dx, image.height - dy))
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.LANCZOS)
    if brightness != 1.0:
        image = ImageEnhance.Brightness(image).enhance(brightness)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_exact_and_near_duplicates_across_units_are_flagged_not_refused(world):
    first_unit, second_unit = world.submission(), world.submission()
    original = media.photo(31, size=(1024, 768))
    uploaded = world.upload(first_unit["id"], original, "宣传横幅.jpg").json()
    same = world.upload(second_unit["id"], original, "横幅（另一单位）.jpg")
    assert same.status_code == 201  # flagged, not refused
    same = same.json()
    [copied] = same["duplicates"]
    assert (copied["evidence_id"], copied["match"], copied["distance"]) == (uploaded["id"], "exact", 0)
    # the copy says the other came first, and which unit and submission that was
    assert copied["came_first"] == "other" and copied["same_unit"] is False
    assert (copied["other_unit_id"], copied["other_submission_id"]) == (
        first_unit["unit_id"],
        first_unit["id"],
    )
    assert copied["other_uploaded_at"] is not None

    resized = world.upload(second_unit["id"], _variant(original, scale=0.5, quality=60), "缩小.jpg").json()
    cropped = world.upload(
        second_unit["id"], _variant(original, crop=0.05, brightness=1.08), "裁剪.jpg"
    ).json()
    unrelated = world.upload(second_unit["id"], media.photo(32, size=(1024, 768)), "另一张.jpg").json()
    assert {d["evidence_id"] for d in resized["duplicates"]} == {uploaded["id"], same["id"]}
    assert {d["match"] for d in resized["duplicates"]} == {"near"}
    assert {d["evidence_id"] for d in cropped["duplicates"]} >= {uploaded["id"]}
    assert unrelated["duplicates"] == []

    # the earlier evidence shows its later copies too, so a reviewer sees the flag from either side
    first_view = world.client.get(f"/evidence/{uploaded['id']}").json()
    assert {d["evidence_id"] for d in first_view["duplicates"]} == {same["id"], resized["id"], cropped["id"]}
    assert {d["came_first"] for d in first_view["duplicates"]} == {
        "this"
    }  # the original, copied by later uploads
    assert {d["other_unit_id"] for d in first_view["duplicates"]} == {second_unit["unit_id"]}
    # the first unit's liaison sees the flag on its own photo, without the other unit's name or ids
    as_unit = world.client.get(
        f"/evidence/{uploaded['id']}", headers=world.unit_token(first_unit["unit_id"])
    ).json()
    assert {d["came_first"] for d in as_unit["duplicates"]} == {"this"} and len(as_unit["duplicates"]) == 3
    assert {
        (d["other_unit_id"], d["other_unit_name"], d["other_submission_id"]) for d in as_unit["duplicates"]
    } == {(None, None, None)}
    stored_event = world.events("evidence.stored")[1]
    assert stored_event["duplicate_of"] == [uploaded["id"]] and stored_event["near_duplicate_of"] == []


def test_perceptual_hash_separates_variants_from_other_pictures():
    base = media.scene(40, (800, 600))
    others = [media.scene(seed, (800, 600)) for seed in range(41, 46)]
    shrunk = base.resize((400, 300), Image.Resampling.BILINEAR)
    near = perceptual.distance(perceptual.phash(base), perceptual.phash(shrunk))
    far = min(perceptual.distance(perceptual.phash(base), perceptual.phash(other)) for other in others)
    assert near <= 4 < 16 <= far
    assert perceptual.from_hex(perceptual.to_hex(perceptual.phash(base))) == perceptual.phash(base)
    assert 0 <= perceptual.distance(perceptual.dhash(base), perceptual.dhash(shrunk)) <= 6
