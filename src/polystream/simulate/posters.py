"""Small, real, deterministic PNG images for titles (posters and backdrops).

No imaging library: a PNG is a signature, an IHDR chunk, zlib-compressed scanlines and an IEND
chunk. Each image is a two-colour vertical gradient with a title band, plus low-bit noise so it
compresses like a picture (a few KiB) rather than like a flat colour (~100 bytes): the MongoDB
sink's GridFS path should see realistic sizes.
"""

from __future__ import annotations

import struct
import zlib
from functools import cache
from random import Random
from typing import Final

from polystream.domain.events import AssetKind

_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"

#: (width, height, noise mask) per asset kind: portrait posters, landscape backdrops.
SIZES: Final[dict[AssetKind, tuple[int, int, int]]] = {
    AssetKind.POSTER: (40, 60, 0x03),
    AssetKind.BACKDROP: (96, 54, 0x03),
    AssetKind.THUMBNAIL: (32, 18, 0x03),
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


@cache
def _noise_mask(width: int, height: int, mask: int) -> int:
    # Zero over each row's filter byte (it must stay 0 = "no filter"), ``mask`` over pixels.
    row = b"\x00" + bytes([mask]) * (width * 3)
    return int.from_bytes(row * height, "big")


def _colour(rng: Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def image_png(rng: Random, kind: AssetKind = AssetKind.POSTER) -> bytes:
    """A valid RGB PNG for ``kind``, fully determined by the state of ``rng``."""
    width, height, mask = SIZES[kind]
    top, bottom, band = _colour(rng), _colour(rng), _colour(rng)
    band_from = rng.randrange(height // 2, height - height // 5)
    band_to = band_from + max(2, height // 8)
    rows: list[bytes] = []
    for y in range(height):
        if band_from <= y < band_to:
            rgb = bytes(band)
        else:
            mix = y / (height - 1)
            rgb = bytes(round(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True))
        rows.append(b"\x00" + rgb * width)
    base = b"".join(rows)
    # XOR with masked noise as one big-int operation: per-byte Python arithmetic would cost
    # milliseconds per image.
    noise = int.from_bytes(rng.randbytes(len(base)), "big") & _noise_mask(width, height, mask)
    pixels = (int.from_bytes(base, "big") ^ noise).to_bytes(len(base), "big")
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(pixels, 9))
        + _chunk(b"IEND", b"")
    )


__all__ = ["SIZES", "image_png"]
