"""OCR benchmark: how often the evidence worker finds the campaign keywords in photos of banners, boards and LED
screens that carry them, how often it "finds" them in photos that do not, and how long one photo takes.

    python -m bench.ocr [--photos 80] [--seed 2020] [--hard] [--threads 1] [--max-side 1600] [--save DIR]

A generated corpus (nothing is downloaded), rendered with the CJK fonts installed here (Noto Sans/Serif CJK SC):
red banners with white or yellow text hung across a street scene, white and blue display boards with a title and
two or three lines, and LED screens (amber or red dot-matrix text on black). Each photo is then treated as a
phone treats it: put at an angle (rotation and a perspective tilt), slightly blurred, noisy, brighter or darker,
and saved as a 1600x1200 JPEG at quality 55-90; the sign fills 40-100 % of what fits in the frame. With
--hard, the way a hurried shot from across the square looks: the sign fills 20-50 %, blur up to 3 px, JPEG
quality 30-60, more noise. Half the photos carry a campaign slogan (附件1 of the Huaibei plan, or the petition
website's address), half another public slogan (traffic, fire, hygiene, anti-fraud...) that names none of the
keywords, some of them close in wording (网上办事, 信息公开) and two one character away from a keyword (网上信息,
阳光信贷).

The keywords are those of measure M5 in deploy/campaigns/huaibei-2020.yaml. Each photo is read by the real engine
(services/evidence_storage/ocr.py: decode, scale to --max-side, RapidOCR with --threads ONNX Runtime threads) and
judged as the worker judges it (textmatch.py): exactly, and with one wrong character allowed in keywords of 5+
and of 4+ characters.

Printed: recall (campaign photos with keywords_found) and false-positive rate (other photos with keywords_found)
both ways, recall by kind of photo, and seconds per photo (p50, p95, max), with the machine's load average.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench.common import percentile, print_table, run_cli

FONT_DIR = Path("/usr/share/fonts/opentype/noto")
PHOTO_SIZE = (1600, 1200)
KINDS = ("banner", "board", "led")

CAMPAIGN_SLOGANS = (
    "网上信访，让群众少跑腿、数据多跑路",
    "有事网上说 诉求网上办 进度网上查",
    "网上信访渠道畅通 反映问题方便快捷",
    "足不出户反映诉求 网上信访方便高效",
    "依法逐级走访 网上信访优先",
    "疫情防控期间 请通过网上信访反映诉求",
    "网上信访：最方便、最快捷、最经济、最高效",
    "推进信访工作现代化 网上信访进万家",
    "阳光信访 便民利民",
    "扎实开展网上信访宣传月活动",
    "国家信访局网上信访平台 www.gjxfj.gov.cn",
    "网上投诉请登录 wsxf.gov.cn",
    "扫码下载手机信访APP 淮北信访欢迎您",
    "信访宣传进社区 群众诉求有回应",
    "依法信访 理性表达 网上信访更便捷",
)
OTHER_SLOGANS = (
    "文明交通 安全出行",
    "森林防火 人人有责",
    "垃圾分类 从我做起",
    "创建全国文明城市 共建美好家园",
    "珍爱生命 远离毒品",
    "勤洗手 戴口罩 常通风",
    "守护碧水蓝天 建设美丽淮北",
    "警惕电信网络诈骗 守好群众钱袋子",
    "网上办事大厅 一网通办 最多跑一次",
    "政务信息公开 接受群众监督",
    "扫黑除恶 保一方平安",
    "关爱留守儿童 共筑温暖家园",
    "节约用水 从点滴做起",
    "弘扬社会主义核心价值观",
    "访贫问苦送温暖 党员干部在行动",
    # one character away from a keyword: what a one-wrong-character tolerance would take for campaign text
    "网上信息发布 权威及时准确",
    "阳光信贷 助力乡村振兴",
)
# board titles and the lines under them (a campaign board's title alone carries the keywords)
CAMPAIGN_TITLES = ("网上信访宣传栏", "网上信访知识", "阳光信访宣传角", "信访宣传专栏")
OTHER_TITLES = ("安全生产宣传栏", "卫生健康知识", "法治宣传专栏", "党务公开栏")
FILLER = (
    "一、工作要求明确到位",
    "二、宣传活动覆盖全面",
    "三、群众满意度持续提升",
    "四、按时报送工作情况",
)


@dataclass(frozen=True)
class Photo:
    """One generated photo: its kind, whether it carries a campaign slogan, the slogan, and the JPEG."""

    name: str
    kind: str
    campaign: bool
    slogan: str
    data: bytes


def fonts_installed() -> bool:
    """Whether the Noto CJK faces the corpus is drawn with are installed (Debian's fonts-noto-cjk)."""
    return (FONT_DIR / "NotoSansCJK-Bold.ttc").is_file() and (FONT_DIR / "NotoSansCJK-Regular.ttc").is_file()


@cache
def cjk_font(size: int, *, bold: bool = True, serif: bool = False):
    """A Simplified Chinese Noto CJK face of the installed fonts-noto-cjk, at size pixels."""
    from PIL import ImageFont

    family = "Serif" if serif else "Sans"
    path = FONT_DIR / f"Noto{family}CJK-{'Bold' if bold else 'Regular'}.ttc"
    for index in range(10):
        font = ImageFont.truetype(str(path), size, index=index)
        if font.getname()[0].endswith(" SC"):
            return font
    return ImageFont.truetype(str(path), size)


def _fit(draw, text: str, width: int, size: int, **face):
    """The largest font at most size pixels high whose text fits in width."""
    while size > 12:
        font = cjk_font(size, **face)
        if draw.textlength(text, font=font) <= width:
            return font
        size -= 4
    return cjk_font(12, **face)


def _scene(rng: random.Random):
    """A street or wall behind the sign: a gradient, blocks of buildings, a little texture."""
    from PIL import Image, ImageDraw, ImageOps

    top = tuple(rng.randrange(120, 230) for _ in range(3))
    bottom = tuple(rng.randrange(40, 140) for _ in range(3))
    image = ImageOps.colorize(Image.linear_gradient("L").resize(PHOTO_SIZE), top, bottom).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randrange(4, 10)):
        x, y = rng.randrange(0, PHOTO_SIZE[0]), rng.randrange(PHOTO_SIZE[1] // 3, PHOTO_SIZE[1])
        w, h = rng.randrange(80, 400), rng.randrange(80, 500)
        draw.rectangle((x, y, x + w, y + h), fill=tuple(rng.randrange(60, 200) for _ in range(3)))
    return image


def _banner(text: str, rng: random.Random):
    """A red cloth banner with white or yellow characters."""
    from PIL import Image, ImageDraw

    width, height = rng.randrange(1100, 1450), rng.randrange(130, 190)
    sign = Image.new(
        "RGB", (width, height), (rng.randrange(170, 225), rng.randrange(0, 30), rng.randrange(0, 35))
    )
    draw = ImageDraw.Draw(sign)
    font = _fit(draw, text, width - 60, int(height * 0.62), serif=rng.random() < 0.3)
    colour = (255, 255, 255) if rng.random() < 0.7 else (255, 230, 60)
    draw.text((width // 2, height // 2), text, font=font, fill=colour, anchor="mm")
    return sign


def _board(title: str, lines: list[str], rng: random.Random):
    """A display board: a coloured title bar and a few lines of body text."""
    from PIL import Image, ImageDraw

    width, height = rng.randrange(900, 1250), rng.randrange(620, 820)
    blue = rng.random() < 0.5
    sign = Image.new("RGB", (width, height), (235, 240, 250) if blue else (250, 250, 245))
    draw = ImageDraw.Draw(sign)
    bar = (20, 70, 160) if blue else (190, 20, 25)
    draw.rectangle((0, 0, width, 150), fill=bar)
    draw.text((width // 2, 75), title, font=_fit(draw, title, width - 80, 96), fill="white", anchor="mm")
    font = cjk_font(44, bold=False)
    for n, line in enumerate(lines):
        draw.text((60, 200 + n * 90), line, font=font, fill=(30, 30, 30))
    return sign


def _led(text: str, rng: random.Random):
    """An LED screen: amber or red characters made of dots on black."""
    from PIL import Image, ImageDraw, ImageFilter

    width, height = rng.randrange(1100, 1400), rng.randrange(170, 230)
    cell = 4
    small = Image.new("L", (width // cell, height // cell), 0)
    draw = ImageDraw.Draw(small)
    font = _fit(draw, text, small.width - 10, int(small.height * 0.8), bold=True)
    draw.text((small.width // 2, small.height // 2), text, font=font, fill=255, anchor="mm")
    mask = small.point(lambda v: 255 if v > 110 else 0).resize((width, height), Image.Resampling.NEAREST)
    dots = Image.new("L", (width, height), 0)
    dot_draw = ImageDraw.Draw(dots)
    for y in range(0, height, cell):
        for x in range(0, width, cell):
            dot_draw.ellipse((x, y, x + cell - 2, y + cell - 2), fill=255)
    lit = Image.composite(mask, Image.new("L", mask.size, 0), dots).filter(ImageFilter.GaussianBlur(0.8))
    colour = (255, 170, 20) if rng.random() < 0.5 else (255, 40, 30)
    sign = Image.new("RGB", (width, height), (12, 12, 12))
    sign.paste(Image.new("RGB", (width, height), colour), mask=lit)
    return sign


def _as_phone_photo(sign, rng: random.Random, *, hard: bool = False) -> bytes:
    """The sign in a scene, at an angle, blurred, noisy, lit differently, as a phone's JPEG."""
    from PIL import Image, ImageEnhance, ImageFilter

    scene = _scene(rng)
    angle = rng.uniform(-12, 12)
    sign = sign.convert("RGBA").rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    # a perspective tilt: one side of the sign a little shorter than the other
    w, h = sign.size
    squeeze = rng.uniform(0, 0.12) * h
    coeffs = _perspective([(0, 0), (w, squeeze), (w, h - squeeze), (0, h)], [(0, 0), (w, 0), (w, h), (0, h)])
    sign = sign.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC)
    # near or across the street: the sign fills 40-100 % of what fits in the frame
    scale = min(1.0, (PHOTO_SIZE[0] - 40) / w, (PHOTO_SIZE[1] - 40) / h) * (
        rng.uniform(0.2, 0.5) if hard else rng.uniform(0.4, 1.0)
    )
    sign = sign.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.LANCZOS)
    x = rng.randrange(0, max(1, PHOTO_SIZE[0] - sign.width))
    y = rng.randrange(0, max(1, PHOTO_SIZE[1] - sign.height))
    scene.paste(sign, (x, y), sign)
    photo = scene.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 3.0) if hard else rng.uniform(0.3, 2.0)))
    photo = ImageEnhance.Brightness(photo).enhance(rng.uniform(0.75, 1.2))
    photo = ImageEnhance.Contrast(photo).enhance(rng.uniform(0.8, 1.1))
    noise = Image.effect_noise(PHOTO_SIZE, rng.uniform(4, 14)).convert("RGB")
    photo = Image.blend(photo, noise, 0.1 if hard else 0.06)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=rng.randrange(30, 61) if hard else rng.randrange(55, 91))
    return out.getvalue()


def _perspective(source, target) -> list[float]:
    """The eight coefficients of Pillow's PERSPECTIVE transform mapping target points onto source points."""
    import numpy as np

    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    solution = np.linalg.solve(np.array(rows, dtype=float), np.array(source, dtype=float).reshape(8))
    return [float(c) for c in solution]


def render(kind: str, slogan: str, *, seed: int, title: str | None = None, hard: bool = False) -> bytes:
    """One phone photo (JPEG bytes) of a banner, board or LED screen showing slogan."""
    rng = random.Random(seed)
    if kind == "banner":
        sign = _banner(slogan, rng)
    elif kind == "board":
        campaign = title in CAMPAIGN_TITLES
        sign = _board(
            title or rng.choice(OTHER_TITLES if not campaign else CAMPAIGN_TITLES),
            [slogan, *rng.sample(FILLER, 2)],
            rng,
        )
    else:
        sign = _led(slogan, rng)
    return _as_phone_photo(sign, rng, hard=hard)


def generate(count: int, seed: int, *, hard: bool = False) -> list[Photo]:
    """count photos, half with a campaign slogan, the kinds taking turns."""
    rng = random.Random(seed)
    photos = []
    for n in range(count):
        campaign = n % 2 == 0
        kind = KINDS[(n // 2) % len(KINDS)]
        slogan = rng.choice(CAMPAIGN_SLOGANS if campaign else OTHER_SLOGANS)
        title = None
        if kind == "board":
            title = rng.choice(CAMPAIGN_TITLES if campaign else OTHER_TITLES)
            if campaign and rng.random() < 0.5:
                slogan = rng.choice(OTHER_SLOGANS[:4])  # the board says it in its title only
        data = render(kind, slogan, seed=rng.randrange(2**31), title=title, hard=hard)
        photos.append(Photo(name=f"{n:03d}-{kind}", kind=kind, campaign=campaign, slogan=slogan, data=data))
    return photos


def huaibei_rules():
    """The text rules of measure M5 (宣传横幅) in the bundled Huaibei definition."""
    from services.evidence_storage.textmatch import TextRules
    from services.intake.definition import parse_definition

    source = Path(__file__).resolve().parent.parent / "deploy/campaigns/huaibei-2020.yaml"
    definition = parse_definition(source.read_text(encoding="utf-8"))
    measure = definition.measure("M5")
    assert measure is not None and measure.text is not None, "the Huaibei definition names no M5 keywords"
    return TextRules(keywords=tuple(measure.text.keywords), expected=measure.text.expected)


def _read_whole(slogan: str, lines: list[str]) -> bool:
    """Whether the recognised lines hold the slogan's every letter and digit, in order, on one line."""
    from services.evidence_storage.textmatch import normalise

    wanted = normalise(slogan)[0]
    return any(wanted in normalise(line)[0] for line in lines)


def _rates(found: list[bool], photos: list[Photo]) -> tuple[str, str, str, str]:
    """Recall over the campaign photos and false-positive rate over the others, as percent and as counts."""
    positives = [hit for hit, p in zip(found, photos, strict=True) if p.campaign]
    negatives = [hit for hit, p in zip(found, photos, strict=True) if not p.campaign]
    return (
        f"{100 * sum(positives) / max(1, len(positives)):.1f} %",
        f"{sum(positives)}/{len(positives)}",
        f"{100 * sum(negatives) / max(1, len(negatives)):.1f} %",
        f"{sum(negatives)}/{len(negatives)}",
    )


def main() -> int:
    """Render the corpus, read every photo with the real engine, and print recall, false positives and time."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--photos", type=int, default=80, help="photos in the corpus (half with campaign text)"
    )
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--hard", action="store_true", help="smaller, blurrier, more compressed photos")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (OCR_THREADS)")
    parser.add_argument(
        "--max-side", type=int, default=1600, help="longest side before OCR (OCR_MAX_SIDE_PX)"
    )
    parser.add_argument(
        "--save", type=Path, default=None, help="also write the photos and what was read here"
    )
    args = parser.parse_args()

    from PIL import Image

    from services.evidence_storage import ocr
    from services.evidence_storage.textmatch import FUZZY_MIN_CHARS, KEYWORDS_FOUND, judge

    rules = huaibei_rules()
    started = time.perf_counter()
    photos = generate(args.photos, args.seed, hard=args.hard)
    print(
        f"{len(photos)} photos rendered in {time.perf_counter() - started:.1f} s; keywords: {' '.join(rules.keywords)}"
    )
    started = time.perf_counter()
    if ocr.ENGINE.get(args.threads) is None:
        print("OCR not installed (pip install .[ocr]): nothing to measure")
        return 1
    print(f"engine loaded in {time.perf_counter() - started:.1f} s ({args.threads} thread(s))")
    load_before = os.getloadavg()
    seconds: list[float] = []
    read: list[list[str]] = []
    for photo in photos:
        started = time.perf_counter()
        lines = ocr.read_lines(
            Image.open(io.BytesIO(photo.data)), threads=args.threads, max_side=args.max_side
        )
        seconds.append(time.perf_counter() - started)
        read.append([line.text for line in lines or []])
    load_after = os.getloadavg()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for photo, lines in zip(photos, read, strict=True):
            (args.save / f"{photo.name}.jpg").write_bytes(photo.data)
            (args.save / f"{photo.name}.txt").write_text(
                f"{'campaign' if photo.campaign else 'other'}: {photo.slogan}\n---\n"
                + "\n".join(lines)
                + "\n",
                encoding="utf-8",
            )

    rows, by_kind = [], []
    for fuzzy_min in (0, 5, 4):
        found = [
            judge(lines, rules, fuzzy=bool(fuzzy_min), fuzzy_min=fuzzy_min or 4)[0] == KEYWORDS_FOUND
            for lines in read
        ]
        label = f"one wrong character allowed ({fuzzy_min}+ chars)" if fuzzy_min else "exact (normalised)"
        if fuzzy_min == FUZZY_MIN_CHARS:
            label += ", as configured"
        rows.append((label, *_rates(found, photos)))
        if fuzzy_min == FUZZY_MIN_CHARS:
            for kind in KINDS:
                of_kind = [(hit, p) for hit, p in zip(found, photos, strict=True) if p.kind == kind]
                recall, _, fp, _ = _rates([hit for hit, _ in of_kind], [p for _, p in of_kind])
                whole = [
                    _read_whole(p.slogan, lines)
                    for lines, p in zip(read, photos, strict=True)
                    if p.kind == kind
                ]
                by_kind.append((kind, recall, fp, f"{100 * sum(whole) / max(1, len(whole)):.1f} %"))
    print_table(
        "Keywords found (finding keywords_found)",
        ["matching", "recall", "campaign photos", "false positives", "other photos"],
        rows,
    )
    print_table(
        "By kind of photo (matching as configured; slogan read whole: every letter of the main slogan, in order)",
        ["kind", "recall", "false positives", "slogan read whole"],
        by_kind,
    )
    print_table(
        f"Seconds per photo (decode, scale to {args.max_side} px, OCR; {args.threads} ONNX Runtime thread(s))",
        ["p50", "p95", "max", "mean"],
        [
            (
                f"{percentile(seconds, 50):.2f}",
                f"{percentile(seconds, 95):.2f}",
                f"{max(seconds):.2f}",
                f"{statistics.fmean(seconds):.2f}",
            )
        ],
    )
    print(
        f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after, on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
