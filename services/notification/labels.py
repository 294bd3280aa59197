"""Chinese words for the codes events carry (levels, methods, kinds, durations)."""

from __future__ import annotations

import re

SUPERVISION_LEVELS = {"blue": "蓝色", "yellow": "黄色", "red": "红色"}
SUPERVISION_METHODS = {"phone": "电话督办", "on_site": "实地督办", "interview": "约谈督办"}
INSPECTION_METHODS = {"phone": "电话询查", "on_site": "实地检查"}
SUBMISSION_KINDS = {"measure": "宣传措施材料", "summary_report": "活动总结", "good_practice": "经验做法"}
EVIDENCE_REASONS = {
    "unsupported_media_type": "不支持的文件类型",
    "too_large": "文件过大",
    "empty_file": "文件为空",
    "checksum_mismatch": "文件校验不一致",
}

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$"
)
_UNITS = (("weeks", "周"), ("days", "天"), ("hours", "小时"), ("minutes", "分钟"))


def label(table: dict[str, str], code: str) -> str:
    """The Chinese word for a code, or the code itself when it is new to us."""
    return table.get(code, code)


def duration_text(iso: str) -> str:
    """An ISO-8601 lead time in Chinese: P3D → 3天, PT12H → 12小时, P1DT6H → 1天6小时 (unknown forms as given)."""
    match = _DURATION.match(iso or "")
    if not match or not any(match.groupdict().values()):
        return iso
    return "".join(f"{int(match[name])}{word}" for name, word in _UNITS if match[name])
