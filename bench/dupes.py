"""Near-duplicate benchmark: how many altered copies of a photo the evidence service flags, and how often it
flags photos that are not copies.

    python -m bench.dupes [--bases 40] [--unrelated 60] [--seed 2020] [--threshold N]

A generated set (nothing is downloaded): `bases` synthetic photos (gradient sky, coloured shapes, fine noise,
1024x768 JPEG), and of each four altered copies: resized to 50 %, recompressed at JPEG quality 60, cropped by 5 %
(2.5 % off each side), and brightened by 8 %. Then two kinds of photos that are NOT copies: `unrelated` photos of
independent scenes, and one look-alike per base (same sky and palette, shapes elsewhere: the same banner shot at
another site, the hardest case). Every file is uploaded through the evidence API (the evidence_storage service in
this process, folder store and SQLite under a temporary folder, spread over several units' submissions), and the
duplicate flags the service stored are read back.

Printed: recall per alteration (copies flagged as duplicates of their original, at the configured threshold,
EVIDENCE_NEAR_DUPLICATE_BITS or --threshold), the false-positive rate (pairs of different pictures flagged, and
images with any wrong flag) for unrelated and look-alike photos, and the same figures for thresholds 0..20 from
the perceptual hashes the service stored, to show the trade-off. Synthetic photos are easier to tell apart than
real ones; treat the false-positive figures as a lower bound.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from bench.common import print_table, run_cli

SIZE = (1024, 768)
ALTERATIONS = ("resize 50%", "JPEG q60", "crop 5%", "brightness +8%")


@dataclass(frozen=True)
class Photo:
    """One generated file: which family (original picture) it belongs to, and what was done to it."""

    name: str
    family: int | None  # None: a picture of its own (unrelated or look-alike)
    role: str  # original, an alteration, unrelated, look-alike
    data: bytes


def scene(seed: int, *, layout_seed: int | None = None):
    """A synthetic photo; layout_seed changes where the shapes go while keeping sky and palette."""
    from PIL import Image, ImageDraw, ImageFilter, ImageOps

    palette = random.Random(seed)
    layout = random.Random(seed if layout_seed is None else layout_seed)
    width, height = SIZE
    top = tuple(palette.randrange(256) for _ in range(3))
    bottom = tuple(palette.randrange(256) for _ in range(3))
    colours = [tuple(palette.randrange(256) for _ in range(3)) for _ in range(16)]
    image = ImageOps.colorize(Image.linear_gradient("L").resize(SIZE), top, bottom)
    draw = ImageDraw.Draw(image)
    for colour in colours[: layout.randrange(8, 16)]:
        x0, y0 = layout.randrange(width), layout.randrange(height)
        x1, y1 = x0 + layout.randrange(30, width // 2), y0 + layout.randrange(30, height // 2)
        shape = layout.choice((draw.ellipse, draw.rectangle))
        shape([x0, y0, x1, y1], fill=colour)
    noise = Image.frombytes("L", SIZE, layout.randbytes(width * height)).convert("RGB")
    return Image.blend(image, noise, 0.05).filter(ImageFilter.GaussianBlur(0.8))


def jpeg(image, quality: int = 92) -> bytes:
    """Encode as JPEG."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def altered(image, how: str) -> bytes:
    """One of the four alterations of a photo."""
    from PIL import Image, ImageEnhance

    if how == "resize 50%":
        return jpeg(image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS))
    if how == "JPEG q60":
        return jpeg(image, quality=60)
    if how == "crop 5%":
        dx, dy = int(image.width * 0.025), int(image.height * 0.025)
        return jpeg(image.crop((dx, dy, image.width - dx, image.height - dy)))
    return jpeg(ImageEnhance.Brightness(image).enhance(1.08))


def generate(bases: int, unrelated: int, seed: int) -> list[Photo]:
    """The whole set, deterministic for a seed."""
    photos = []
    for n in range(bases):
        original = scene(seed * 1000 + n)
        photos.append(Photo(f"base{n}.jpg", n, "original", jpeg(original)))
        photos += [
            Photo(f"base{n}-{i}.jpg", n, how, altered(original, how)) for i, how in enumerate(ALTERATIONS)
        ]
        photos.append(
            Photo(
                f"lookalike{n}.jpg",
                None,
                "look-alike",
                jpeg(scene(seed * 1000 + n, layout_seed=seed * 7919 + n)),
            )
        )
    photos += [
        Photo(f"other{n}.jpg", None, "unrelated", jpeg(scene(seed * 1000 + 500_000 + n)))
        for n in range(unrelated)
    ]
    return photos


def upload_all(
    photos: list[Photo], work: Path, threshold: int | None
) -> tuple[dict[str, str], dict[str, str], set[frozenset]]:
    """Upload through the evidence API; returns (name → evidence id, evidence id → stored hash, flagged id pairs)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from services.evidence_storage import handlers
    from services.evidence_storage.api import create_app
    from services.evidence_storage.bootstrap import bootstrap
    from services.evidence_storage.models import Evidence, EvidenceDuplicate
    from shared.contracts import make_event
    from shared.contracts.intake import SubmissionSubmitted
    from shared.settings import Settings

    overrides = {} if threshold is None else {"evidence_near_duplicate_bits": threshold}
    ctx = bootstrap(Settings(data_dir=work, **overrides))
    submissions = []
    for unit in range(8):  # copies land in other units' submissions too: detection is across units
        event = make_event(
            SubmissionSubmitted(
                submission_id=f"bench-sub-{unit}",
                unit_id=f"bench-unit-{unit}",
                measure_code="M5",
                title="宣传横幅",
                version=1,
            ),
            producer="bench",
        )
        with ctx.db.transaction() as uow:
            handlers.track_submission(event, uow=uow, ctx=ctx)  # as the worker would on intake's event
        submissions.append(f"bench-sub-{unit}")
    ids = {}
    order = list(photos)
    random.Random(1).shuffle(order)  # copies arrive before and after their originals
    with TestClient(create_app(ctx)) as client:
        for n, photo in enumerate(order):
            response = client.post(
                f"/submissions/{submissions[n % len(submissions)]}/evidence",
                params={"filename": photo.name},
                content=photo.data,
                headers={"Content-Type": "application/octet-stream"},
            )
            if response.status_code != 201:
                raise RuntimeError(
                    f"upload of {photo.name} failed: {response.status_code} {response.text[:300]}"
                )
            ids[photo.name] = response.json()["id"]
    with ctx.db.session() as uow:
        hashes = dict(uow.execute(select(Evidence.id, Evidence.phash)).all())
        flagged = {
            frozenset((flag.evidence_id, flag.other_id)) for flag in uow.scalars(select(EvidenceDuplicate))
        }
    ctx.db.dispose()
    return ids, hashes, flagged


def figures(photos: list[Photo], ids: dict[str, str], is_flagged) -> dict[str, tuple[int, int]]:
    """(hits, total) for each alteration's recall and for the false-positive measures."""
    originals = {photo.family: ids[photo.name] for photo in photos if photo.role == "original"}
    result = {how: [0, 0] for how in ALTERATIONS}
    for photo in photos:
        if photo.role in ALTERATIONS:
            result[photo.role][1] += 1
            result[photo.role][0] += is_flagged(ids[photo.name], originals[photo.family])
    for role in ("unrelated", "look-alike"):
        pairs = hit_pairs = images = hit_images = 0
        for photo in (p for p in photos if p.role == role):
            wrong = 0
            for other in photos:
                if other.name == photo.name:
                    continue
                pairs += 1
                wrong += is_flagged(ids[photo.name], ids[other.name])
            hit_pairs += wrong
            images += 1
            hit_images += bool(wrong)
        result[f"{role} pairs"] = [hit_pairs, pairs]
        result[f"{role} images"] = [hit_images, images]
    return {key: (hits, total) for key, (hits, total) in result.items()}


def main() -> int:
    """Generate, upload, and print recall and false-positive rates."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bases", type=int, default=40, help="original photos (each gets four altered copies)"
    )
    parser.add_argument("--unrelated", type=int, default=60, help="photos of other scenes")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--threshold", type=int, default=None, help="override EVIDENCE_NEAR_DUPLICATE_BITS")
    args = parser.parse_args()

    from services.evidence_storage import perceptual
    from shared.settings import Settings

    threshold = args.threshold if args.threshold is not None else Settings().evidence_near_duplicate_bits
    started = time.perf_counter()
    photos = generate(args.bases, args.unrelated, args.seed)
    generated = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="bench-dupes-") as work:
        started = time.perf_counter()
        ids, hashes, flagged = upload_all(photos, Path(work), args.threshold)
        uploaded = time.perf_counter() - started
    print(
        f"{len(photos)} photos ({args.bases} originals x 4 alterations, {args.bases} look-alikes, {args.unrelated} unrelated), "
        f"generated in {generated:.1f} s, uploaded through the evidence API in {uploaded:.1f} s "
        f"({1000 * uploaded / len(photos):.0f} ms per photo, inspection and thumbnail included)"
    )

    measured = figures(photos, ids, lambda a, b: frozenset((a, b)) in flagged)
    print_table(
        f"What the service flagged (perceptual-hash distance <= {threshold} of 64 bits)",
        ["measure", "rate", "count"],
        [
            (
                ("recall: " if key in ALTERATIONS else "false positives: ") + key,
                f"{100 * hits / total:.1f} %",
                f"{hits}/{total}",
            )
            for key, (hits, total) in measured.items()
        ],
    )

    def within(limit: int):
        return lambda a, b: (
            hashes[a] is not None
            and hashes[b] is not None
            and perceptual.distance(perceptual.from_hex(hashes[a]), perceptual.from_hex(hashes[b])) <= limit
        )

    rows = []
    for limit in range(0, 21, 2):
        sweep = figures(photos, ids, within(limit))
        recall = sum(sweep[how][0] for how in ALTERATIONS) / sum(sweep[how][1] for how in ALTERATIONS)
        rows.append(
            (
                limit,
                *(f"{100 * sweep[how][0] / sweep[how][1]:.0f} %" for how in ALTERATIONS),
                f"{100 * recall:.1f} %",
                f"{100 * sweep['unrelated pairs'][0] / sweep['unrelated pairs'][1]:.3f} %",
                f"{100 * sweep['look-alike pairs'][0] / sweep['look-alike pairs'][1]:.3f} %",
            )
        )
    print_table(
        "Threshold sweep over the stored hashes (pairs of different pictures flagged = false-positive rate)",
        ["bits", *ALTERATIONS, "recall", "FP unrelated", "FP look-alike"],
        rows,
    )
    distances = sorted(
        perceptual.distance(perceptual.from_hex(hashes[a]), perceptual.from_hex(hashes[b]))
        for a, b in combinations([ids[p.name] for p in photos if p.role in ("original", "unrelated")], 2)
    )
    print(
        f"distance between different pictures: min {distances[0]}, 1st percentile {distances[len(distances) // 100]}, "
        f"median {distances[len(distances) // 2]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
