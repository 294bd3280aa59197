"""Campaign keywords in recognised text, tolerant of OCR noise, and the finding a photo gets from them.

Both sides are normalised the same way: NFKC (full-width letters, digits and punctuation become half-width),
case folded, and everything but letters and digits dropped (spaces, dots, dashes), so the full-width form of
"WSXF.gov.cn", "wsxf gov cn" and "wsxf.gov.cn" all match the keyword wsxf.gov.cn. A keyword of
`FUZZY_MIN_CHARS` or more characters (after normalising: 国家信访局, the sites' addresses) may also match with one
character read wrong (a substitution, no insertions or deletions). Not four: bench/ocr.py found that one wrong
character in a four-character keyword takes real slogans for campaign text (网上信息 for 网上信访, 阳光信贷 for
阳光信访) without finding more campaign photos. Matching stays within one recognised line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FUZZY_MIN_CHARS = 5  # measured: docs/ocr.md
KEYWORDS_FOUND, NO_CAMPAIGN_TEXT, NO_FINDING, UNREAD = "keywords_found", "no_campaign_text", "none", "unread"
FINDINGS = (KEYWORDS_FOUND, NO_CAMPAIGN_TEXT, NO_FINDING, UNREAD)


@dataclass(frozen=True)
class Match:
    """A keyword found in the text: the characters of the original text that matched it."""

    keyword: str
    found: str
    exact: bool


@dataclass(frozen=True)
class TextRules:
    """What a measure expects of its photos' text."""

    keywords: tuple[str, ...] = ()
    expected: bool = False


def normalise(text: str) -> tuple[str, list[int]]:
    """The matching form of text, and for each of its characters the index of the original one it came from."""
    out: list[str] = []
    where: list[int] = []
    for index, char in enumerate(text):
        for c in unicodedata.normalize("NFKC", char).casefold():
            if c.isalnum():
                out.append(c)
                where.append(index)
    return "".join(out), where


def _find(line: str, needle: str, *, fuzzy: bool, fuzzy_min: int) -> tuple[int, bool] | None:
    """Where needle starts in line (exactly, or with one wrong character if fuzzy), and whether exactly."""
    at = line.find(needle)
    if at >= 0:
        return at, True
    if not fuzzy or len(needle) < fuzzy_min:
        return None
    size = len(needle)
    for start in range(len(line) - size + 1):
        wrong = 0
        for a, b in zip(line[start : start + size], needle, strict=True):
            if a != b:
                wrong += 1
                if wrong > 1:
                    break
        if wrong <= 1:
            return start, False
    return None


def find_keywords(
    lines: Sequence[str], keywords: Iterable[str], *, fuzzy: bool = True, fuzzy_min: int = FUZZY_MIN_CHARS
) -> list[Match]:
    """The keywords found in the recognised lines, each once, in the order the keywords are given."""
    prepared = [(line, *normalise(line)) for line in lines]
    found: list[Match] = []
    for keyword in keywords:
        needle, _ = normalise(keyword)
        if not needle:
            continue
        for original, norm, where in prepared:
            hit = _find(norm, needle, fuzzy=fuzzy, fuzzy_min=fuzzy_min)
            if hit is not None:
                start, exact = hit
                end = where[start + len(needle) - 1] + 1
                found.append(Match(keyword=keyword, found=original[where[start] : end], exact=exact))
                break
    return found


def judge(
    lines: Sequence[str], rules: TextRules, *, fuzzy: bool = True, fuzzy_min: int = FUZZY_MIN_CHARS
) -> tuple[str, list[Match]]:
    """The finding for a photo's recognised lines under its measure's rules, with the keywords found."""
    if not rules.keywords:
        return NO_FINDING, []
    matches = find_keywords(lines, rules.keywords, fuzzy=fuzzy, fuzzy_min=fuzzy_min)
    if matches:
        return KEYWORDS_FOUND, matches
    return (NO_CAMPAIGN_TEXT if rules.expected else NO_FINDING), []
