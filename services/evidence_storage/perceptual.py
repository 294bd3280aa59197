"""Perceptual hashes of photos: near-identical pictures (resized, recompressed, lightly cropped) hash close."""

from __future__ import annotations

import math
from functools import cache
from statistics import median

from PIL import Image

HASH_BITS = 64
_SIDE = 32  # pHash: DCT of a 32x32 grayscale thumbnail, keep the 8x8 lowest frequencies
_LOW = 8


@cache
def _cosines() -> tuple[tuple[float, ...], ...]:
    """cos((2x+1)uπ/2N) for the low frequencies u and every sample x."""
    return tuple(
        tuple(math.cos((2 * x + 1) * u * math.pi / (2 * _SIDE)) for x in range(_SIDE)) for u in range(_LOW)
    )


def phash(image: Image.Image) -> int:
    """64-bit DCT hash: which low-frequency coefficients lie above their median."""
    small = image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.LANCZOS)
    pixels = list(small.tobytes())  # mode "L": one byte per pixel, row by row
    rows = [pixels[y * _SIDE : (y + 1) * _SIDE] for y in range(_SIDE)]
    cos = _cosines()
    across = [
        [sum(c * p for c, p in zip(cos[u], row, strict=True)) for u in range(_LOW)] for row in rows
    ]  # 32 rows x 8
    coefficients = [
        sum(cos[v][y] * across[y][u] for y in range(_SIDE)) for v in range(_LOW) for u in range(_LOW)
    ]
    threshold = median(coefficients[1:])  # the DC term says only how bright the picture is
    return _bits(value > threshold for value in coefficients)


def dhash(image: Image.Image) -> int:
    """64-bit difference hash: is each pixel of a 9x8 thumbnail brighter than its right neighbour."""
    small = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = list(small.tobytes())  # mode "L": one byte per pixel, row by row
    return _bits(pixels[y * 9 + x] > pixels[y * 9 + x + 1] for y in range(8) for x in range(8))


def distance(a: int, b: int) -> int:
    """Hamming distance between two hashes."""
    return (a ^ b).bit_count()


def to_hex(value: int) -> str:
    """A hash as 16 hex digits (how it is stored)."""
    return f"{value:016x}"


def from_hex(text: str) -> int:
    """A stored hash back as an integer."""
    return int(text, 16)


def _bits(flags) -> int:
    value = 0
    for flag in flags:
        value = (value << 1) | int(flag)
    return value
