"""What an uploaded image really is: its type and dimensions, read from its own header.

Magic bytes alone let through polyglots (a PNG signature in front of a ZIP or an HTML page)
and files that no viewer can open. Reading the container structure is cheap and catches both:
every PNG chunk's CRC and an IEND at the very end; JPEG segments up to a frame header and an
EOI as the last two bytes; a WebP RIFF size equal to the file's and chunks that fill it. The
pixels are not decoded (that would need an imaging library and costs more than the upload).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

#: Display images (posters, backdrops, thumbnails) are at most this wide or high.
MAX_IMAGE_SIDE: Final = 8192
#: A 512 KiB PNG can still declare a huge canvas (a decompression bomb); bound the pixels.
MAX_IMAGE_PIXELS: Final = 40_000_000


class ImageType(StrEnum):
    PNG = "image/png"
    JPEG = "image/jpeg"
    WEBP = "image/webp"


class InvalidImage(ValueError):
    """The bytes are not a well-formed PNG, JPEG or WebP image; the message says why."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    type: ImageType
    width: int
    height: int


_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# SOF markers carry the frame's dimensions; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                              0xCE, 0xCF})


def sniff(data: bytes) -> ImageType | None:
    """The type the signature claims (not yet a proof that the file is one)."""
    if data.startswith(_PNG_SIGNATURE):
        return ImageType.PNG
    if data.startswith(b"\xff\xd8\xff"):
        return ImageType.JPEG
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageType.WEBP
    return None


def inspect_image(data: bytes) -> ImageInfo:
    """Type and dimensions of ``data``; raises :class:`InvalidImage`."""
    kind = sniff(data)
    if kind is None:
        raise InvalidImage("not a PNG, JPEG or WebP image")
    try:
        if kind is ImageType.PNG:
            width, height = _png(data)
        elif kind is ImageType.JPEG:
            width, height = _jpeg(data)
        else:
            width, height = _webp(data)
    except (struct.error, IndexError):
        raise InvalidImage(f"truncated {kind.value} image") from None
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise InvalidImage(f"image is {width}x{height}; each side must be 1 to {MAX_IMAGE_SIDE}")
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidImage(f"image has {width * height} pixels; at most {MAX_IMAGE_PIXELS}")
    return ImageInfo(kind, width, height)


def _png(data: bytes) -> tuple[int, int]:
    offset = len(_PNG_SIGNATURE)
    size = 0
    dims = (0, 0)
    first = True
    while True:
        length, kind = struct.unpack_from(">I4s", data, offset)
        end = offset + 8 + length + 4
        if end > len(data):
            raise InvalidImage("truncated PNG chunk")
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", data, offset + 8 + length)
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise InvalidImage("PNG chunk with a wrong CRC")
        if first:
            if kind != b"IHDR" or length != 13:
                raise InvalidImage("PNG does not start with its IHDR header")
            dims = struct.unpack_from(">II", body)
            first = False
        offset = end
        size += 1
        if kind == b"IEND":
            break
    if offset != len(data):
        raise InvalidImage(f"{len(data) - offset} bytes after the end of the PNG image")
    return dims


def _jpeg(data: bytes) -> tuple[int, int]:
    offset = 2
    dims: tuple[int, int] | None = None
    while True:
        if data[offset] != 0xFF:
            raise InvalidImage("JPEG segment does not start with a marker")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker == 0xD9:
            offset += 2
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            offset += 2
            continue
        (length,) = struct.unpack_from(">H", data, offset + 2)
        if length < 2 or offset + 2 + length > len(data):
            raise InvalidImage("truncated JPEG segment")
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, offset + 5)
            dims = (width, height)
        offset += 2 + length
        if marker == 0xDA:
            # Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a
            # restart marker.
            while True:
                offset = data.find(b"\xff", offset)
                if offset < 0:
                    raise InvalidImage("JPEG scan data without an end (no EOI)")
                following = data[offset + 1]
                if following == 0 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                    offset += 1 if following == 0xFF else 2
                    continue
                break
    if dims is None:
        raise InvalidImage("JPEG has no frame header (no dimensions)")
    if offset != len(data):
        raise InvalidImage(f"{len(data) - offset} bytes after the end of the JPEG image")
    return dims


def _webp(data: bytes) -> tuple[int, int]:
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if riff_size + 8 != len(data):
        raise InvalidImage("WebP RIFF size does not match the file size")
    offset = 12
    dims: tuple[int, int] | None = None
    while offset < len(data):
        kind, length = struct.unpack_from("<4sI", data, offset)
        body = data[offset + 8 : offset + 8 + length]
        if len(body) != length:
            raise InvalidImage("truncated WebP chunk")
        if dims is None:
            if kind == b"VP8L":
                if body[0] != 0x2F:
                    raise InvalidImage("VP8L chunk without its signature")
                (bits,) = struct.unpack_from("<I", body, 1)
                dims = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            elif kind == b"VP8 ":
                if body[3:6] != b"\x9d\x01\x2a":
                    raise InvalidImage("VP8 chunk without its start code")
                width, height = struct.unpack_from("<HH", body, 6)
                dims = (width & 0x3FFF, height & 0x3FFF)
            elif kind == b"VP8X":
                width = int.from_bytes(body[4:7], "little") + 1
                height = int.from_bytes(body[7:10], "little") + 1
                dims = (width, height)
            else:
                raise InvalidImage("WebP does not start with a VP8, VP8L or VP8X chunk")
        offset += 8 + length + (length & 1)
    if dims is None:
        raise InvalidImage("WebP has no image chunk")
    if offset != len(data):
        raise InvalidImage("WebP chunks do not fill the file exactly")
    return dims


__all__ = [
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "ImageInfo",
    "ImageType",
    "InvalidImage",
    "inspect_image",
    "sniff",
]
